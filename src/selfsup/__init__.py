"""selfsup: self-supervised pretraining, evaluation and export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "embed", "evaluate", "export", "load", "pretrain"]

if TYPE_CHECKING:
    from .api import embed, evaluate, export, load, pretrain


def __getattr__(name: str) -> Any:
    """The API functions load on first use: ``import selfsup.losses`` does not pay for Lightning."""
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'selfsup' has no attribute {name!r}")
