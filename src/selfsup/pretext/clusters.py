"""Pseudo-labels by clustering (pure tensor ops, no learned weights, any modality).

- :func:`sinkhorn`: SwAV's equal-partition soft assignment of a batch to K prototypes
  (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
  Assignments", NeurIPS, §3.1 and Algorithm 1; after Cuturi 2013).
- :func:`kmeans` / :func:`assign`: k-means on [N, D] features in torch, on any device, with
  k-means++ seeding (Arthur & Vassilvitskii 2007) and distances computed in chunks, so a million
  frames of speech features fit in memory (HuBERT's targets, Hsu et al. 2021; DeepCluster,
  Caron et al. 2018).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from selfsup.distributed import all_reduce_sum, gather_no_grad, world_size

__all__ = ["assign", "kmeans", "sinkhorn"]

_CHUNK_ELEMENTS = 1 << 24  # distance-matrix entries per chunk: 64 MiB in float32


@torch.no_grad()
def sinkhorn(scores: Tensor, epsilon: float = 0.05, iterations: int = 3) -> Tensor:
    """Soft codes Q [B, K] of ``scores`` [B, K] (sample-to-prototype similarities) under the
    equal-partition constraint: every row sums to 1 and, over the whole (global) batch, every
    prototype receives the same mass B_total / K.

    SwAV's ``distributed_sinkhorn``: with ``P = exp(scores / epsilon)`` (transposed, K x B) scaled to
    sum 1, alternate ``iterations`` times: rows (prototypes) to 1/K, columns (samples) to
    1/B_total; return ``B_total * P`` transposed. Under DDP the total and the row sums run over
    every process (B_total = B * world_size, equal batches as in SwAV), so the codes are those of
    the global batch; the column sums are per sample, hence local. Computed in float32 in the log
    domain (log-sum-exp with the global row maxima): the same values as SwAV's code, without its
    overflow (exp(1 / 0.05) is fine, exp(50 / 0.05) is not) for scores other than cosines.
    """
    if scores.ndim != 2:
        raise ValueError(f"sinkhorn expects scores [B, K], got shape {tuple(scores.shape)}")
    if epsilon <= 0 or iterations < 0:
        raise ValueError(f"sinkhorn needs epsilon > 0 and iterations >= 0, got {epsilon} and {iterations}")
    log_q = scores.detach().float().T / epsilon  # [K, B]
    num_prototypes, total = log_q.shape[0], log_q.shape[1] * world_size()
    log_q = log_q - torch.logsumexp(_log_row_sums(log_q), dim=0)  # sums to 1
    for _ in range(iterations):
        log_q = log_q - _log_row_sums(log_q) - math.log(num_prototypes)  # prototypes: 1/K each
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(total)  # samples: 1/B each
    return torch.exp(log_q + math.log(total)).T


def _log_row_sums(log_q: Tensor) -> Tensor:
    """log of the row sums of exp(log_q) [K, B] over every process's columns: [K, 1]."""
    row_max = gather_no_grad(log_q.amax(dim=1)[None]).amax(dim=0)[:, None]  # the global maxima
    return row_max + all_reduce_sum(torch.exp(log_q - row_max).sum(dim=1, keepdim=True)).log()


def _chunk_rows(chunk_size: int | None, k: int) -> int:
    return chunk_size if chunk_size is not None else max(1, _CHUNK_ELEMENTS // max(k, 1))


def _squared_norms(features: Tensor, chunk_size: int | None = None) -> Tensor:
    step = _chunk_rows(chunk_size, features.shape[1])
    return torch.cat([f.float().pow(2).sum(1) for f in features.split(step)])


def _nearest(features: Tensor, centroids: Tensor, chunk_size: int | None = None,
             x_sq: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(index of the nearest centroid [N] int64, squared distance to it [N] float32), chunk by chunk.

    ``|x - c|^2 = |x|^2 - 2 x.c + |c|^2`` with one matmul per chunk of rows (clamped at 0);
    ``x_sq`` are the precomputed ``|x|^2`` [N].
    """
    if x_sq is None:
        x_sq = _squared_norms(features, chunk_size)
    c = centroids.float()
    c_sq = c.pow(2).sum(1)
    labels = torch.empty(features.shape[0], dtype=torch.long, device=features.device)
    dists = torch.empty(features.shape[0], dtype=torch.float32, device=features.device)
    step = _chunk_rows(chunk_size, c.shape[0])
    for start in range(0, features.shape[0], step):
        x = features[start : start + step].float()
        d = (x_sq[start : start + step, None] - 2 * x @ c.T + c_sq).clamp_min_(0)
        dists[start : start + step], labels[start : start + step] = d.min(dim=1)
    return labels, dists


@torch.no_grad()
def assign(features: Tensor, centroids: Tensor, chunk_size: int | None = None) -> Tensor:
    """Index of the nearest centroid (squared Euclidean) for every row of ``features`` [N, D]: [N] int64.

    Distances are computed ``chunk_size`` rows at a time (default: 2^24 / K rows, 64 MiB of
    float32 distances), on the features' device.
    """
    if features.ndim != 2 or centroids.ndim != 2 or features.shape[1] != centroids.shape[1]:
        raise ValueError(f"assign expects features [N, D] and centroids [K, D], got "
                         f"{tuple(features.shape)} and {tuple(centroids.shape)}")
    return _nearest(features, centroids.to(features.device), chunk_size)[0]


def _sample(weights: Tensor, generator: torch.Generator) -> int:
    """One index drawn with probability proportional to ``weights`` (uniform when they are all 0).

    A cumulative sum + binary search, so N is not limited to torch.multinomial's 2^24 categories.
    """
    cumulative = weights.double().cumsum(0)
    total = float(cumulative[-1])
    if not total > 0:
        return int(torch.randint(weights.shape[0], (1,), generator=generator))
    u = torch.rand((), generator=generator, dtype=torch.float64).item() * total
    target = torch.tensor([u], dtype=torch.float64, device=weights.device)
    return min(int(torch.searchsorted(cumulative, target, right=True)), weights.shape[0] - 1)


def _kmeans_pp(features: Tensor, k: int, generator: torch.Generator, x_sq: Tensor | None = None) -> Tensor:
    """k-means++ seeding: the first centre uniformly, each next one with probability ∝ D(x)^2,
    the squared distance to the nearest centre chosen so far (kept up to date in O(N D) per centre)."""
    n = features.shape[0]
    centroids = torch.empty(k, features.shape[1], dtype=torch.float32, device=features.device)
    centroids[0] = features[int(torch.randint(n, (1,), generator=generator))].float()
    x_sq = _squared_norms(features) if x_sq is None else x_sq
    dist = _nearest(features, centroids[:1], x_sq=x_sq)[1]
    for j in range(1, k):
        centroids[j] = features[_sample(dist, generator)].float()
        dist = torch.minimum(dist, _nearest(features, centroids[j : j + 1], x_sq=x_sq)[1])
    return centroids


@torch.no_grad()
def kmeans(features: Tensor, k: int, iterations: int = 50, seed: int = 0,
           chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
    """k-means (Lloyd's algorithm) of ``features`` [N, D] into ``k`` clusters -> (centroids [k, D]
    float32, labels [N] int64), on the features' device.

    Seeded with k-means++ from a CPU ``torch.Generator(seed)`` (same result on any device up to
    floating point); then up to ``iterations`` rounds of assign-to-nearest / centroid = mean of its
    members, stopping early when no label changes. A cluster left empty is re-seeded at the point
    farthest from its nearest centroid (as scikit-learn does, but one empty cluster at a time,
    each new seed counting as a centroid for the next), so all k clusters stay in use.
    Sums are accumulated in float32 with ``index_add_``; distances come from :func:`assign`'s
    chunked computation, so memory stays O(N + chunk * k). The labels returned are the nearest
    centroids of the returned centroids.
    """
    if features.ndim != 2:
        raise ValueError(f"kmeans expects features [N, D], got shape {tuple(features.shape)}")
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans needs 1 <= k <= N = {n}, got k={k}")
    generator = torch.Generator().manual_seed(seed)
    x_sq = _squared_norms(features, chunk_size)
    centroids = _kmeans_pp(features, k, generator, x_sq)
    labels, dists = _nearest(features, centroids, chunk_size, x_sq)
    for _ in range(iterations):
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, features.float())
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centroids)
        empty = (counts == 0).nonzero().flatten().tolist()
        for j in empty:  # re-seed at the point worst served so far, one cluster after the other
            centroids[j] = features[int(dists.argmax())].float()
            dists = torch.minimum(dists, _nearest(features, centroids[j : j + 1], x_sq=x_sq)[1])
        new_labels, dists = _nearest(features, centroids, chunk_size, x_sq)
        converged = len(empty) == 0 and torch.equal(new_labels, labels)
        labels = new_labels
        if converged:
            break
    return centroids, labels
