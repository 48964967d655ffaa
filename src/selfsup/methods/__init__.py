"""Built-in methods, one module each.

Each module registers its methods when imported. ``selfsup.registry`` lists them by reading their
source (no import) and imports only the module of the method a run uses, so importing this package
imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .base import Method

__all__ = ["Method"]


def __getattr__(name: str) -> Any:
    """``Method`` loads on first use (it imports torch)."""
    if name == "Method":
        from .base import Method

        return Method
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
