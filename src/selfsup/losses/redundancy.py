"""Redundancy-reduction and variance-covariance losses (Barlow Twins, VICReg)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.distributed import all_reduce_sum, gather_with_grad, world_size

__all__ = ["VICRegTerms", "barlow_twins", "vicreg", "vicreg_terms"]


def _check_pair(name: str, z1: Tensor, z2: Tensor) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"{name} expects z1 and z2 of the same shape [N, D], got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )


def _off_diagonal(m: Tensor) -> Tensor:
    """The n * (n - 1) off-diagonal entries of a square matrix, flattened (the official codes' view trick)."""
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins(z1: Tensor, z2: Tensor, lambda_offdiag: float = 5e-3, gather: bool = True,
                 eps: float = 1e-5) -> Tensor:
    """Barlow Twins redundancy-reduction loss.

    Zbontar, Jing, Misra, LeCun & Deny (2021), "Barlow Twins: Self-Supervised Learning via
    Redundancy Reduction" (ICML). ``z1``, ``z2`` are [N, D] projections of two views. Each
    dimension is standardised over the batch, ``zn = (z - mean) / sqrt(var + eps)`` (biased
    variance, as the official code's ``BatchNorm1d(affine=False)``); with the cross-correlation
    matrix ``C = zn1^T zn2 / N`` ([D, D])::

        L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2

    With ``gather=True`` under DDP it is the loss of the global batch, as the official code
    computes it (its model is converted to ``SyncBatchNorm`` and ``C`` is all-reduced): the
    per-dimension mean and variance are global statistics, ``C`` is summed over the processes
    and divided by the global batch size ``N * world_size``, all through autograd-aware
    all-reduces of [D] and [D, D] tensors (every process must pass the same N), so DDP's
    gradient averaging yields exactly the global loss's gradient (the official code's plain
    ``all_reduce`` passes no gradient back, which scales it by 1 / world_size). With
    ``gather=False`` each process uses only its own batch. Computed in float32.
    """
    _check_pair("barlow_twins", z1, z2)
    reduce = all_reduce_sum if gather else (lambda x: x)
    n = z1.shape[0] * (world_size() if gather else 1)

    def standardize(z: Tensor) -> Tensor:
        z = z.float()
        centred = z - reduce(z.sum(0)) / n
        return centred / torch.sqrt(reduce(centred.pow(2).sum(0)) / n + eps)

    c = reduce(standardize(z1).T @ standardize(z2)) / n
    return (c.diagonal() - 1).pow(2).sum() + lambda_offdiag * _off_diagonal(c).pow(2).sum()


class VICRegTerms(NamedTuple):
    """The three unweighted terms of the VICReg loss."""

    invariance: Tensor
    variance: Tensor
    covariance: Tensor

    def weighted(self, invariance_weight: float = 25.0, variance_weight: float = 25.0,
                 covariance_weight: float = 1.0) -> Tensor:
        """The VICReg loss ``lambda s + mu v + nu c`` (paper defaults lambda = mu = 25, nu = 1)."""
        return (invariance_weight * self.invariance + variance_weight * self.variance
                + covariance_weight * self.covariance)


def vicreg_terms(z1: Tensor, z2: Tensor, gamma: float = 1.0, eps: float = 1e-4, gather: bool = True) -> VICRegTerms:
    """Invariance, variance and covariance terms of VICReg, unweighted.

    Bardes, Ponce & LeCun (2022), "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning" (ICLR). For [N, D] embeddings ``Z = z1``, ``Z' = z2``::

        invariance  s(Z, Z') = 1/(N D) sum_n |z_n - z'_n|^2                      (mean squared error)
        variance    v(Z) = 1/D sum_j max(0, gamma - sqrt(Var(z_.j) + eps))      (unbiased Var)
        covariance  c(Z) = 1/D sum_{i != j} Cov(Z)_ij^2,  Cov(Z) = (Z - mean)^T (Z - mean) / (N - 1)

    returned as ``(s(Z, Z'), (v(Z) + v(Z')) / 2, c(Z) + c(Z'))`` -- the official code halves
    the variance pair (the paper's Eq. 6 does not); its coefficients 25/25/1 assume this. Under
    DDP with ``gather=True`` the embeddings of every process are gathered with gradients for
    the variance and covariance terms (the official ``FullGatherLayer``), so N is the global
    batch; the invariance term is always local, its average over processes being the global
    one. Computed in float32.
    """
    _check_pair("vicreg", z1, z2)
    z1, z2 = z1.float(), z2.float()
    invariance = F.mse_loss(z1, z2)
    if gather and world_size() > 1:
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
    if z1.shape[0] < 2:
        raise ValueError(f"vicreg needs at least 2 samples to estimate variances, got {z1.shape[0]}")

    def variance(z: Tensor) -> Tensor:
        return F.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()

    def covariance(z: Tensor) -> Tensor:
        z = z - z.mean(dim=0)
        return _off_diagonal(z.T @ z / (z.shape[0] - 1)).pow(2).sum() / z.shape[1]

    return VICRegTerms(invariance, (variance(z1) + variance(z2)) / 2, covariance(z1) + covariance(z2))


def vicreg(z1: Tensor, z2: Tensor, invariance_weight: float = 25.0, variance_weight: float = 25.0,
           covariance_weight: float = 1.0, gamma: float = 1.0, eps: float = 1e-4, gather: bool = True) -> Tensor:
    """VICReg loss ``lambda s + mu (v(Z) + v(Z')) / 2 + nu (c(Z) + c(Z'))`` with the paper's
    lambda = mu = 25, nu = 1; the terms and their DDP behaviour are those of :func:`vicreg_terms`."""
    terms = vicreg_terms(z1, z2, gamma=gamma, eps=eps, gather=gather)
    return terms.weighted(invariance_weight, variance_weight, covariance_weight)
