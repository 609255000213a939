"""Exam scoring and embedding split across the processes of a ``torchrun`` launch.

``torchrun --nproc-per-node=N -m riskmodel.cli embed --bundle B --exams E -o OUT`` starts N
processes (one per GPU; gloo processes on a CPU-only machine). :func:`predict_exams` gives each
process a contiguous run of whole batches of the exams table (rank 0 the first run, and so on),
so that every process runs exactly the batches one process would run. Each writes its rows to a
Parquet shard in a hidden folder next to ``OUT``; rank 0 then appends the shards, in rank order,
to ``OUT`` (written under a temporary name and renamed when complete) and deletes the folder.
The output is the single-process output: same rows, same order, same values.

The process group is set up and torn down by :mod:`riskmodel.training.distributed` (NCCL on
GPUs, gloo on CPUs; all ranks meet at a barrier before it is destroyed). If any process fails,
all of them stop with an error and no output file is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.distributed.streaming import AtomicWriter


@dataclass(frozen=True)
class ExamRun:
    """What :func:`predict_exams` wrote (returned by rank 0; other ranks get None).

    Attributes:
        n_exams: rows written, one per exam of the table.
        n_ok: exams with status ``"ok"``.
        world_size: processes that shared the work.
        output: the file written (None: standard output).
    """

    n_exams: int
    n_ok: int
    world_size: int
    output: str | None


def rank_rows(n: int, batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of the exams table that process ``rank`` of ``world_size`` scores.

    The ``ceil(n / batch_size)`` batches one process would run are split into ``world_size``
    contiguous runs (the first runs one batch longer when they do not divide evenly); a process
    may get no rows when there are fewer batches than processes.

    Examples:
        >>> [rank_rows(10, 4, r, 2) for r in range(2)]  # batches [0:4] [4:8] [8:10]
        [(0, 8), (8, 10)]
        >>> [rank_rows(3, 4, r, 2) for r in range(2)]
        [(0, 3), (3, 3)]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    batches = -(-n // batch_size)
    runs = np.array_split(np.arange(batches), world_size)[rank]
    if runs.size == 0:
        return n, n
    return int(runs[0]) * batch_size, min((int(runs[-1]) + 1) * batch_size, n)


def _broadcast_text(text: str, info: Any) -> str:
    """Rank 0's ``text`` on every rank (as bytes in a tensor: nothing is pickled)."""
    import torch
    import torch.distributed as dist

    device = info.device if info.device.type == "cuda" else torch.device("cpu")
    size = torch.tensor([len(text.encode()) if info.is_main else 0], dtype=torch.int64, device=device)
    dist.broadcast(size, 0)
    if info.is_main:
        data = torch.tensor(list(text.encode()), dtype=torch.uint8, device=device)
    else:
        data = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, 0)
    return bytes(data.cpu().tolist()).decode()


def _all_ok(ok: bool, info: Any) -> bool:
    """True on every rank when ``ok`` is True on every rank."""
    import torch
    import torch.distributed as dist

    device = info.device if info.device.type == "cuda" else torch.device("cpu")
    flag = torch.tensor([0 if ok else 1], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) == 0


def _load(bundle: Any, device: Any) -> Any:
    from riskmodel.inference import ImageRiskPredictor
    from riskmodel.mirai.adapter import load_image_bundle

    if isinstance(bundle, ImageRiskPredictor):
        bundle.model = bundle.model.to(device)
        bundle.device = device
        return bundle
    return load_image_bundle(bundle, device=str(device))  # riskmodel's image bundle or an imported Mirai


def predict_exams(
    bundle: str | os.PathLike[str] | Any,
    exams: pd.DataFrame,
    output: str | os.PathLike[str] | None,
    *,
    fmt: str = "parquet",
    device: str = "auto",
    batch_size: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    embeddings: bool = True,
    num_workers: int = 0,
    progress: bool = False,
) -> ExamRun | None:
    """Score (and embed) every exam with an image model bundle, split across ``torchrun`` processes.

    Run by every process of a ``torchrun`` launch (``RANK``, ``WORLD_SIZE`` … in the environment),
    or by a single process, which does all the work itself. Each process scores the rows
    :func:`rank_rows` gives it with :meth:`riskmodel.inference.ImageRiskPredictor.predict` on its
    own device (``cuda:LOCAL_RANK`` with ``device="auto"`` on a GPU node, else the CPU).

    Args:
        bundle: the bundle folder (each process loads it, hashes checked) or a loaded
            :class:`~riskmodel.inference.ImageRiskPredictor` (moved to the process's device).
        exams: the exams table (``riskmodel scan --exams``), the same on every process.
        output: the file to write (``fmt``); None or ``"-"``: CSV on standard output (rank 0).
            Shards go to a hidden folder in the output's folder (the system's temporary folder
            for standard output), which all processes must be able to reach.
        fmt: ``"parquet"``, ``"csv"`` or ``"tsv"``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` … (``"auto"``: this process's GPU).
        batch_size: exams per forward pass (also the unit of the split).
        cache_dir, embeddings, num_workers, progress: as for ``ImageRiskPredictor.predict``
            (the progress bar is rank 0's share).

    Returns:
        On rank 0 (or a single process) an :class:`ExamRun`; None on the other ranks.

    Raises:
        RuntimeError: another process failed (its own error is reported by that process).
        riskmodel.bundle.BundleError, ValueError, OSError: as ``load_image_model`` / ``predict``.
    """
    import torch.distributed as dist

    from riskmodel.training import distributed as distrib

    owns_group = not dist.is_initialized()
    info = distrib.setup(device)
    target = None if output in (None, "-") else str(output)
    try:
        if not info.distributed:
            predictor = _load(bundle, info.device)
            out = predictor.predict(exams, batch_size=batch_size, cache_dir=cache_dir, embeddings=embeddings,
                                    progress=progress, num_workers=num_workers)
            with AtomicWriter(target, fmt) as writer:
                writer.write(out)
            return ExamRun(len(out), int((out["status"] == "ok").sum()), 1, target)
        return _predict_ranks(bundle, exams, target, info, fmt=fmt, batch_size=batch_size, cache_dir=cache_dir,
                              embeddings=embeddings, num_workers=num_workers, progress=progress)
    finally:
        if owns_group:
            distrib.cleanup(info)


def _predict_ranks(bundle: Any, exams: pd.DataFrame, target: str | None, info: Any, *, fmt: str,
                   batch_size: int, cache_dir: Any, embeddings: bool, num_workers: int,
                   progress: bool) -> ExamRun | None:
    """The multi-process part of :func:`predict_exams` (process group already set up)."""
    folder = ""
    if info.is_main:
        parent = Path(target).parent if target else Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        name = Path(target).name if target else "stdout"
        folder = tempfile.mkdtemp(dir=parent, prefix=f".{name}.shards-")
    folder = _broadcast_text(folder, info)
    try:
        error: BaseException | None = None
        try:
            start, stop = rank_rows(len(exams), batch_size, info.rank, info.world_size)
            predictor = _load(bundle, info.device)
            part = predictor.predict(exams.iloc[start:stop], batch_size=batch_size, cache_dir=cache_dir,
                                     embeddings=embeddings, progress=progress and info.is_main,
                                     num_workers=num_workers)
            if len(part) or info.is_main:
                with AtomicWriter(os.path.join(folder, f"rank-{info.rank:05d}.parquet"), "parquet") as shard:
                    shard.write(part)
        except Exception as exc:  # every rank must hear of it, or the others wait forever
            error = exc
        if not _all_ok(error is None, info):
            if error is not None:
                raise error
            raise RuntimeError("another torchrun process failed while scoring exams; see its error above")
        run = None
        if info.is_main:
            try:
                run = _merge(folder, info.world_size, target, fmt)
            except Exception as exc:
                error = exc
        if not _all_ok(error is None, info):
            if error is not None:
                raise error
            raise RuntimeError("rank 0 failed while merging the exam shards; see its error above")
        return run
    finally:
        if info.is_main:
            shutil.rmtree(folder, ignore_errors=True)


def _merge(folder: str, world_size: int, target: str | None, fmt: str) -> ExamRun:
    """Append the shards, in rank order, to the output (one shard in memory at a time)."""
    shards = [os.path.join(folder, f"rank-{r:05d}.parquet") for r in range(world_size)]
    present = [s for s in shards if os.path.exists(s)]
    frames = (pd.read_parquet(s) for s in present)
    n = ok = 0
    with AtomicWriter(target, fmt) as writer:
        written = False
        for frame in frames:
            if len(frame) == 0 and (written or len(present) > 1):
                continue  # rank 0's empty shard only stands for a table without exams
            writer.write(frame)
            written = True
            n += len(frame)
            ok += int((frame["status"] == "ok").sum())
    return ExamRun(n, ok, world_size, target)
