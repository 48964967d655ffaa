"""Small shared types: imported by every layer, importing nothing from the package."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch


class Family(str, Enum):
    """The four families of pretext tasks (plus the non-contrastive self-distillation branch)."""

    CONTRASTIVE = "contrastive"
    SELF_DISTILLATION = "self-distillation"
    PREDICTIVE = "predictive"
    GENERATIVE = "generative"
    TRANSFORMATION = "transformation"
    CLUSTERING = "clustering"


class Modality(str, Enum):
    IMAGE = "image"
    TEXT = "text"
    AUDIO = "audio"
    SEQUENCE = "sequence"


@dataclass
class LossOutput:
    """What a method's ``loss`` returns.

    ``loss`` is the scalar to minimise, ``metrics`` are extra scalars to log (detached),
    ``embeddings`` are pooled encoder features [B, D] of the batch, used by the health monitor.
    """

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    embeddings: torch.Tensor | None = None
