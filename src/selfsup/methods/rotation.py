"""RotNet — Gidaris, Singh, Komodakis 2018, "Unsupervised Representation Learning by Predicting
Image Rotations" (ICLR).

Pseudo-code (paper §2):
    for each image x: the four copies rot(x, 0°), rot(x, 90°), rot(x, 180°), rot(x, 270°)
    loss = cross_entropy(head(f(rot(x, k·90°))), k)      # the pseudo-label is the rotation
All four rotations of an image go into the same batch, as in the paper (§2.3: "it is better to
feed all four rotated copies simultaneously"). A light random crop + flip comes first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..heads import MLP
from ..pretext.transforms import rotate_all
from ..pretext.image_recipes import light_augment
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, scale, width


@dataclass
class RotationHparams(Hparams):
    head_hidden_dim: int = width(256)
    min_crop_scale: float = scale(0.35)


@register_method
class Rotation(Method):
    name = "rotation"
    family = Family.TRANSFORMATION
    modalities = frozenset({Modality.IMAGE})
    paper = "Gidaris et al. 2018, Unsupervised Representation Learning by Predicting Image Rotations (ICLR)"
    optim_defaults = {"lr": 2e-3, "weight_decay": 5e-4}
    Hparams = RotationHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        super().__init__(encoder, input_size, **hparams)
        self.head = MLP(encoder.dim, self.hp.head_hidden_dim, 4)

    def pretext(self, modality: Modality) -> Pretext:
        augment = light_augment(self.input_size, scale=(self.hp.min_crop_scale, 1.0))

        def pretext(images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            rotated, labels = rotate_all(augment(images, generator=generator))
            return {"images": rotated, "labels": labels}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        h = self.encoder.embed(batch["images"])
        logits = self.head(h)
        loss = F.cross_entropy(logits, batch["labels"])
        accuracy = (logits.argmax(-1) == batch["labels"]).float().mean()
        return LossOutput(loss, metrics={"rotation_acc": accuracy.detach()}, embeddings=h[: h.shape[0] // 4].detach())  # the unrotated copies
