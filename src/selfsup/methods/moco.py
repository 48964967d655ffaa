"""MoCo — Momentum Contrast, v2 (queue of negatives) and v3 (batch negatives, predictor).

He, Fan, Wu, Xie & Girshick 2020, "Momentum Contrast for Unsupervised Visual Representation
Learning" (CVPR); v2: Chen, Fan, Girshick & He 2020, "Improved Baselines with Momentum Contrastive
Learning" (arXiv:2003.04297); v3: Chen, Xie & He 2021, "An Empirical Study of Training
Self-Supervised Vision Transformers" (ICCV).

Pseudo-code, v2 (MoCo Algorithm 1 with v2's MLP head, made symmetric as lightly/solo-learn do):
    q1, q2 = g(f(x1)), g(f(x2))                         # query encoder f, 2-layer MLP projector g
    k1, k2 = g'(f'(x1)), g'(f'(x2))                     # key encoder f', g': EMA copies, no gradient
    loss = (L(q1, k2, queue) + L(q2, k1, queue)) / 2    # InfoNCE: positive = key, negatives = queue
    queue.enqueue([k1; k2])                             # FIFO; keys of every process (training only)
    f', g' <- m f' + (1 - m) f, g                       # m constant
Pseudo-code, v3 (paper Algorithm 1):
    q1, q2 = h(g(f(x1))), h(g(f(x2)))                   # + predictor h on the query side
    loss = ctr(q1, k2) + ctr(q2, k1)                    # no queue: keys of the global batch
    m from base to 1 on a cosine schedule

Defaults, scaled down for small images and short CPU runs (paper values in brackets):
- momentum 0.99 [v2 0.999]: 0.999 averages over ~1000 steps, more than many short runs have,
  so keys would come from an almost untrained network; v3's 0.99 -> 1 schedule is the paper's.
- queue 4096 [65536]: on a small dataset a long queue holds stale keys of an old network and
  older keys of the query's own image, which then count as negatives.
- temperature: v2 0.2; v3 1.0, the paper's value for ResNets (it uses 0.2 for ViTs — set it).
  The default is chosen by ``version`` alone, never by the encoder.
- heads 1024 hidden [2048 v2, 4096 v3], 128-d output [v3 256], with BatchNorm in the hidden layer
  (``heads.MLP``; v2's head had none); v3's projector ends in BatchNorm, as in its code.
Shuffle-BN (v1/v2) is not implemented: with BatchNorm in the key encoder, a query's positive key
shares batch statistics with it while the queue's negatives do not, a leak the network can use to
find its positive without learning good features; MoCo shuffles samples across GPUs before the key
encoder to break it. Here both encoders see both views in one batch; v3 (batch negatives, no
queue) does not rely on it — use sync-batchnorm under DDP as the paper does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import setting
from ..errors import SelfSupError
from ..heads import MLP
from ..losses import moco_v2_loss, moco_v3_loss
from ..pretext.image_recipes import simclr_augment
from ..pretext.views import two_views
from ..registry import register_method
from ..schedules import cosine_momentum
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, count, probability, scale, softmax_temperature, width
from .joint_embedding import embed_views, first_view
from .memory import FeatureQueue
from .momentum import ema_update, frozen_copy

DEFAULT_TEMPERATURE = {2: 0.2, 3: 1.0}


@dataclass
class MoCoHparams(Hparams):
    version: int = setting(2, choices=(2, 3))  # 2: queue of negatives; 3: batch negatives + predictor, no queue
    temperature: float | None = softmax_temperature(None)  # None: 0.2 for v2, 1.0 for v3 (ResNet value; 0.2 for ViTs)
    momentum: float = probability(0.99)  # v2: constant; v3: base of the cosine schedule to 1
    queue_size: int = count(4096, 2**24)  # v2 only
    proj_hidden_dim: int = width(1024)
    proj_dim: int = width(128)
    pred_hidden_dim: int = width(1024)  # v3 only
    crop_min_scale: float = scale(0.08)  # RandomResizedCrop scale (crop_min_scale, 1)
    flip_p: float = probability(0.5)

    def __post_init__(self) -> None:
        if self.version not in DEFAULT_TEMPERATURE:
            raise SelfSupError(
                f"moco version must be 2 (queue of negatives) or 3 (batch negatives + predictor), got {self.version!r}"
            )
        if self.temperature is None:
            self.temperature = DEFAULT_TEMPERATURE[self.version]


@register_method
class MoCo(Method):
    name = "moco"
    family = Family.CONTRASTIVE
    modalities = frozenset({Modality.IMAGE})
    paper = (
        "He et al. 2020, Momentum Contrast for Unsupervised Visual Representation Learning (CVPR); "
        "Chen et al. 2021, An Empirical Study of Training Self-Supervised Vision Transformers (ICCV)"
    )
    optim_defaults = {"lr": 2e-3, "weight_decay": 1e-4}
    Hparams = MoCoHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        super().__init__(encoder, input_size, **hparams)
        hp = self.hp
        v3 = hp.version == 3
        self.projector = MLP(encoder.dim, hp.proj_hidden_dim, hp.proj_dim, last_batch_norm=v3)
        self.predictor = MLP(hp.proj_dim, hp.pred_hidden_dim, hp.proj_dim) if v3 else None
        self.key_encoder = frozen_copy(self.encoder)
        self.key_projector = frozen_copy(self.projector)
        self.queue = None if v3 else FeatureQueue(hp.queue_size, hp.proj_dim)
        self.momentum = hp.momentum

    def pretext(self, modality: Modality) -> Pretext:
        augment = simclr_augment(self.input_size, crop_scale=(self.hp.crop_min_scale, 1.0), flip_p=self.hp.flip_p)
        return two_views(augment, augment)

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        heads = [self.projector] if self.predictor is None else [self.projector, self.predictor]
        h, *_, (q1, q2) = embed_views(self.encoder, batch, *heads)  # one pass per encoder: BN sees both views
        with torch.no_grad():
            _, (k1, k2) = embed_views(self.key_encoder, batch, self.key_projector)
        t = self.hp.temperature
        if self.queue is None:  # v3
            loss = moco_v3_loss(q1, k2, t) + moco_v3_loss(q2, k1, t)
        else:  # v2: contrast with the queue as it was, then push this batch's keys
            negatives = self.queue.features
            loss = (moco_v2_loss(q1, k2, negatives, t) + moco_v2_loss(q2, k1, negatives, t)) / 2
            if self.training:
                self.queue.enqueue(torch.cat([k1, k2]))
        pos_cosine = torch.cat([F.cosine_similarity(q1, k2), F.cosine_similarity(q2, k1)]).mean()
        metrics = {"pos_cosine": pos_cosine.detach(), "momentum": torch.tensor(self.momentum)}
        return LossOutput(loss, metrics=metrics, embeddings=first_view(h))

    def on_step_end(self, progress: float) -> None:
        if self.hp.version == 3:
            self.momentum = cosine_momentum(progress, self.hp.momentum)
        ema_update(self.key_encoder, self.encoder, self.momentum)
        ema_update(self.key_projector, self.projector, self.momentum)
