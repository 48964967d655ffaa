"""Contrastive losses: positives are views of one sample, negatives are other samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.distributed import gather_no_grad, gather_with_grad, rank, world_size

__all__ = ["info_nce", "moco_v2_loss", "moco_v3_loss"]


def _check_pair(loss: str, a: Tensor, b: Tensor, names: str = "q and k") -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"{loss} expects {names} of the same shape [N, D], got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _check_temperature(loss: str, temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"{loss} temperature must be > 0, got {temperature}")


def _gather_candidates(x: Tensor, gather: bool, with_grad: bool) -> tuple[Tensor, int]:
    """``x`` of every process (in rank order) as the candidates of a contrastive softmax, and the
    row offset of this process's own slice in them; ``(x, 0)`` in one process or with ``gather=False``."""
    if not gather or world_size() == 1:
        return x, 0
    gathered = gather_with_grad(x) if with_grad else gather_no_grad(x)
    return gathered, rank() * x.shape[0]


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
    _check_pair("info_nce", z1, z2, names="z1 and z2")
    _check_temperature("info_nce", temperature)
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)  # [2N, D]
    candidates, offset = _gather_candidates(z, gather, with_grad=True)  # [2N * W, D], ordered by rank

    logits = z @ candidates.T / temperature  # [2N, 2N * W]
    local = torch.arange(2 * n, device=z.device)
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[local, local + offset] = True
    logits = logits.masked_fill(is_self, float("-inf"))  # an anchor is not its own negative
    positives = (local + n) % (2 * n) + offset
    return F.cross_entropy(logits, positives)


def moco_v2_loss(q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.2) -> Tensor:
    """InfoNCE of MoCo: each query against its own key (positive) and a queue of past keys (negatives).

    He, Fan, Wu, Xie & Girshick (2020), "Momentum Contrast for Unsupervised Visual Representation
    Learning" (CVPR), eq. (1) and Algorithm 1; Chen, Fan, Girshick & He (2020), "Improved Baselines
    with Momentum Contrastive Learning" (v2: MLP head, t = 0.2). With ``q``, ``k`` [N, D] and
    ``queue`` [K, D], all L2-normalised here::

        logits_i = [q_i . k_i, q_i . queue_1, ..., q_i . queue_K] / t    # [N, 1 + K]
        L = mean_i CE(logits_i, label 0)
          = mean_i -log( e^(q_i.k_i / t) / (e^(q_i.k_i / t) + sum_j e^(q_i.queue_j / t)) )

    Keys and queue are constants (stop-gradient: they come from the momentum encoder); only ``q``
    receives a gradient. Nothing is gathered across processes here: under DDP the queue is
    already the same on every process (``FeatureQueue.enqueue`` gathers the keys of all of them),
    and each process averages over its own N queries. Computed in float32.
    """
    _check_pair("moco_v2_loss", q, k)
    if queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"moco_v2_loss expects a queue [K, {q.shape[1]}], got {tuple(queue.shape)}")
    _check_temperature("moco_v2_loss", temperature)
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.detach().float(), dim=1)
    negatives = F.normalize(queue.detach().float(), dim=1)
    logits = torch.cat([(q * k).sum(dim=1, keepdim=True), q @ negatives.T], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def moco_v3_loss(q: Tensor, k: Tensor, temperature: float = 1.0, gather: bool = True) -> Tensor:
    """The contrastive loss ``ctr(q, k)`` of MoCo v3: the keys of the batch are the candidates.

    Chen, Xie & He (2021), "An Empirical Study of Training Self-Supervised Vision Transformers"
    (ICCV), Algorithm 1. With ``q``, ``k`` [N, D] L2-normalised here, query i's positive is key i
    and the other keys of the (global) batch are its negatives::

        L = 2t * mean_i CE(q_i . [k_1 ... k_M] / t, label i)

    (the factor 2t as in the paper's code, which makes the gradient scale independent of t).
    With ``gather=True`` under DDP the keys of all processes are gathered (without gradient),
    M = N * world_size and this process's labels are offset by rank * N. Keys are constants
    (stop-gradient: momentum encoder); only ``q`` receives a gradient. Computed in float32.
    """
    _check_pair("moco_v3_loss", q, k)
    _check_temperature("moco_v3_loss", temperature)
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.detach().float(), dim=1)
    keys, offset = _gather_candidates(k, gather, with_grad=False)  # [N * W, D], ordered by rank
    labels = torch.arange(q.shape[0], device=q.device) + offset
    return 2 * temperature * F.cross_entropy(q @ keys.T / temperature, labels)
