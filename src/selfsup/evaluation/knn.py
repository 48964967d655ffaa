"""Weighted k-nearest-neighbour evaluation of frozen features.

Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
§3.4: cosine similarity to the ``k`` nearest training features, each neighbour votes for its
class with weight ``exp(s / T)``; the class with the largest summed weight wins. This is the
kNN monitor used by solo-learn (``solo/utils/knn.py``) and lightly (``knn_predict``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def knn_accuracy(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 256,
) -> float:
    """Top-1 accuracy of the weighted kNN classifier (Wu et al. 2018) on ``test_feats``.

    Features are L2-normalised; ``k`` is clipped to the number of training samples; test
    samples are processed ``chunk_size`` at a time so memory stays O(chunk_size * N_train).
    """
    if train_feats.shape[0] == 0:
        raise ValueError("knn_accuracy needs at least one training sample")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n_test = test_feats.shape[0]
    if n_test == 0:
        return float("nan")
    train_labels = train_labels.reshape(-1).long().to(train_feats.device)
    test_labels = test_labels.reshape(-1).long().to(train_feats.device)
    if num_classes is None:
        num_classes = int(max(train_labels.max().item(), test_labels.max().item())) + 1
    k = max(1, min(int(k), train_feats.shape[0]))

    train = F.normalize(train_feats.float(), dim=1)
    test_all = F.normalize(test_feats.float().to(train.device), dim=1)
    correct = 0
    for start in range(0, n_test, chunk_size):
        test = test_all[start : start + chunk_size]
        sim = test @ train.T  # [b, N_train] cosine similarity
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        scores = torch.zeros(test.shape[0], num_classes, device=train.device)
        scores.scatter_add_(1, train_labels[top_idx], weights)
        pred = scores.argmax(dim=1)
        correct += int((pred == test_labels[start : start + chunk_size]).sum().item())
    return correct / n_test
