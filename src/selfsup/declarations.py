"""Read the built-in methods' and encoders' registrations from their source, without importing them.

Listing methods must not import torch, timm, transformers or Lightning (``selfsup methods`` answers in
well under a second), and a run must import only the modules it uses. So the registry learns what
exists by parsing ``methods/*.py`` and ``encoders/*.py`` with :mod:`ast`:

- a method is a class decorated with ``@register_method`` whose ``name``, ``family``, ``modalities``
  and ``paper`` are literals (``Family.X``, ``frozenset({Modality.Y})``, strings), set on the class or
  inherited from a base class of the package (``class SimCSE(SimCLR)``);
- an encoder is a function decorated with ``@register_encoder("name", "description")``, or a module-level
  call ``x = helper("name", "description", ...)`` of a module function that calls ``register_encoder``.

The source stays the one place the metadata is written. A registration written any other way puts its
module in :attr:`ScanResult.unreadable_modules`, which the registry imports (slower, never wrong);
``tests/test_startup.py`` checks that no built-in needs that and that the scan equals the import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .enums import Family, Modality
from .lazy_registry import Declaration, ScanResult

_PACKAGE_DIR = Path(__file__).resolve().parent
_ENUMS = {"Family": Family, "Modality": Modality}
_COLLECTIONS = {"frozenset", "set", "tuple", "list"}
METHOD_FIELDS = ("name", "family", "modalities", "paper")


class _NotStatic(Exception):
    """A value the scan cannot read without running the code."""


def _modules(subpackage: str) -> Iterator[tuple[str, ast.Module]]:
    """(dotted module name, parsed source) of each top-level module of ``selfsup.<subpackage>``."""
    for path in sorted((_PACKAGE_DIR / subpackage).glob("*.py")):
        if path.stem != "__init__":
            yield f"{__package__}.{subpackage}.{path.stem}", ast.parse(path.read_bytes(), filename=str(path))


def _callee(node: ast.AST) -> str | None:
    """``f`` for ``f(...)`` and ``m.f(...)``; None for anything else."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literal(node: ast.AST) -> Any:
    """The value of a literal expression: constants, ``Family.X`` / ``Modality.X``, sets and frozensets of them."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in _ENUMS:
        try:
            return _ENUMS[node.value.id][node.attr]
        except KeyError:
            raise _NotStatic from None
    if isinstance(node, (ast.Set, ast.Tuple, ast.List)):
        return frozenset(_literal(e) for e in node.elts)
    if isinstance(node, ast.Call) and _callee(node) in _COLLECTIONS and not node.keywords and len(node.args) <= 1:
        return frozenset(_literal(node.args[0])) if node.args else frozenset()
    raise _NotStatic


# ---------------------------------------------------------------------------------------------- methods


class _ClassSource:
    """A class of the scanned package: its literal class attributes and its base classes' keys."""

    def __init__(self, node: ast.ClassDef, module: str, imported: dict[str, tuple[str, str]]) -> None:
        self.node = node
        self.module = module
        self.attributes: dict[str, ast.expr] = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                self.attributes[stmt.targets[0].id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
                self.attributes[stmt.target.id] = stmt.value
        self.bases = [imported.get(b.id, (module, b.id)) for b in node.bases if isinstance(b, ast.Name)]
        self.registered = any(_callee(d) == "register_method" for d in node.decorator_list)


def _relative_imports(tree: ast.Module, module: str) -> dict[str, tuple[str, str]]:
    """Local name -> (module, name) for ``from .x import Name`` lines (the package's own classes)."""
    package = module.rsplit(".", 1)[0]
    found = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 1 and stmt.module:
            for alias in stmt.names:
                found[alias.asname or alias.name] = (f"{package}.{stmt.module}", alias.name)
    return found


def _attribute(classes: dict[tuple[str, str], _ClassSource], key: tuple[str, str], field: str,
               seen: frozenset[tuple[str, str]] = frozenset()) -> Any:
    """``field`` of the class ``key``, looked up along its bases (depth first, as Python does for single bases)."""
    source = classes.get(key)
    if source is None or key in seen:
        raise _NotStatic
    if field in source.attributes:
        return _literal(source.attributes[field])
    for base in source.bases:
        if base in classes:
            try:
                return _attribute(classes, base, field, seen | {key})
            except _NotStatic:
                continue
    raise _NotStatic


def scan_methods() -> ScanResult:
    """Every ``@register_method`` class under ``selfsup/methods/`` as a Declaration of its MethodInfo fields.

    ``meta`` is the dict ``{"name", "family", "modalities", "paper"}``; the registry turns it into a MethodInfo.
    """
    classes: dict[tuple[str, str], _ClassSource] = {}
    for module, tree in _modules("methods"):
        imported = _relative_imports(tree, module)
        for stmt in tree.body:
            if isinstance(stmt, ast.ClassDef):
                classes[(module, stmt.name)] = _ClassSource(stmt, module, imported)
    declarations, unreadable = [], []
    for key, source in classes.items():
        if not source.registered:
            continue
        try:
            meta = {field: _attribute(classes, key, field) for field in METHOD_FIELDS}
            if not (isinstance(meta["name"], str) and isinstance(meta["family"], Family)
                    and isinstance(meta["paper"], str) and isinstance(meta["modalities"], frozenset)
                    and all(isinstance(m, Modality) for m in meta["modalities"])):
                raise _NotStatic
        except _NotStatic:
            unreadable.append(source.module)
            continue
        declarations.append(Declaration(meta["name"], meta, source.module))
    return ScanResult(tuple(declarations), tuple(dict.fromkeys(unreadable)))


# --------------------------------------------------------------------------------------------- encoders


def _string_args(call: ast.Call) -> tuple[str, str]:
    """The two leading string literals of ``call`` (name, description)."""
    if len(call.args) >= 2 and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args[:2]):
        return call.args[0].value, call.args[1].value
    raise _NotStatic


def scan_encoders() -> ScanResult:
    """Every encoder registered under ``selfsup/encoders/``: Declaration(name, description, module)."""
    declarations, unreadable = [], []
    for module, tree in _modules("encoders"):
        helpers = {stmt.name for stmt in tree.body if isinstance(stmt, ast.FunctionDef)
                   and any(_callee(n) == "register_encoder" for b in stmt.body for n in ast.walk(b)
                           if isinstance(n, ast.Call))}
        read: list[tuple[str, str]] = []
        accounted: set[int] = set()  # ids of the registering calls read
        try:
            for stmt in tree.body:
                if isinstance(stmt, ast.FunctionDef):
                    for deco in stmt.decorator_list:
                        if isinstance(deco, ast.Call) and _callee(deco) == "register_encoder":
                            read.append(_string_args(deco))
                            accounted.add(id(deco))
                    if stmt.name in helpers:  # the helper's own register_encoder call is accounted for by its callers
                        accounted.update(id(n) for b in stmt.body for n in ast.walk(b) if isinstance(n, ast.Call))
                elif isinstance(stmt, (ast.Assign, ast.Expr)) and isinstance(stmt.value, ast.Call) \
                        and _callee(stmt.value) in helpers:
                    read.append(_string_args(stmt.value))
                    accounted.add(id(stmt.value))
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                     and _callee(n) in helpers | {"register_encoder"} and id(n) not in accounted]
            if calls:  # a registration in a loop, a conditional, a nested call...: let the import do it
                raise _NotStatic
        except _NotStatic:
            unreadable.append(module)
            continue
        declarations += [Declaration(name, description, module) for name, description in read]
    return ScanResult(tuple(declarations), tuple(unreadable))
