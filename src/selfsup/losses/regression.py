"""Regression losses between an online prediction and a (stop-gradient) target."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["negative_cosine"]


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """BYOL regression loss between online predictions and (stop-gradient) targets.

    Grill et al. (2020), "Bootstrap Your Own Latent: A New Approach to Self-Supervised
    Learning". For prediction ``p`` and target projection ``z`` ([B, D])::

        L = mean_b ( 2 - 2 * <p_b, sg(z_b)> / (|p_b| |z_b|) )

    i.e. the squared distance between the L2-normalised vectors; it lies in [0, 4].
    ``z`` is detached here, so no gradient reaches it.
    """
    if p.shape != z.shape:
        raise ValueError(
            f"negative_cosine expects p and z of the same shape, got {tuple(p.shape)} "
            f"and {tuple(z.shape)}"
        )
    cos = F.cosine_similarity(p.float(), z.detach().float(), dim=-1)
    return (2.0 - 2.0 * cos).mean()
