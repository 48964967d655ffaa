"""Downstream evaluation of encoders: kNN, linear probe, fine-tuning and label efficiency.

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
from .similarity import spearman, spearman_similarity
from .subsets import class_balanced_subset
from .tfidf import tfidf_accuracy, tfidf_similarity

__all__ = [
    "PROTOCOLS",
    "EvalResult",
    "class_balanced_subset",
    "extract_features",
    "finetune_accuracy",
    "format_table",
    "knn_accuracy",
    "linear_probe_accuracy",
    "plot_label_efficiency",
    "run_label_efficiency",
    "spearman",
    "spearman_similarity",
    "tfidf_accuracy",
    "tfidf_similarity",
    "write_json",
]
