"""Regression losses between an online prediction and a (stop-gradient) target."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["negative_cosine"]


def negative_cosine(p: Tensor, z: Tensor, squared_distance: bool = True) -> Tensor:
    """Negative cosine similarity between online predictions and stop-gradient targets.

    ``p`` and ``z`` are [B, D]; ``z`` is detached here, so no gradient reaches it. With
    ``squared_distance=True``, BYOL's form (Grill et al. (2020), "Bootstrap Your Own Latent:
    A New Approach to Self-Supervised Learning")::

        L = mean_b ( 2 - 2 * <p_b, sg(z_b)> / (|p_b| |z_b|) )

    i.e. the squared distance between the L2-normalised vectors; it lies in [0, 4]. With
    ``squared_distance=False``, SimSiam's D (Chen & He (2021), "Exploring Simple Siamese
    Representation Learning", Eq. 1)::

        D(p, z) = - mean_b <p_b, sg(z_b)> / (|p_b| |z_b|)

    in [-1, 1]. The two differ only by an affine map (2 + 2 D), so their gradients are
    proportional. Nothing is gathered across processes: each sample's term is local.
    """
    if p.shape != z.shape:
        raise ValueError(
            f"negative_cosine expects p and z of the same shape, got {tuple(p.shape)} "
            f"and {tuple(z.shape)}"
        )
    cos = F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()
    return 2.0 - 2.0 * cos if squared_distance else -cos
