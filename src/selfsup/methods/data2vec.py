"""data2vec — Baevski, Hsu, Xu, Babu, Gu, Auli 2022, "data2vec: A General Framework for Self-supervised
Learning in Speech, Vision and Language" (ICML).

Pseudo-code (paper §3), the same for every modality:
    teacher = EMA of the student; tau rises linearly from 0.999 to 0.9999, then stays
    targets y_t = mean over the top K = 8 teacher layers of normalise(layer states at t)   # full input
    student sees the input with some positions hidden
    loss = regression(head(student output at t), y_t) at the hidden positions t
The method knows no modality: the modality gives the masking and the target normalisation
(``Modality.masked_inputs`` / ``normalize_targets``; speech: spans of frames and instance norm over time;
text: BERT's 15 % with [MASK]/random/kept tokens and layer norm; images: blocks of patches and layer norm),
and the encoder hides positions and exposes its layer states (``Encoder.forward_masked`` /
``layer_states``; any transformer encoder). The head is linear; the loss is squared error (``loss_beta`` > 0:
Smooth L1 with that beta, the paper's choice for vision). The teacher runs without dropout. K is capped at
the encoder's depth.

Two deviations from the paper, both kept for simplicity and documented here:
- the targets are each block's whole output (after the feed-forward block and its residual), where the paper
  takes the feed-forward output before the last residual connection (§3.3: "the output of the FFN prior to
  the last residual connection");
- the teacher is an EMA of the whole encoder, where the paper's speech model shares the convolutional feature
  encoder and the positional encoder between teacher and student (only the transformer blocks follow the EMA).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import setting
from ..errors import SelfSupError
from ..modalities import get_modality
from ..registry import register_method
from ..schedules import linear_ramp
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, count, probability, ratio, scale
from .momentum import ema_update, frozen_copy


@dataclass
class Data2VecHparams(Hparams):
    top_k: int = count(8, 1024)
    mask_prob: float = scale(0.65)  # audio: span starts x span length
    mask_length: int = count(10, 10000)
    text_mask_rate: float = ratio(0.15)
    image_mask_ratio: float = ratio(0.6)
    image_mask_block: int = count(2, 1024)  # mask blocks of 2 x 2 patches
    ema_start: float = probability(0.999)
    ema_end: float = probability(0.9999)
    ema_anneal: float = probability(0.1)  # fraction of training over which tau rises to ema_end
    loss_beta: float = setting(0.0, low=0, high=100)


@register_method
class Data2Vec(Method):
    name = "data2vec"
    family = Family.SELF_DISTILLATION
    modalities = frozenset({Modality.AUDIO, Modality.TEXT, Modality.IMAGE})
    paper = "Baevski et al. 2022, data2vec: A General Framework for Self-supervised Learning in Speech, Vision and Language (ICML)"
    encoder_kind = "transformer"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = Data2VecHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        if not encoder.supports_masking:
            raise encoder._cannot_mask()
        super().__init__(encoder, input_size, **hparams)
        self.teacher = frozen_copy(encoder)
        self.head = nn.Linear(encoder.dim, encoder.dim)
        self.mask_token = encoder.new_mask_embedding()  # None where the encoder or its input has its own
        self.momentum = self.hp.ema_start
        self.normalize_targets = None  # the modality's, known once the engine asks for the pretext

    def pretext(self, modality: Modality | str) -> Pretext:
        """The modality's masked inputs: ``{student, teacher, positions[, valid]}``."""
        modality = get_modality(modality)
        self.normalize_targets = modality.normalize_targets
        return modality.masked_inputs(self.encoder, self.input_size, self.hp)

    @torch.no_grad()
    def _targets(self, batch: dict) -> torch.Tensor:
        """Mean of the top-K normalised teacher layers on the full input, [B, T, D]."""
        if self.normalize_targets is None:
            raise SelfSupError("data2vec: call pretext(modality) before loss (the targets are normalised per modality)")
        layers = self.teacher.eval().layer_states(batch["teacher"])
        top = layers[-min(self.hp.top_k, len(layers)):]
        return torch.stack([self.normalize_targets(x, batch) for x in top]).mean(0)

    def loss(self, batch: dict) -> LossOutput:
        positions = batch["positions"]
        outputs, embeddings = self.encoder.forward_masked(batch["student"], positions, self.mask_token)
        pred = self.head(outputs[positions]).float()
        target = self._targets(batch)[positions]
        if self.hp.loss_beta > 0:
            loss = F.smooth_l1_loss(pred, target, beta=self.hp.loss_beta)
        else:
            loss = F.mse_loss(pred, target)
        return LossOutput(loss, metrics={"ema_momentum": torch.tensor(self.momentum)}, embeddings=embeddings.detach())

    def on_step_end(self, progress: float) -> None:
        hp = self.hp
        self.momentum = linear_ramp(progress, hp.ema_start, hp.ema_end, hp.ema_anneal)
        ema_update(self.teacher, self.encoder, self.momentum)
