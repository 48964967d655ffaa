"""Encoders by name: ``build_encoder(config)`` rebuilds any registered backbone."""

from __future__ import annotations

from ..registry import get_encoder_builder
from . import audio, image, sequence, text  # noqa: F401  (registers every built-in encoder)
from .base import Encoder


def build_encoder(config: dict) -> Encoder:
    """Build an encoder from ``{"name": ..., **kwargs}`` (the dict stored in ``encoder.config``)."""
    kwargs = dict(config)
    return get_encoder_builder(kwargs.pop("name"))(**kwargs)


__all__ = ["Encoder", "build_encoder"]
