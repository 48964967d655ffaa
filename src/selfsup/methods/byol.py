"""BYOL — Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning" (NeurIPS).

Pseudo-code (paper §3.1):
    v1, v2 = t1(x), t2(x)                              # asymmetric augmentations
    p1 = q(g(f(v1))); z2' = g'(f'(v2))                 # online: encoder f, projector g, predictor q
    loss = |p1/|p1| - z2'/|z2'||^2 + (symmetric term)  # target f', g' get no gradient
    f', g' <- tau f' + (1 - tau) f, g                  # EMA, tau from base to 1 on a cosine schedule
Defaults: projector 256-d output, predictor of the same shape; the paper's 4096-wide hidden layer
is 1024 here for small CPU runs, and tau_base 0.99 (the paper's 0.996 assumes ~1000 epochs).
Optimiser: LARS as in the paper (biases and norms neither decayed nor adapted) at solo-learn's CIFAR
rate (lr 1.0 per 256 images, weight decay 1e-5), with the predictor at 10x the learning rate: a faster
predictor, which Tian, Chen & Ganguli 2021 ("Understanding Self-Supervised Learning Dynamics without
Contrastive Pairs", ICML) find helps BYOL learn. On CIFAR-10 (ResNet-18, kNN after 2.5 CPU minutes):
AdamW 0.244, LARS 0.272, AdamW + predictor x10 0.268, LARS + predictor x10 0.301 (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..heads import MLP
from ..losses import negative_cosine
from ..pretext.image_recipes import byol_augments
from ..pretext.views import two_views
from ..registry import register_method
from ..schedules import cosine_momentum
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, probability, scale, width
from .joint_embedding import embed_views, first_view
from .momentum import ema_update, frozen_copy


@dataclass
class BYOLHparams(Hparams):
    proj_hidden_dim: int = width(1024)
    proj_dim: int = width(256)
    tau_base: float = probability(0.99)
    crop_min_scale: float = scale(0.08)  # RandomResizedCrop scale (crop_min_scale, 1)
    flip_p: float = probability(0.5)


@register_method
class BYOL(Method):
    name = "byol"
    family = Family.SELF_DISTILLATION
    modalities = frozenset({Modality.IMAGE})
    paper = "Grill et al. 2020, Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning (NeurIPS)"
    optim_defaults = {"optimizer": "lars", "lr": 1.0, "weight_decay": 1e-5}
    lr_multipliers = {"predictor": 10.0}
    Hparams = BYOLHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        super().__init__(encoder, input_size, **hparams)
        hp = self.hp
        self.projector = MLP(encoder.dim, hp.proj_hidden_dim, hp.proj_dim)
        self.predictor = MLP(hp.proj_dim, hp.proj_hidden_dim, hp.proj_dim)
        self.target_encoder = frozen_copy(self.encoder)
        self.target_projector = frozen_copy(self.projector)
        self.momentum = hp.tau_base

    def pretext(self, modality: Modality) -> Pretext:
        return two_views(*byol_augments(self.input_size, crop_scale=(self.hp.crop_min_scale, 1.0), flip_p=self.hp.flip_p))

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        h, _, (p1, p2) = embed_views(self.encoder, batch, self.projector, self.predictor)
        with torch.no_grad():
            _, (t1, t2) = embed_views(self.target_encoder, batch, self.target_projector)
        loss = negative_cosine(p1, t2) + negative_cosine(p2, t1)
        metrics = {"momentum": torch.tensor(self.momentum)}
        return LossOutput(loss, metrics=metrics, embeddings=first_view(h))

    def on_step_end(self, progress: float) -> None:
        self.momentum = cosine_momentum(progress, self.hp.tau_base)
        ema_update(self.target_encoder, self.encoder, self.momentum)
        ema_update(self.target_projector, self.projector, self.momentum)
