"""The joint-embedding recipe that Barlow Twins (Zbontar et al. 2021, ICML) and VICReg (Bardes et al.
2022, ICLR) share; they differ only in the loss on the two projections::

    y1, y2 = aug(x), aug(x)                  # BYOL's asymmetric augmentations
    z1, z2 = g(f(y1)), g(f(y2))              # encoder f, 3-layer projector g
"""

from __future__ import annotations

from typing import Any

import torch

from ..encoders.base import Encoder
from ..heads import MLP
from ..pretext.views import byol_augments, two_views
from ..types import Modality
from .base import Method, Pretext


class JointEmbeddingMethod(Method):
    """Base of the two; their ``Hparams`` have ``proj_hidden_dim``, ``proj_dim``, ``crop_min_scale``
    (RandomResizedCrop scale (crop_min_scale, 1)) and ``flip_p``. Subclasses implement ``loss``."""

    def __init__(self, encoder: Encoder, input_size: int, **hparams: Any) -> None:
        super().__init__(encoder, input_size, **hparams)
        self.projector = MLP(encoder.dim, self.hp.proj_hidden_dim, self.hp.proj_dim, num_layers=3)

    def pretext(self, modality: Modality) -> Pretext:
        hp = self.hp
        return two_views(*byol_augments(self.input_size, crop_scale=(hp.crop_min_scale, 1.0), flip_p=hp.flip_p))

    def project(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(h, z1, z2)``: both views through the encoder in one pass (BatchNorm sees both), ``h`` their
        pooled features (view 1 rows first), then through the projector."""
        h = self.encoder.embed(torch.cat([batch["view1"], batch["view2"]]))
        z1, z2 = self.projector(h).chunk(2)
        return h, z1, z2
