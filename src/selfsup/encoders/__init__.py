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
        if key not in parameters and not open_ended and key != INIT_KEY:
            raise SelfSupError(f"encoder {name!r} has no setting {key!r}{did_you_mean(key, parameters)}; "
                               f"its settings are: {', '.join(sorted(parameters))}")
        spec = ENCODER_SETTINGS.get(key)
        if spec is not None:
            spec.check(value, setting_label("encoder", key, spec, name))


CHECKPOINT_KEY = "source"
"""The builder argument naming the checkpoint an encoder starts from (``--init``); such a builder also takes
``pretrained`` (False: the same architecture at random initialisation)."""

INIT_KEY = "init_from"
"""The key naming a selfsup run or export folder whose weights any encoder starts from (``--init RUN``): not a
builder argument, :func:`build_encoder` loads them into the architecture the rest of the dict describes."""


def starts_from_checkpoint(config: dict) -> bool:
    """Whether the encoder of ``config`` started from a checkpoint's weights (``--init``: a selfsup run or export,
    or a checkpoint its builder loads, not with ``encoder.pretrained=false``, its architecture at random
    initialisation)."""
    return bool(config.get(INIT_KEY)) or (bool(config.get(CHECKPOINT_KEY)) and config.get("pretrained", True) is not False)


def scratch_config(config: dict) -> dict:
    """The config of the same architecture at random initialisation (the ``scratch`` baseline)."""
    config = {key: value for key, value in config.items() if key != INIT_KEY}
    return {**config, "pretrained": False} if config.get(CHECKPOINT_KEY) else config


def build_encoder(config: dict, initial_weights: bool = True) -> Encoder:
    """Build an encoder from ``{"name": ..., **kwargs}`` (the dict stored in ``encoder.config``).

    With ``init_from`` (:data:`INIT_KEY`) the architecture is built from the rest of the dict and, with
    ``initial_weights``, the weights of that selfsup folder are loaded into it
    (:func:`~selfsup.encoders.stored.load_initial_weights`); ``initial_weights=False`` is for an encoder whose
    weights are about to be replaced (a stored run's own, a resumed checkpoint's), so the folder it started
    from need not exist any more."""
    check_encoder_settings(config)
    kwargs = dict(config)
    init_from = kwargs.pop(INIT_KEY, None)
    encoder = get_encoder_builder(kwargs.pop("name"))(**kwargs)
    if init_from:
        encoder.config = {**encoder.config, INIT_KEY: init_from}
        if initial_weights:
            from .stored import load_initial_weights

            load_initial_weights(encoder, init_from)
    return encoder


__all__ = ["INIT_KEY", "Encoder", "build_encoder", "check_encoder_settings", "scratch_config", "starts_from_checkpoint"]
