"""Small shared types: imported by every layer, importing nothing from the package but the torch-free enums."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .enums import Family, Modality

__all__ = ["Family", "LossOutput", "Modality"]


@dataclass
class LossOutput:
    """What a method's ``loss`` returns.

    ``loss`` is the scalar to minimise, ``metrics`` are extra scalars to log (detached),
    ``embeddings`` are pooled encoder features [B, D] of the batch, used by the health monitor.
    """

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    embeddings: torch.Tensor | None = None
