"""Encoders by name: ``build_encoder(config)`` rebuilds any registered backbone.

The registry imports an encoder's module (timm for images, transformers for text and audio) only
when that encoder is built, so an image run never pays for transformers.
"""

from __future__ import annotations

import inspect

from ..config import setting_label
from ..errors import SelfSupError, did_you_mean
from ..registry import get_encoder_builder
from .base import ENCODER_SETTINGS, Encoder


def check_encoder_settings(config: dict) -> None:
    """One line for an ``encoder`` section the builder cannot take: an unknown name or argument, or a
    number out of its range (:data:`~selfsup.encoders.base.ENCODER_SETTINGS`). Checked before any data is read."""
    name = config.get("name")
    if not isinstance(name, str):
        raise SelfSupError(f"encoder.name must be an encoder's name, e.g. tiny_cnn; got {name!r}")
    parameters = inspect.signature(get_encoder_builder(name)).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in config.items():
        if key == "name":
            continue
        if key not in parameters and not open_ended:
            raise SelfSupError(f"encoder {name!r} has no setting {key!r}{did_you_mean(key, parameters)}; "
                               f"its settings are: {', '.join(sorted(parameters))}")
        spec = ENCODER_SETTINGS.get(key)
        if spec is not None:
            spec.check(value, setting_label("encoder", key, spec, name))


CHECKPOINT_KEY = "source"
"""The builder argument naming the checkpoint an encoder starts from (``--init``); such a builder also takes
``pretrained`` (False: the same architecture at random initialisation)."""


def starts_from_checkpoint(config: dict) -> bool:
    """Whether the encoder of ``config`` started from a checkpoint's weights (``--init``; not with
    ``encoder.pretrained=false``, its architecture at random initialisation)."""
    return bool(config.get(CHECKPOINT_KEY)) and config.get("pretrained", True) is not False


def scratch_config(config: dict) -> dict:
    """The config of the same architecture at random initialisation (the ``scratch`` baseline)."""
    return {**config, "pretrained": False} if config.get(CHECKPOINT_KEY) else dict(config)


def build_encoder(config: dict) -> Encoder:
    """Build an encoder from ``{"name": ..., **kwargs}`` (the dict stored in ``encoder.config``)."""
    check_encoder_settings(config)
    kwargs = dict(config)
    return get_encoder_builder(kwargs.pop("name"))(**kwargs)


__all__ = ["Encoder", "build_encoder", "check_encoder_settings", "scratch_config", "starts_from_checkpoint"]
