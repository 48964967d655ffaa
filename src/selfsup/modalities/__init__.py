"""The modality registry: the one place the rest of selfsup asks about a kind of data.

Every subpackage of ``selfsup/modalities/`` is a modality: its ``__init__`` defines ``INFO``, a
:class:`~selfsup.modalities.base.ModalityInfo` (metadata only, no torch), and ``SETTINGS``, the dataclass of
its ``data.*`` settings; its implementation (a :class:`~selfsup.modalities.base.Modality`) is imported on
first use. Adding a modality is adding a package; a modality defined elsewhere (a plug-in) calls
:func:`register_modality`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import TYPE_CHECKING, Any

from ..errors import SelfSupError, did_you_mean
from .base import DEFAULT_KIND, ModalityInfo

if TYPE_CHECKING:  # pragma: no cover
    from .base import Modality

_INFOS: dict[str, ModalityInfo] = {}
_SETTINGS: dict[str, type] = {}
_INSTANCES: dict[str, Modality] = {}
_LOADED = False


def register_modality(info: ModalityInfo, settings: type | None = None) -> ModalityInfo:
    """Register a modality under ``info.name``; ``settings`` is the dataclass of its ``data.*`` settings."""
    if info.name in _INFOS and _INFOS[info.name] != info:
        raise ValueError(f"modality {info.name!r} registered twice")
    _INFOS[info.name] = info
    if settings is not None:
        _SETTINGS[info.name] = settings
        _rebuild_data_section()
    return info


def unregister_modality(name: str) -> None:
    """Forget the modality ``name`` and its data settings (a plug-in being unloaded, e.g. at the end of a test)."""
    _INFOS.pop(name, None)
    _INSTANCES.pop(name, None)
    if _SETTINGS.pop(name, None) is not None:
        _rebuild_data_section()


def _rebuild_data_section() -> None:
    """Once the run config is built, a plug-in's data settings join (or leave) its ``data`` section."""
    config = sys.modules.get("selfsup.config")
    if config is not None and hasattr(config, "rebuild_data_config"):
        config.rebuild_data_config()


def _load_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            package = importlib.import_module(f"{__name__}.{module.name}")
            register_modality(package.INFO, getattr(package, "SETTINGS", None))


def modality_infos() -> list[ModalityInfo]:
    """Every registered modality's metadata, built-ins first (by their ``order``), then plug-ins."""
    _load_builtin()
    return sorted(_INFOS.values(), key=lambda info: info.order)


def modality_names() -> list[str]:
    return [info.name for info in modality_infos()]


def modality_settings() -> dict[str, type]:
    """The ``data.*`` settings dataclass of each modality that declares some."""
    return {info.name: _SETTINGS[info.name] for info in modality_infos() if info.name in _SETTINGS}


def _name(modality: Any) -> str:
    """A modality's name from a name, an enum member of the built-in names, a ModalityInfo or a Modality."""
    if isinstance(modality, str):
        return str(modality.value) if hasattr(modality, "value") else modality
    return str(getattr(modality, "name", modality))


def get_modality_info(modality: Any) -> ModalityInfo:
    """The metadata of ``modality``; a one-line error naming the known ones when it is not registered."""
    _load_builtin()
    name = _name(modality)
    if name not in _INFOS:
        names = list(_INFOS)
        raise SelfSupError(f"data.modality={name!r} is not a modality{did_you_mean(name, names)}; "
                           f"use one of {', '.join(names)}")
    return _INFOS[name]


def get_modality(modality: Any) -> Modality:
    """The implementation of ``modality`` (imported on first use, one instance per modality)."""
    info = get_modality_info(modality)
    if info.name not in _INSTANCES:
        module, _, attribute = info.implementation.partition(":")
        _INSTANCES[info.name] = getattr(importlib.import_module(module), attribute)(info)
    return _INSTANCES[info.name]


def task_modality(protocol: str) -> Modality:
    """The implementation of the modality whose downstream task ``protocol`` is (``ModalityInfo.task_protocols``:
    asr, translation), for the commands that use a model fine-tuned on it (``transcribe``, ``translate``)."""
    for info in modality_infos():
        if protocol in info.task_protocols:
            return get_modality(info)
    raise SelfSupError(f"no registered modality has the {protocol!r} task")


def _fits(method: Any, info: ModalityInfo) -> bool:
    """Whether a method (its metadata: ``name``, ``modalities``) trains on a modality: the method names it, or
    the modality opts into the method (``ModalityInfo.methods``)."""
    return info.name in method.modalities or method.name in info.methods


def methods_fitting(methods: list, modality: Any = None) -> list:
    """The methods (metadata) among ``methods`` that fit ``modality``; all of them when it is None."""
    if modality is None:
        return list(methods)
    info = get_modality_info(modality)
    return [method for method in methods if _fits(method, info)]


def check_method_fits(method: Any, modality: Any, list_methods: Any) -> None:
    """A one-line error when ``method`` does not fit ``modality`` (nothing to check when it is None), naming the
    methods that do (``list_methods(name)``)."""
    if modality is None or _fits(method, info := get_modality_info(modality)):
        return
    fitting = [m.name for m in list_methods(info.name)]
    raise SelfSupError(f"method {method.name!r} does not work on {info.name} data (it supports: "
                       f"{', '.join(sorted(method.modalities))}). Methods for {info.name}: "
                       f"{', '.join(fitting) or 'none yet'}.")


__all__ = ["DEFAULT_KIND", "ModalityInfo", "get_modality", "get_modality_info", "modality_infos", "modality_names",
           "modality_settings", "register_modality", "unregister_modality", "methods_fitting",
           "check_method_fits"]
