"""The deterministic evaluation transform of image batches: resize if needed, then normalise."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .image_ops import check_images, normalize, to_float

__all__ = ["EvalTransform", "eval_transform"]


class EvalTransform:
    """Deterministic evaluation transform: bilinear (antialiased) resize to ``size`` if needed, normalise."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``images`` [B, 3, H, W] -> float32 [B, 3, size, size]; ``generator`` is ignored."""
        check_images(images)
        x = to_float(images)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            ).clamp_(0.0, 1.0)
        return normalize(x)


def eval_transform(size: int) -> EvalTransform:
    """Deterministic resize + normalise used for evaluation / linear probing."""
    return EvalTransform(size)
