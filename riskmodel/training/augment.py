"""Training-time augmentation of exam batches: small composable transforms on tensors.

Each transform takes ``images`` of shape ``(B, V, C, H, W)`` (B exams, V views, canonical
orientation: chest wall at column 0, values in [0, 1]) with the view ``mask`` of shape
``(B, V)`` and a ``torch.Generator``, and returns new images of the same shape. Padding views
(mask False) are left as they are. Transforms are drawn independently per view, as Mirai's
training pipeline does (``rand_ver_flip``, ``rotate_range`` ±20°; ``reference/mirai.md``).

Only label-preserving changes are used: a top-bottom flip and a small rotation about the
image centre keep the chest wall on the left; a small gain/offset on intensities mimics
exposure differences. Left-right flips are not used (they would move the chest wall).

Example:
    >>> import torch
    >>> aug = Compose([RandomVerticalFlip(0.5), RandomRotation(20.0), RandomIntensity(0.1, 0.02)])
    >>> x = torch.rand(2, 4, 1, 32, 26)
    >>> y = aug(x, torch.ones(2, 4, dtype=torch.bool), torch.Generator().manual_seed(0))
    >>> tuple(y.shape)
    (2, 4, 1, 32, 26)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


class Transform:
    """Base class: ``transform(images, mask, generator) -> images``."""

    def __call__(self, images: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _draw(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


class RandomVerticalFlip(Transform):
    """Flip each view top-bottom with probability ``p`` (Mirai's ``rand_ver_flip``)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p}: must be in [0, 1]")
        self.p = p

    def __call__(self, images, mask, generator):
        flip = (_draw(tuple(images.shape[:2]), generator) < self.p).to(images.device) & mask
        return torch.where(flip[:, :, None, None, None], images.flip(-2), images)


class RandomRotation(Transform):
    """Rotate each view about its centre by a uniform angle in ``[-degrees, degrees]``.

    Bilinear resampling; pixels rotated in from outside the image are 0 (background).
    """

    def __init__(self, degrees: float = 20.0) -> None:
        if degrees < 0:
            raise ValueError(f"degrees={degrees}: must be >= 0")
        self.degrees = degrees

    def __call__(self, images, mask, generator):
        if self.degrees == 0:
            return images
        b, v, c, h, w = images.shape
        angle = (_draw((b * v,), generator) * 2 - 1) * math.radians(self.degrees)
        angle = torch.where(mask.reshape(-1).cpu(), angle, torch.zeros_like(angle))
        cos, sin = torch.cos(angle), torch.sin(angle)
        # affine_grid works in normalised coordinates; correct for the aspect ratio so the rotation is rigid.
        theta = torch.zeros(b * v, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
        theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
        flat = images.reshape(b * v, c, h, w)
        grid = F.affine_grid(theta.to(flat.device, flat.dtype), list(flat.shape), align_corners=False)
        out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(b, v, c, h, w)


class RandomIntensity(Transform):
    """Multiply each view by ``1 + U(-gain, gain)`` and add ``U(-offset, offset)`` inside the breast.

    Background pixels (exactly 0) stay 0; the result is clipped to [0, 1].
    """

    def __init__(self, gain: float = 0.1, offset: float = 0.02) -> None:
        if gain < 0 or offset < 0:
            raise ValueError("gain and offset must be >= 0")
        self.gain, self.offset = gain, offset

    def __call__(self, images, mask, generator):
        shape = (*images.shape[:2], 1, 1, 1)
        g = 1 + (_draw(shape, generator) * 2 - 1) * self.gain
        o = (_draw(shape, generator) * 2 - 1) * self.offset
        keep = mask[:, :, None, None, None]
        g = torch.where(keep.cpu(), g, torch.ones_like(g)).to(images.device, images.dtype)
        o = torch.where(keep.cpu(), o, torch.zeros_like(o)).to(images.device, images.dtype)
        return torch.where(images > 0, (images * g + o).clamp(0.0, 1.0), images)


class Compose(Transform):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, images, mask, generator):
        for t in self.transforms:
            images = t(images, mask, generator)
        return images


def default_augmentation() -> Compose:
    """The training augmentation used by ``TrainConfig(augment=True)``: flip p=0.5, ±20°, gain ±10%."""
    return Compose([RandomVerticalFlip(0.5), RandomRotation(20.0), RandomIntensity(0.1, 0.02)])
