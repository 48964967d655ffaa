"""The joint-embedding (siamese) recipe of SimCLR, MoCo, BYOL, SimSiam, Barlow Twins and VICReg: both
views through one encoder in one pass, then through the heads, then split per view::

    h = f([x1; x2])                          # one pass: BatchNorm sees both views
    z = g(h);  p = q(z) ...                  # each head on the output of the one before
    (z1, z2), (p1, p2) = split(z), split(p)  # rows of view 1 first

and the base of Barlow Twins (Zbontar et al. 2021, ICML) and VICReg (Bardes et al. 2022, ICLR), which
differ only in the loss on the two projections::

    y1, y2 = aug(x), aug(x)                  # BYOL's asymmetric augmentations
    z1, z2 = g(f(y1)), g(f(y2))              # encoder f, 3-layer projector g
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..encoders.base import Encoder
from ..heads import MLP
from ..pretext.image_recipes import byol_augments
from ..pretext.views import concat_views, two_views
from ..types import Modality
from .base import Method, Pretext

ViewPair = tuple[torch.Tensor, torch.Tensor]


def embed_views(encoder: nn.Module, batch: dict[str, Any], *heads: nn.Module) -> tuple[Any, ...]:
    """``(h, (z1, z2), (p1, p2), ...)``: ``batch["view1"]`` and ``batch["view2"]`` (image tensors, or
    token / waveform dicts) concatenated and embedded in one encoder pass, ``h`` their pooled features
    (view 1's rows first); then each head in turn on the previous output, each output split per view.

    ``embed_views(f, batch, g, q)`` is ``h = f.embed([x1; x2]); z = g(h); p = q(z)`` returning
    ``h, z.chunk(2), p.chunk(2)``."""
    h = encoder.embed(concat_views(batch["view1"], batch["view2"]))
    outputs, x = [], h
    for head in heads:
        x = head(x)
        outputs.append(tuple(x.chunk(2)))
    return (h, *outputs)


def first_view(h: torch.Tensor) -> torch.Tensor:
    """View 1's rows of ``h``, detached: the embeddings a two-view method reports (online probe, health)."""
    return h.chunk(2)[0].detach()


class JointEmbeddingMethod(Method):
    """Base of Barlow Twins and VICReg; their ``Hparams`` have ``proj_hidden_dim``, ``proj_dim``,
    ``crop_min_scale`` (RandomResizedCrop scale (crop_min_scale, 1)) and ``flip_p``. Subclasses
    implement ``loss`` on ``embed_views(self.encoder, batch, self.projector)``."""

    def __init__(self, encoder: Encoder, input_size: int, **hparams: Any) -> None:
        super().__init__(encoder, input_size, **hparams)
        self.projector = MLP(encoder.dim, self.hp.proj_hidden_dim, self.hp.proj_dim, num_layers=3)

    def pretext(self, modality: Modality) -> Pretext:
        hp = self.hp
        return two_views(*byol_augments(self.input_size, crop_scale=(hp.crop_min_scale, 1.0), flip_p=hp.flip_p))
