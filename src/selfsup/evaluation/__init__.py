"""Downstream evaluation of encoders: kNN, linear probe, fine-tuning and label efficiency; full-ranking
next-item metrics (HR@k, NDCG@k).

Modality-agnostic: inputs are tensors, and the caller supplies the transforms that turn a batch
of raw inputs into what the encoder takes.
"""

from .features import extract_features
from .finetune import finetune_accuracy
from .knn import knn_accuracy
from .label_efficiency import (
    PROTOCOLS,
    EvalResult,
    format_table,
    plot_label_efficiency,
    run_label_efficiency,
    write_json,
)
from .linear import linear_probe_accuracy
from .ranking import hit_rate_at_k, ndcg_at_k, popularity_scores, rank_of_target, ranking_metrics
from .similarity import spearman, spearman_similarity
from .subsets import class_balanced_subset

__all__ = [
    "PROTOCOLS",
    "EvalResult",
    "class_balanced_subset",
    "extract_features",
    "finetune_accuracy",
    "format_table",
    "hit_rate_at_k",
    "knn_accuracy",
    "linear_probe_accuracy",
    "ndcg_at_k",
    "plot_label_efficiency",
    "popularity_scores",
    "rank_of_target",
    "ranking_metrics",
    "run_label_efficiency",
    "spearman",
    "spearman_similarity",
    "write_json",
]
