"""The seeded Mirai model whose outputs ``tests/data/mirai_parity_golden.json`` records from Mirai's own code.

``benchmarks/mirai_parity.py --golden`` fills a model built by Mirai's factory with :func:`seeded_state`, runs
Mirai's ``MiraiFull`` + ``MiraiCalibrator`` on :func:`golden_images` and writes the numbers; the CI test
(``tests/test_mirai_parity_golden.py``) rebuilds the same weights by name, without Mirai's code, and checks the
port against them. The values come from an integer hash (splitmix64) of (tensor name, element index, seed), so
they are identical on every platform and torch/numpy version (no random-number generator stream involved).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["GOLDEN_SEED", "golden_images", "golden_risk_factors", "hashed_uniform", "seeded_state", "seeded_tensor"]

GOLDEN_SEED = 19
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def hashed_uniform(name: str, n: int, seed: int) -> np.ndarray:
    """``n`` float64 values in [0, 1): splitmix64 of (crc32(name) ⊕ seed, index); exact everywhere."""
    key = np.uint64((zlib.crc32(name.encode()) ^ seed) & 0xFFFFFFFF)
    with np.errstate(over="ignore"):
        z = (np.arange(n, dtype=np.uint64) + key * np.uint64(1 << 20)) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def seeded_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int = GOLDEN_SEED) -> torch.Tensor:
    """The value of one state_dict entry, decided by its name only (Mirai's state_dict names):
    BatchNorm ``running_var`` in [0.5, 1.5), ``running_mean`` in ±0.2, counters 0, the hazard layer's fixed
    ``upper_triagular_mask`` upper-triangular ones, 1-D ``weight`` (norm gains) 1 ± 0.3, biases ± 0.1, other
    weights uniform with variance 1/fan-in."""
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    if name.endswith("upper_triagular_mask"):
        return torch.triu(torch.ones(shape, dtype=dtype))
    n = int(np.prod(shape)) if shape else 1
    u = 2.0 * hashed_uniform(name, n, seed) - 1.0  # [-1, 1)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        v = 1.0 + 0.5 * u
    elif leaf == "running_mean":
        v = 0.2 * u
    elif len(shape) == 1 and leaf == "weight":
        v = 1.0 + 0.3 * u
    elif len(shape) <= 1:
        v = 0.1 * u
    else:
        fan = int(np.prod(shape[1:]))
        v = u * (3.0 / fan) ** 0.5
    return torch.from_numpy(v.reshape(shape)).to(dtype)


def seeded_state(entries: Iterable[tuple[str, tuple[int, ...], torch.dtype]],
                 seed: int = GOLDEN_SEED) -> dict[str, torch.Tensor]:
    """``{name: seeded_tensor(...)}`` for ``(name, shape, dtype)`` entries (a module's state_dict layout)."""
    return {name: seeded_tensor(name, tuple(shape), dtype, seed) for name, shape, dtype in entries}


def golden_images(exams: int, size: tuple[int, int], seed: int = GOLDEN_SEED) -> torch.Tensor:
    """(exams, 4, 3, H, W) float32 inputs in Mirai's normalised range, the gray view repeated on 3 channels."""
    h, w = size
    u = hashed_uniform("images", exams * 4 * h * w, seed).reshape(exams, 4, 1, h, w)
    return torch.from_numpy(3.0 * u - 0.6).float().expand(exams, 4, 3, h, w).contiguous()


def golden_risk_factors(exams: int, widths: Iterable[int], seed: int = GOLDEN_SEED) -> torch.Tensor:
    """(exams, sum(widths)) Mirai risk-factor vectors: each key supplied (one-hot, or 1 for a binary key) with
    probability one half, else its block all zero (unknown)."""
    blocks = []
    for k, width in enumerate(widths):
        u = hashed_uniform(f"rf{k}", 2 * exams, seed).reshape(2, exams)
        block = torch.zeros(exams, width)
        known = u[0] < 0.5
        block[torch.arange(exams), torch.from_numpy((u[1] * width).astype(np.int64))] = torch.from_numpy(known).float()
        blocks.append(block)
    return torch.cat(blocks, dim=1)
