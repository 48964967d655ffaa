"""The encoder interface shared by every modality (DESIGN.md §3)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SelfSupError


class Encoder(nn.Module):
    """A backbone that maps inputs to a token sequence and pools it to one vector.

    ``forward(inputs) -> [B, T, D]`` tokens (a CNN returns its spatial map flattened),
    ``pool(tokens, mask=None) -> [B, D]`` the embedding used downstream, ``dim == D``.
    ``config`` is a plain dict that rebuilds the same architecture with ``build_encoder``.
    """

    dim: int
    config: dict
    supports_masking: bool = False  # transformers that can hide positions from the student (data2vec)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over tokens (over unmasked tokens where ``mask`` is given, 1 = keep)."""
        if mask is None:
            return tokens.mean(dim=1)
        weights = mask.to(tokens.dtype).unsqueeze(-1)
        return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled embedding [B, D] of a batch of inputs."""
        return self.pool(self(inputs))

    # ------------------------------------------------------------------ masked prediction (data2vec)
    def _cannot_mask(self) -> SelfSupError:
        return SelfSupError(f"encoder {self.config.get('name')!r} cannot hide input positions; masked prediction "
                            "needs a transformer encoder: wav2vec2_* (audio), bert_* (text) or vit_* (images)")

    def new_mask_embedding(self) -> nn.Parameter | None:
        """The learned vector that replaces hidden positions, for an encoder that has none of its own (a ViT);
        None when the encoder owns one (wav2vec 2.0's, made trainable here) or the input already hides them
        (text: the ``[MASK]`` token)."""
        raise self._cannot_mask()

    def forward_masked(self, inputs, positions: torch.Tensor,
                       mask_embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's pass with ``positions`` [B, T] (True = hidden) hidden: (states [B, T, D] on the grid of
        ``positions``, pooled embedding [B, D])."""
        raise self._cannot_mask()

    def layer_states(self, inputs) -> list[torch.Tensor]:
        """The states [B, T, D] after each block, first to last, on the grid of :meth:`forward_masked`
        (data2vec's teacher targets)."""
        raise self._cannot_mask()
