"""Self-distillation and online-clustering losses (DINO, SwAV).

Both are a cross entropy between a target distribution computed on one view and a prediction
made from another view of the same sample, averaged over every (target view a, predicting view b)
pair with a != b. The target views must come first among the predicting views: target view a is
predicting view a, which is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["dino_loss", "swav_loss"]


def _stack(views: Sequence[Tensor], what: str) -> Tensor:
    shapes = {tuple(v.shape) for v in views}
    if not views or len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"{what} must be a non-empty list of [B, K] tensors of one shape, got shapes {sorted(shapes)}")
    return torch.stack(list(views)).float()


def _cross_view_cross_entropy(targets: Tensor, log_probs: Tensor) -> Tensor:
    """mean over pairs (a < T, b < S, a != b) of mean_i -sum_k targets[a, i, k] * log_probs[b, i, k]."""
    num_targets, num_views = targets.shape[0], log_probs.shape[0]
    if targets.shape[1:] != log_probs.shape[1:] or num_views < num_targets or num_views < 2:
        raise ValueError(f"need at least as many predicting views as target views (and 2 views), of one shape [B, K]; "
                         f"got targets {tuple(targets.shape)} and predictions {tuple(log_probs.shape)}")
    ce = -torch.einsum("aik,bik->ab", targets, log_probs) / targets.shape[1]  # [T, S]
    different = ~torch.eye(num_targets, num_views, dtype=torch.bool, device=ce.device)
    return ce[different].mean()


def dino_loss(student_logits: Sequence[Tensor], teacher_logits: Sequence[Tensor], center: Tensor,
              student_temp: float = 0.1, teacher_temp: float = 0.04) -> Tensor:
    """DINO's self-distillation loss.

    Caron, Touvron, Misra, Jegou, Mairal, Bojanowski & Joulin (2021), "Emerging Properties in
    Self-Supervised Vision Transformers" (ICCV), Eq. 3 and Algorithm 1. ``student_logits`` holds
    one [B, K] tensor per crop (the globals first, then the locals), ``teacher_logits`` one per
    global crop, ``center`` [K] or [1, K] the running mean of the teacher's outputs::

        P_t^a = softmax((t_a - center) / teacher_temp)        # centred, sharpened, no gradient
        P_s^b = softmax(s_b / student_temp)
        L = mean over (a, b), a != b, of  mean_i  - sum_k P_t^a[i, k] log P_s^b[i, k]

    The teacher side is detached. Computed in float32. Under DDP nothing is gathered: each
    process averages over its own samples (the center is all-reduced by its owner,
    ``methods.momentum.Centering``).
    """
    if student_temp <= 0 or teacher_temp <= 0:
        raise ValueError(f"dino_loss temperatures must be > 0, got {student_temp} and {teacher_temp}")
    student = _stack(student_logits, "student_logits")
    teacher = _stack(teacher_logits, "teacher_logits").detach()
    targets = F.softmax((teacher - center.detach().float()) / teacher_temp, dim=-1)
    return _cross_view_cross_entropy(targets, F.log_softmax(student / student_temp, dim=-1))


def swav_loss(scores: Sequence[Tensor], codes: Sequence[Tensor], temperature: float = 0.1) -> Tensor:
    """SwAV's swapped-prediction loss.

    Caron, Misra, Mairal, Goyal, Bojanowski & Joulin (2020), "Unsupervised Learning of Visual
    Features by Contrasting Cluster Assignments" (NeurIPS), Eq. 1-2. ``scores`` holds one [B, K]
    tensor of prototype scores ``z_b^T c_k`` per crop, ``codes`` the [B, K] codes (e.g. from
    :func:`selfsup.pretext.clusters.sinkhorn`) of the first ``len(codes)`` crops::

        p_b = softmax(scores_b / temperature)
        L = mean over (a, b), a != b, of  mean_i  - sum_k q_a[i, k] log p_b[i, k]

    i.e. each crop predicts the code of every other crop that has one. The codes are detached.
    Computed in float32. Under DDP nothing is gathered here; the Sinkhorn codes are computed
    over the global batch.
    """
    if temperature <= 0:
        raise ValueError(f"swav_loss temperature must be > 0, got {temperature}")
    targets = _stack(codes, "codes").detach()
    return _cross_view_cross_entropy(targets, F.log_softmax(_stack(scores, "scores") / temperature, dim=-1))
