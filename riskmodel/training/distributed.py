"""DistributedDataParallel set-up from the environment ``torchrun`` provides.

``torchrun --nproc-per-node=N -m riskmodel.cli train ...`` sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; a plain ``python`` run has none of them and trains in one process. NCCL is
used on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# The device choice lives in riskmodel.device; this name stays importable here.
from riskmodel.device import choose_device as choose_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(requested_device: str = "auto") -> DistInfo:
    """Join the process group if launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(requested_device, local)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, local, world, device)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Leave the process group. All ranks first meet at a barrier, so that no rank tears down its
    connections (or exits) while another still has collective work in flight — otherwise gloo can
    abort the slower process at exit ("terminate called without an active exception")."""
    if info.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def mean_across(value: float, info: DistInfo) -> float:
    """Average a Python number over all processes (identity for one process)."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / info.world_size
