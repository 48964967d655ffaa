"""What the text methods share: a check that the encoder is a text transformer of the right kind."""

from __future__ import annotations

from ..encoders.base import Encoder
from ..encoders.text import TextEncoder
from ..errors import SelfSupError


def require_text_encoder(encoder: Encoder, method: str, causal: bool | None = None) -> TextEncoder:
    """``encoder`` when it is a :class:`TextEncoder` (causal or bidirectional as ``causal`` asks), else a
    SelfSupError naming the encoders that fit."""
    name = encoder.config.get("name")
    if not isinstance(encoder, TextEncoder):
        raise SelfSupError(f"{method} needs a text encoder, got {name!r}; use --encoder bert_tiny, bert_mini, "
                           "bert_small, gpt_tiny or gpt_mini")
    if causal is not None and encoder.causal != causal:
        fitting = "gpt_tiny or gpt_mini" if causal else "bert_tiny, bert_mini or bert_small"
        kind = "a causal (left-to-right)" if causal else "a bidirectional"
        source = encoder.config.get("source")
        if source:  # --init: the checkpoint decides the architecture
            fits = "clm" if encoder.causal else "mlm, simcse or tsdae"
            raise SelfSupError(f"{method} needs {kind} text encoder, and checkpoint {source} is "
                               f"{'causal' if encoder.causal else 'bidirectional'}; use --method {fits}, or "
                               f"--init {kind} checkpoint")
        raise SelfSupError(f"{method} needs {kind} text encoder, got {name!r}; use --encoder {fitting}")
    return encoder
