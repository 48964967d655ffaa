"""Name → method / encoder registries, with the metadata `selfsup methods` lists.

Both are :class:`~selfsup.lazy_registry.LazyRegistry` instances: the built-ins' metadata is read from
the source (:mod:`selfsup.declarations`) without importing anything heavy, and a method's or encoder's
module is imported only when its class or builder is asked for. ``register_method`` /
``register_encoder`` still register whatever is defined with them at import time, plug-ins included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .declarations import scan_encoders, scan_methods
from .enums import Family, Modality
from .errors import SelfSupError, did_you_mean
from .lazy_registry import Declaration, LazyRegistry, ScanResult
from .modalities import check_method_fits, methods_fitting

if TYPE_CHECKING:  # pragma: no cover
    from .methods.base import Method


@dataclass(frozen=True)
class MethodInfo:
    """A method's metadata; ``cls`` imports the method's module on first use. ``modalities`` are the names
    the method declares (a modality may also opt into a generic method: :func:`fits`)."""

    name: str
    family: Family
    modalities: frozenset[str]
    paper: str

    def __post_init__(self) -> None:  # declared as enum members of the built-in names, held as names
        object.__setattr__(self, "modalities", frozenset(str(getattr(m, "value", m)) for m in self.modalities))

    @property
    def cls(self) -> type[Method]:
        return _METHODS.load(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family.value,
            "modalities": sorted(self.modalities),
            "paper": self.paper,
        }


def _scan_method_infos() -> ScanResult[MethodInfo]:
    found = scan_methods()
    infos = tuple(Declaration(d.name, MethodInfo(**d.meta), d.module) for d in found.declarations)
    return ScanResult(infos, found.unreadable_modules)


_METHODS: LazyRegistry[MethodInfo, type] = LazyRegistry("method", _scan_method_infos)


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: registers a Method subclass under ``cls.name``."""
    info = MethodInfo(cls.name, cls.family, frozenset(cls.modalities), cls.paper)
    _METHODS.register(info.name, info, cls, cls.__module__)
    return cls


def list_methods(modality: Modality | str | None = None) -> list[MethodInfo]:
    """Every method's metadata, sorted by name (only those that fit ``modality`` when given); imports no
    method."""
    return methods_fitting([info for _, info in _METHODS.items()], modality)


def get_method(name: str, modality: Modality | str | None = None) -> MethodInfo:
    """Look a method up by name; a helpful SelfSupError when it is unknown or (``modality`` given) does not fit."""
    if name not in _METHODS:
        raise SelfSupError(f"unknown method {name!r}{did_you_mean(name, _METHODS.names())}; "
                           "`selfsup methods` lists them all")
    info = _METHODS.meta(name)
    check_method_fits(info, modality, list_methods)
    return info


EncoderBuilder = Callable[..., Any]
_ENCODERS: LazyRegistry[str, EncoderBuilder] = LazyRegistry("encoder", scan_encoders, replace=True)


def register_encoder(name: str, description: str) -> Callable[[EncoderBuilder], EncoderBuilder]:
    """Decorator: registers an encoder builder under ``name`` (a later registration of the name replaces it)."""

    def wrap(builder: EncoderBuilder) -> EncoderBuilder:
        _ENCODERS.register(name, description, builder, builder.__module__)
        return builder

    return wrap


def encoder_names() -> dict[str, str]:
    """Encoder name -> description, sorted; imports no encoder."""
    return dict(_ENCODERS.items())


def unregister_encoder(name: str) -> None:
    """Forget the encoder ``name`` (a plug-in being unloaded, e.g. at the end of a test)."""
    _ENCODERS.unregister(name)


def get_encoder_builder(name: str) -> EncoderBuilder:
    """The builder of encoder ``name`` (importing only its module); a SelfSupError naming the known ones."""
    if name not in _ENCODERS:
        names = _ENCODERS.names()
        raise SelfSupError(f"unknown encoder {name!r}{did_you_mean(name, names)}; known encoders: {', '.join(names)}")
    return _ENCODERS.load(name)
