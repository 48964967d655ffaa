"""SwAV — Caron, Misra, Mairal, Goyal, Bojanowski, Joulin 2020, "Unsupervised Learning of Visual
Features by Contrasting Cluster Assignments" (NeurIPS).

Pseudo-code (paper Algorithm 1):
    x_g1, x_g2, x_l1..x_lK = multicrop(x)                 # 2 global + K local crops
    z = normalize(g(f(all crops)));  s = z @ C.T           # scores against K unit-norm prototypes C
    q_a = sinkhorn(s_a.detach(), eps=0.05, iterations=3)   # codes of the 2 globals, equal partition
    loss = mean_{a in globals, b != a} -q_a . log softmax(s_b / 0.1)   # swapped prediction
    C <- normalize(C)                                      # after every step
Prototypes get no update during the first 1 % of training (the paper freezes them for its first
epoch). Scaled down for small images and CPUs: 2 x 32 px + 4 x 16 px crops (paper 2 x 224 +
6 x 96, same scales (0.14, 1) / (0.05, 0.14)), projector hidden width 1024 (paper 2048) to 128,
and K = 512 prototypes (paper 3000) for small data sets and batches without SwAV's queue (the
queue only matters when the batch is much smaller than K).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import setting
from ..heads import MLP, Prototypes
from ..losses import swav_loss
from ..pretext.clusters import sinkhorn
from ..pretext.multicrop import split_crops, swav_multicrop
from ..registry import register_method
from ..schedules import in_first
from ..types import Family, LossOutput, Modality
from .base import MAX_PROTOTYPES, Method, Pretext, count, probability, scale, softmax_temperature, width
from .multicrop_base import MultiCropHparams, embed_crops, multicrop_pretext


@dataclass
class SwAVHparams(MultiCropHparams):
    global_crop_min_scale: float = scale(0.14)  # the paper's: globals (0.14, 1), locals (0.05, 0.14)
    proj_hidden_dim: int = width(1024)
    proj_dim: int = width(128)
    num_prototypes: int = count(512, MAX_PROTOTYPES)
    temperature: float = softmax_temperature(0.1)
    epsilon: float = setting(0.05, low=0, high=100, low_open=True)
    sinkhorn_iterations: int = count(3, 1000)
    freeze_prototypes: float = probability(0.01)  # fraction of training


@register_method
class SwAV(Method):
    name = "swav"
    family = Family.CLUSTERING
    modalities = frozenset({Modality.IMAGE})
    paper = "Caron et al. 2020, Unsupervised Learning of Visual Features by Contrasting Cluster Assignments (NeurIPS)"
    optim_defaults = {"lr": 2e-3, "weight_decay": 1e-6}
    Hparams = SwAVHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        super().__init__(encoder, input_size, **hparams)
        hp = self.hp
        self.projector = MLP(encoder.dim, hp.proj_hidden_dim, hp.proj_dim)
        self.prototypes = Prototypes(hp.proj_dim, hp.num_prototypes)
        self.prototypes.normalize_()
        self.prototypes.frozen = in_first(0.0, hp.freeze_prototypes)

    def pretext(self, modality: Modality) -> Pretext:
        return multicrop_pretext(swav_multicrop, self.hp, self.encoder, self.input_size)

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        globals_, locals_ = split_crops(batch)
        h = embed_crops(self.encoder, globals_ + locals_)
        scores = self.prototypes(self.projector(h)).chunk(len(globals_) + len(locals_))
        codes = [sinkhorn(s, self.hp.epsilon, self.hp.sinkhorn_iterations) for s in scores[: len(globals_)]]
        loss = swav_loss(scores, codes, self.hp.temperature)
        used = torch.cat(codes).argmax(-1).unique().numel() / self.hp.num_prototypes  # collapse shows as ~1/K
        metrics = {"prototypes_used": torch.tensor(used)}
        return LossOutput(loss, metrics=metrics, embeddings=h[: globals_[0].shape[0]].detach())

    def on_step_end(self, progress: float) -> None:
        self.prototypes.normalize_()
        self.prototypes.frozen = in_first(progress, self.hp.freeze_prototypes)
