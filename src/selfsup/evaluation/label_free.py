"""Label-free scores of a representation, for choosing a pretext method without labels (``--method auto``).

- ``rankme`` (Garrido et al. 2023, "RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised
  Representations by Their Rank", ICML): the effective rank of the embeddings; higher is better.
- ``alpha_req`` (Agrawal et al. 2022, "α-ReQ: Assessing Representation Quality in Self-Supervised Learning by
  measuring eigenspectrum decay", NeurIPS): the exponent α of the power law λ_i ∝ i^-α that the eigenvalues of
  the embeddings' covariance follow, fitted by least squares on log λ_i against log i. The paper finds that α
  near 1 goes with the best downstream accuracy: a much smaller α spreads variance over noise directions, a much
  larger one concentrates it in a few (towards collapse). A representation with fewer than two non-zero
  eigenvalues (constant, or collapsed to a line) has no decay to fit: α is infinite.
- ``combined_scores``: the rank-average of several scores over candidates (each candidate's average of its
  normalised ranks, 1 = best on every score, 0 = worst on every score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ..train.health import rankme as _rankme

RELATIVE_FLOOR = 1e-6
"""Eigenvalues below this fraction of the largest are numerical noise and left out of the fit."""


def rankme(embeddings: torch.Tensor) -> float:
    """RankMe of ``embeddings`` [N, D] (see :func:`selfsup.train.health.rankme`)."""
    return float(_rankme(embeddings))


def covariance_spectrum(embeddings: torch.Tensor) -> torch.Tensor:
    """The eigenvalues of the covariance of ``embeddings`` [N, D], largest first (float64)."""
    x = embeddings.double()
    x = x - x.mean(dim=0, keepdim=True)
    singular = torch.linalg.svdvals(x)
    return singular.square() / max(1, x.shape[0] - 1)


def fit_power_law(eigenvalues: torch.Tensor, floor: float = RELATIVE_FLOOR) -> float:
    """α of λ_i ∝ i^-α fitted on log-log axes over the eigenvalues above ``floor`` × the largest; ``inf`` when
    fewer than two are."""
    values = torch.sort(eigenvalues.double(), descending=True).values
    if values.numel() == 0 or not values[0] > 0:
        return math.inf
    values = values[values > floor * values[0]]
    if values.numel() < 2:
        return math.inf
    log_i = torch.log(torch.arange(1, values.numel() + 1, dtype=torch.float64))
    log_l = torch.log(values)
    log_i_c = log_i - log_i.mean()
    slope = (log_i_c * (log_l - log_l.mean())).sum() / log_i_c.square().sum()
    return float(-slope)


def alpha_req(embeddings: torch.Tensor) -> float:
    """α-ReQ's decay coefficient α of the embeddings' covariance eigenspectrum (best near 1)."""
    return fit_power_law(covariance_spectrum(embeddings))


def alpha_quality(alpha: float) -> float:
    """Higher is better: ``-|log α|``, so α = 1 scores 0 and α = 0.5 and α = 2 score alike (α-ReQ's optimum is a
    range around 1 on a log scale); an infinite or non-positive α scores ``-inf``."""
    if not math.isfinite(alpha) or alpha <= 0:
        return -math.inf
    return -abs(math.log(alpha))


def _ranks(values: Sequence[float]) -> list[float]:
    """Normalised ranks in [0, 1] (1 = highest value; ties share their average rank; one value: 1)."""
    n = len(values)
    if n == 1:
        return [1.0]
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 / (n - 1)
        i = j + 1
    return ranks


def combined_scores(scores: Mapping[str, Sequence[float]], weights: Sequence[float] | None = None) -> list[float]:
    """The weighted average, per candidate, of its normalised rank on each score (``scores``: score name -> one
    value per candidate, higher better; NaN counts as worst)."""
    names = list(scores)
    weights = list(weights) if weights is not None else [1.0] * len(names)
    per_score = [_ranks([-math.inf if math.isnan(v) else v for v in scores[name]]) for name in names]
    total = sum(weights)
    count = len(next(iter(scores.values()))) if scores else 0
    return [sum(w * ranks[i] for w, ranks in zip(weights, per_score)) / total for i in range(count)]
