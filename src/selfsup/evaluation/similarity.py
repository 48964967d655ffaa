"""Semantic textual similarity evaluation: Spearman correlation between the cosine similarity of
frozen sentence embeddings and gold similarity scores, the STS protocol of Reimers & Gurevych 2019
("Sentence-BERT") and Gao et al. 2021 ("SimCSE")."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import Tensor, nn

from selfsup.evaluation.features import extract_features

__all__ = ["spearman", "spearman_similarity"]


def spearman(predicted: Tensor, gold: Tensor) -> float:
    """Spearman rank correlation of two [N] tensors; nan for fewer than 2 pairs or a constant side."""
    x = predicted.detach().cpu().double().reshape(-1).numpy()
    y = gold.detach().cpu().double().reshape(-1).numpy()
    if x.shape != y.shape:
        raise ValueError(f"predicted and gold differ in length: {x.shape[0]} and {y.shape[0]}")
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    rho = float(spearmanr(x, y).statistic)
    return rho if math.isfinite(rho) else float("nan")


def spearman_similarity(
    encoder: nn.Module,
    first_inputs: Tensor,
    second_inputs: Tensor,
    scores: Tensor,
    transform: Callable[[Tensor], Tensor],
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> float:
    """Spearman correlation between ``cos(embed(first[i]), embed(second[i]))`` and ``scores[i]``.

    Embeddings come from :func:`selfsup.evaluation.features.extract_features` (frozen encoder,
    eval mode, ``transform`` applied to each batch on ``device``).
    """
    if first_inputs.shape[0] != second_inputs.shape[0] or first_inputs.shape[0] != scores.reshape(-1).shape[0]:
        raise ValueError(
            f"need as many first inputs, second inputs and scores, got {first_inputs.shape[0]}, "
            f"{second_inputs.shape[0]} and {scores.reshape(-1).shape[0]}"
        )
    a = extract_features(encoder, first_inputs, transform, batch_size, device)
    b = extract_features(encoder, second_inputs, transform, batch_size, device)
    if a.shape[0] == 0:
        return float("nan")
    return spearman(F.cosine_similarity(a, b, dim=1), scores)
