"""A name -> object registry whose metadata is known before the objects' modules are imported.

Built-in entries are *declared*: a scan (see :mod:`selfsup.declarations`) reads each one's name,
metadata and defining module from the source, without importing it, so listing them costs no heavy
import (torch, timm, transformers, Lightning). An entry's object is *registered* when its module is
imported (a decorator such as ``@register_method`` calls :meth:`LazyRegistry.register`); asking for
the object imports that one module. Objects defined outside the package (plug-ins) register the same
way at import time and are listed from then on.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

M = TypeVar("M")  # metadata
T = TypeVar("T")  # the registered object


@dataclass(frozen=True)
class Declaration(Generic[M]):
    """One entry found in the source: ``module`` registers ``name`` when imported."""

    name: str
    meta: M
    module: str


@dataclass(frozen=True)
class ScanResult(Generic[M]):
    """What a scan found: the declarations it could read, and modules it could not read statically.

    Those modules are imported when the registry is first used (correct, only slower), so an entry
    written in a way the scan does not understand is never missing.
    """

    declarations: tuple[Declaration[M], ...]
    unreadable_modules: tuple[str, ...] = ()


class LazyRegistry(Generic[M, T]):
    """Name -> (metadata, object), with the object's module imported on first use of the object.

    ``scan`` returns the built-in declarations; it runs once, on the first query. ``replace``: whether
    registering a second object under a name replaces the first (else it is a ``ValueError``).
    """

    def __init__(self, kind: str, scan: Callable[[], ScanResult[M]], replace: bool = False) -> None:
        self.kind = kind
        self._scan = scan
        self._replace = replace
        self._scanned = False
        self._meta: dict[str, M] = {}
        self._module: dict[str, str] = {}
        self._objects: dict[str, T] = {}

    def register(self, name: str, meta: M, obj: T, module: str) -> None:
        """Called when ``module`` is imported and defines ``obj``: records it (and its true metadata)."""
        known = self._objects.get(name)
        declared = self._module.get(name)
        clash = (known is not None and known is not obj) or (known is None and declared not in (None, module))
        if clash and not self._replace:
            raise ValueError(f"{self.kind} name {name!r} registered twice ({declared} and {module})")
        self._meta[name] = meta
        self._module[name] = module
        self._objects[name] = obj

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a plug-in being unloaded, e.g. at the end of a test)."""
        for table in (self._meta, self._module, self._objects):
            table.pop(name, None)

    def _ensure_scanned(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        found = self._scan()
        for decl in found.declarations:
            registered = self._module.get(decl.name)
            if registered is None:
                self._meta[decl.name] = decl.meta
                self._module[decl.name] = decl.module
            elif registered != decl.module and not self._replace:
                raise ValueError(f"{self.kind} name {decl.name!r} registered twice ({registered} and {decl.module})")
        for module in found.unreadable_modules:
            importlib.import_module(module)

    def __contains__(self, name: object) -> bool:
        self._ensure_scanned()
        return name in self._meta

    def names(self) -> list[str]:
        """Every known name, sorted; imports nothing but what the scan could not read."""
        self._ensure_scanned()
        return sorted(self._meta)

    def meta(self, name: str) -> M:
        """The metadata of ``name`` (``KeyError`` when unknown); imports nothing."""
        self._ensure_scanned()
        return self._meta[name]

    def items(self) -> Iterable[tuple[str, M]]:
        """(name, metadata) for every entry, sorted by name."""
        return [(name, self._meta[name]) for name in self.names()]

    def module_of(self, name: str) -> str:
        """The module that defines ``name`` (``KeyError`` when unknown)."""
        self._ensure_scanned()
        return self._module[name]

    def load(self, name: str) -> T:
        """The object registered under ``name``, importing its module if needed (``KeyError`` when unknown)."""
        self._ensure_scanned()
        if name not in self._objects:
            module = self._module[name]
            importlib.import_module(module)
            if name not in self._objects:
                raise RuntimeError(f"importing {module} did not register {self.kind} {name!r}; "
                                   f"its declaration and its registration disagree")
        return self._objects[name]

    def load_all(self) -> dict[str, T]:
        """Import every entry's module; name -> object."""
        return {name: self.load(name) for name in self.names()}
