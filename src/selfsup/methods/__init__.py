"""Built-in methods, one module each; importing this package registers every one of them."""

import importlib
import pkgutil

from .base import Method

_SHARED = {"audio_base", "base", "joint_embedding", "memory", "momentum", "multicrop_base", "text_base"}  # building blocks, not methods
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SHARED:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Method"]
