"""Transformation-prediction pretext data: RotNet (Gidaris et al. 2018, "Unsupervised
Representation Learning by Predicting Image Rotations").

Label ``k`` means the image was rotated by ``k * 90`` degrees counter-clockwise, i.e.
``torch.rot90(image, k, dims=(-2, -1))``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NUM_ROTATIONS", "rotate_all", "rotate_random"]

NUM_ROTATIONS = 4


def _check_square(images: Tensor) -> None:
    if images.ndim < 3 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation needs square images [..., H, W] with H == W, got {tuple(images.shape)}")


def _all_rotations(images: Tensor) -> Tensor:
    """[B, C, H, W] -> [4, B, C, H, W]; entry k is rotated by k*90 degrees counter-clockwise."""
    return torch.stack([torch.rot90(images, k, dims=(-2, -1)) for k in range(NUM_ROTATIONS)])


def rotate_all(images: Tensor) -> tuple[Tensor, Tensor]:
    """Every image in all four rotations (RotNet's training batch).

    ``images`` [B, C, H, W] -> (rotated [4B, C, H, W], labels [4B] int64), rotation-major:
    rows ``k*B : (k+1)*B`` hold the whole batch rotated by ``k*90`` degrees.
    """
    _check_square(images)
    b = images.shape[0]
    rotated = _all_rotations(images).flatten(0, 1)
    labels = torch.arange(NUM_ROTATIONS, device=images.device).repeat_interleave(b)
    return rotated, labels


def rotate_random(images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """One uniformly random rotation per image: [B, C, H, W] -> (rotated [B, C, H, W], labels [B]).

    Labels are drawn on the generator's device (CPU without a generator) and moved to the images'.
    """
    _check_square(images)
    b = images.shape[0]
    label_device = generator.device if generator is not None else torch.device("cpu")
    labels = torch.randint(0, NUM_ROTATIONS, (b,), generator=generator, device=label_device).to(images.device)
    rotated = _all_rotations(images)[labels, torch.arange(b, device=images.device)]
    return rotated, labels
