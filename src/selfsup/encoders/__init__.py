"""Encoders by name: ``build_encoder(config)`` rebuilds any registered backbone.

The registry imports an encoder's module (timm for images, transformers for text and audio) only
when that encoder is built, so an image run never pays for transformers.
"""

from __future__ import annotations

from ..registry import get_encoder_builder
from .base import Encoder


def build_encoder(config: dict) -> Encoder:
    """Build an encoder from ``{"name": ..., **kwargs}`` (the dict stored in ``encoder.config``)."""
    kwargs = dict(config)
    return get_encoder_builder(kwargs.pop("name"))(**kwargs)


__all__ = ["Encoder", "build_encoder"]
