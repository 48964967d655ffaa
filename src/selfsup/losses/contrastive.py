"""Contrastive losses: positives are views of one sample, negatives are other samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.distributed import gather_with_grad, rank, world_size

__all__ = ["info_nce"]


def info_nce(z1: Tensor, z2: Tensor, temperature: float = 0.5, gather: bool = True) -> Tensor:
    """NT-Xent (normalised temperature-scaled cross entropy) loss of SimCLR.

    Chen, Kornblith, Norouzi & Hinton (2020), "A Simple Framework for Contrastive
    Learning of Visual Representations".

    ``z1[i]`` and ``z2[i]`` ([N, D], any scale: they are L2-normalised here) are two views
    of sample i. Over the 2N embeddings, with ``sim(u, v) = u.v / (|u| |v|)``, anchor i
    with positive p(i) (its other view) has loss::

        l_i = -log( exp(sim(z_i, z_p(i)) / t) / sum_{k != i} exp(sim(z_i, z_k) / t) )

    and the result is the mean of ``l_i`` over the 2N anchors. With ``gather=True`` under
    DDP, the embeddings of all processes are gathered (with gradients) and serve as
    extra negatives: each local anchor is contrasted with 2N * world_size candidates.
    Computed as one ``cross_entropy`` over the similarity matrix with the self-similarity
    masked out, in float32.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"info_nce expects z1 and z2 of the same shape [N, D], got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"info_nce temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)  # [2N, D]

    offset = 0
    candidates = z
    if gather and world_size() > 1:
        candidates = gather_with_grad(z)  # [2N * W, D], ordered by rank
        offset = rank() * 2 * n

    logits = z @ candidates.T / temperature  # [2N, 2N * W]
    local = torch.arange(2 * n, device=z.device)
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[local, local + offset] = True
    logits = logits.masked_fill(is_self, float("-inf"))  # an anchor is not its own negative
    positives = (local + n) % (2 * n) + offset
    return F.cross_entropy(logits, positives)
