"""Where torch code runs: the one place that turns a user's ``device`` option into a ``torch.device``.

Importing this module does not import torch (the CLI starts without it); :func:`choose_device`
imports it when called.

>>> choose_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_HELP", "choose_device"]

#: What a ``device`` option accepts, for messages and ``--help``.
DEVICE_HELP = "auto, cpu, cuda, cuda:1 …"


def choose_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """The ``torch.device`` that ``requested`` names.

    Args:
        requested: ``"auto"`` (this process's GPU if CUDA is available, else the CPU), or any
            device torch knows (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"meta"`` …).
        local_rank: with ``"auto"`` and CUDA, the GPU index (one GPU per process under torchrun).

    Raises:
        ValueError: ``requested`` is not a device name, or names CUDA on a machine without it.
    """
    import torch

    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={requested!r}: not a device ({exc}); use {DEVICE_HELP}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={requested!r}: CUDA is not available on this machine")
    return device
