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
from .subsets import class_balanced_subset

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
    "write_json",
]
