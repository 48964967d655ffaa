"""Regression losses between an online prediction and a (stop-gradient) target."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["embedding_regression", "layer_regression", "negative_cosine"]


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


def embedding_regression(student: Tensor, teacher: Tensor, normalize: bool = True) -> Tensor:
    """Distance between a student's (projected) embeddings and a frozen teacher's, both [B, D].

    ``normalize=False``: the mean squared error of Reimers & Gurevych (2020), "Making Monolingual Sentence
    Embeddings Multilingual using Knowledge Distillation" (EMNLP, Eq. 1), ``mean_b,d (s_bd - t_bd)^2``.
    ``normalize=True``: the same on L2-normalised embeddings summed over dimensions, ``mean_b |ŝ_b - t̂_b|^2 =
    2 - 2 cos(s_b, t_b)`` (:func:`negative_cosine`), which ignores the teacher's norms. ``teacher`` is detached.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"embedding_regression expects student and teacher embeddings of one shape, got "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    if normalize:
        return negative_cosine(student, teacher)
    return F.mse_loss(student.float(), teacher.detach().float())


def layer_regression(pred: Tensor, target: Tensor, mask: Tensor | None = None, cosine_weight: float = 1.0) -> Tensor:
    """DistilHuBERT's loss for one predicted teacher layer (Chang, Yang, Lee 2022, "DistilHuBERT: Speech
    Representation Learning by Layer-wise Distillation of Hidden-Unit BERT", ICASSP, Eq. 1)::

        L = mean_t [ mean_d |pred_t - y_t| - lambda * log sigmoid(cos(pred_t, y_t)) ]

    over the positions t where ``mask`` [B, T] is 1 (all when None); ``pred`` and ``target`` are [B, T, D],
    ``target`` detached; lambda is ``cosine_weight`` (1 in the paper)."""
    if pred.shape != target.shape:
        raise ValueError(f"layer_regression expects pred and target of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    pred, target = pred.float(), target.detach().float()
    per_position = (pred - target).abs().mean(-1) \
        - cosine_weight * F.logsigmoid(F.cosine_similarity(pred, target, dim=-1))
    if mask is None:
        return per_position.mean()
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp_min(1.0)
