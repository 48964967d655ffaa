"""Built-in methods; importing this package registers them."""

from . import byol, mae, rotation, simclr  # noqa: F401
from .base import Method

__all__ = ["Method"]
