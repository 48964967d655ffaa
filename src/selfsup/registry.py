"""Name → method / encoder registries, with the metadata `selfsup methods` lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SelfSupError, did_you_mean
from .types import Family, Modality

if TYPE_CHECKING:  # pragma: no cover
    from .methods.base import Method


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: Family
    modalities: frozenset[Modality]
    paper: str
    cls: type[Method]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family.value,
            "modalities": sorted(m.value for m in self.modalities),
            "paper": self.paper,
        }


_METHODS: dict[str, MethodInfo] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: registers a Method subclass under ``cls.name``."""
    info = MethodInfo(cls.name, cls.family, frozenset(cls.modalities), cls.paper, cls)
    if info.name in _METHODS and _METHODS[info.name].cls is not cls:
        raise ValueError(f"method name {info.name!r} registered twice")
    _METHODS[info.name] = info
    return cls


def _load_builtin_methods() -> None:
    from . import methods  # noqa: F401  (importing registers the built-in methods)


def list_methods(modality: Modality | str | None = None) -> list[MethodInfo]:
    _load_builtin_methods()
    infos = sorted(_METHODS.values(), key=lambda i: i.name)
    if modality is not None:
        modality = Modality(modality)
        infos = [i for i in infos if modality in i.modalities]
    return infos


def get_method(name: str, modality: Modality | str | None = None) -> MethodInfo:
    """Look a method up by name; a helpful SelfSupError when it is unknown or does not fit."""
    _load_builtin_methods()
    if name not in _METHODS:
        raise SelfSupError(f"unknown method {name!r}{did_you_mean(name, _METHODS)}; `selfsup methods` lists them all")
    info = _METHODS[name]
    if modality is not None and Modality(modality) not in info.modalities:
        fitting = [i.name for i in list_methods(modality)]
        raise SelfSupError(
            f"method {name!r} does not work on {Modality(modality).value} data "
            f"(it supports: {', '.join(sorted(m.value for m in info.modalities))}). "
            f"Methods for {Modality(modality).value}: {', '.join(fitting) or 'none yet'}."
        )
    return info


EncoderBuilder = Callable[..., Any]
_ENCODERS: dict[str, tuple[EncoderBuilder, str]] = {}


def register_encoder(name: str, description: str) -> Callable[[EncoderBuilder], EncoderBuilder]:
    def wrap(builder: EncoderBuilder) -> EncoderBuilder:
        _ENCODERS[name] = (builder, description)
        return builder

    return wrap


def encoder_names() -> dict[str, str]:
    from . import encoders  # noqa: F401  (importing registers the built-in encoders)

    return {name: desc for name, (_, desc) in sorted(_ENCODERS.items())}


def get_encoder_builder(name: str) -> EncoderBuilder:
    names = encoder_names()
    if name not in names:
        raise SelfSupError(f"unknown encoder {name!r}{did_you_mean(name, names)}; known encoders: {', '.join(names)}")
    return _ENCODERS[name][0]
