"""DINO — Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin 2021, "Emerging Properties in
Self-Supervised Vision Transformers" (ICCV).

Pseudo-code (paper Algorithm 1):
    x_g1, x_g2, x_l1..x_lK = multicrop(x)                  # 2 global + K local crops
    s = gs(all crops); t = gt(global crops)                  # student; EMA teacher sees only globals
    loss = sum_{a in globals, b != a} H(t_a, s_b) / #pairs   # H(t, s) = -softmax((t - C)/tau_t) . log softmax(s/tau_s)
    gt <- m gt + (1 - m) gs;  C <- 0.9 C + 0.1 mean(t)       # EMA teacher, centering
g = 3-layer MLP -> L2-normalise -> weight-normalised linear layer to K prototypes. The teacher
temperature warms up linearly from 0.04 to 0.07 over the first 30 % of training (30 of 100
epochs); student 0.1; the last layer is frozen for the first 1 % (the paper's first epoch).
Scaled down for small images and CPUs: 2 x 32 px + 4 x 16 px crops (paper 2 x 224 + 10 x 96),
MLP hidden width 1024 and K = 4096 (paper 2048, 65536), and m from 0.99 to 1 (the paper's 0.996
averages over ~250 steps, too slow for runs of a few thousand steps; as for BYOL here). The head
is ``heads.MLP`` with BatchNorm, as DINO's own ResNet recipe (``use_bn_in_head``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..heads import MLP, Prototypes
from ..losses import dino_loss
from ..pretext.multicrop import dino_multicrop, split_crops
from ..registry import register_method
from ..schedules import cosine_momentum, in_first, linear_ramp
from ..types import Family, LossOutput, Modality
from .base import MAX_PROTOTYPES, Method, Pretext, count, probability, scale, softmax_temperature, width
from .momentum import Centering, ema_update, frozen_copy
from .multicrop_base import MultiCropHparams, embed_crops, multicrop_pretext


@dataclass
class DINOHparams(MultiCropHparams):
    global_crop_min_scale: float = scale(0.4)  # the paper's: globals (0.4, 1), locals (0.05, 0.4)
    head_hidden_dim: int = width(1024)
    bottleneck_dim: int = width(256)
    num_prototypes: int = count(4096, MAX_PROTOTYPES)
    student_temp: float = softmax_temperature(0.1)
    teacher_temp_start: float = softmax_temperature(0.04)
    teacher_temp: float = softmax_temperature(0.07)
    teacher_temp_warmup: float = probability(0.3)  # fraction of training
    center_momentum: float = probability(0.9)
    momentum_base: float = probability(0.99)
    freeze_last_layer: float = probability(0.01)  # fraction of training


@register_method
class DINO(Method):
    name = "dino"
    family = Family.SELF_DISTILLATION
    modalities = frozenset({Modality.IMAGE})
    paper = "Caron et al. 2021, Emerging Properties in Self-Supervised Vision Transformers (ICCV)"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.04}
    Hparams = DINOHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        super().__init__(encoder, input_size, **hparams)
        hp = self.hp
        self.head = nn.Sequential(MLP(encoder.dim, hp.head_hidden_dim, hp.bottleneck_dim, num_layers=3),
                                  Prototypes(hp.bottleneck_dim, hp.num_prototypes))
        self.head[-1].frozen = in_first(0.0, hp.freeze_last_layer)
        self.teacher_encoder = frozen_copy(self.encoder)
        self.teacher_head = frozen_copy(self.head)
        self.centering = Centering(hp.num_prototypes, hp.center_momentum)
        self.momentum = hp.momentum_base
        self.teacher_temp = linear_ramp(0.0, hp.teacher_temp_start, hp.teacher_temp, hp.teacher_temp_warmup)
        self._teacher_output: torch.Tensor | None = None  # folded into the center after the step

    def pretext(self, modality: Modality) -> Pretext:
        return multicrop_pretext(dino_multicrop, self.hp, self.encoder, self.input_size)

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        globals_, locals_ = split_crops(batch)
        h = embed_crops(self.encoder, globals_ + locals_)
        student = self.head(h).chunk(len(globals_) + len(locals_))
        with torch.no_grad():
            teacher = self.teacher_head(embed_crops(self.teacher_encoder, globals_))
        center = self.centering.center
        loss = dino_loss(student, teacher.chunk(len(globals_)), center, self.hp.student_temp, self.teacher_temp)
        self._teacher_output = teacher
        teacher_probs = F.softmax((teacher.float() - center) / self.teacher_temp, dim=-1)
        metrics = {"teacher_temp": torch.tensor(self.teacher_temp), "momentum": torch.tensor(self.momentum),
                   "teacher_entropy": torch.special.entr(teacher_probs).sum(-1).mean()}
        return LossOutput(loss, metrics=metrics, embeddings=h[: globals_[0].shape[0]].detach())

    def on_step_end(self, progress: float) -> None:
        hp = self.hp
        self.momentum = cosine_momentum(progress, hp.momentum_base)
        ema_update(self.teacher_encoder, self.encoder, self.momentum)
        ema_update(self.teacher_head, self.head, self.momentum)
        if self._teacher_output is not None:
            self.centering.update(self._teacher_output)
            self._teacher_output = None
        self.teacher_temp = linear_ramp(progress, hp.teacher_temp_start, hp.teacher_temp, hp.teacher_temp_warmup)
        self.head[-1].frozen = in_first(progress, hp.freeze_last_layer)
