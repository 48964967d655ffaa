"""The encoder interface shared by every modality (DESIGN.md §3)."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """A backbone that maps inputs to a token sequence and pools it to one vector.

    ``forward(inputs) -> [B, T, D]`` tokens (a CNN returns its spatial map flattened),
    ``pool(tokens, mask=None) -> [B, D]`` the embedding used downstream, ``dim == D``.
    ``config`` is a plain dict that rebuilds the same architecture with ``build_encoder``.
    """

    dim: int
    config: dict

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
