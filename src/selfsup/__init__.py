"""selfsup: self-supervised pretraining, evaluation and export."""

__version__ = "0.1.0"

from .api import embed, evaluate, export, load, pretrain  # noqa: E402

__all__ = ["__version__", "embed", "evaluate", "export", "load", "pretrain"]
