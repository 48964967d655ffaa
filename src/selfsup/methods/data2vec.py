"""data2vec — Baevski, Hsu, Xu, Babu, Gu, Auli 2022, "data2vec: A General Framework for Self-supervised
Learning in Speech, Vision and Language" (ICML).

Pseudo-code (paper §3), the same for every modality:
    teacher = EMA of the student; tau rises linearly from 0.999 to 0.9999, then stays
    targets y_t = mean over the top K = 8 teacher layers of normalise(layer output at t)   # full input
    student sees the input with some positions replaced by a learned mask embedding
    loss = regression(head(student output at t), y_t) at the masked positions t
Masking and normalisation follow the paper per modality:
    audio:  spans of frames (p = 0.065 start a span of 10: mask_prob 0.65), instance norm over time per layer
    text:   BERT's 15 % of the tokens (80 % [MASK] / 10 % random / 10 % kept), parameter-less layer norm
    images: BEiT-style blocks of patches, 60 %, parameter-less layer norm (ViT encoders)
The head is linear; the loss is squared error (``loss_beta`` > 0: Smooth L1 with that beta, the paper's
choice for vision). The teacher runs without dropout. K is capped at the encoder's depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders.audio import AudioEncoder, standardize_over_time
from ..encoders.image import ViTEncoder
from ..encoders.text import TextEncoder
from ..errors import SelfSupError
from ..pretext.masking import random_block_mask, span_mask
from ..pretext.tokens import mlm_mask
from ..pretext.image_recipes import light_augment
from ..registry import register_method
from ..schedules import linear_ramp
from ..types import Family, LossOutput, Modality
from .audio_base import frame_grid
from .base import Hparams, Method, Pretext
from .momentum import ema_update, frozen_copy


@dataclass
class Data2VecHparams(Hparams):
    top_k: int = 8
    mask_prob: float = 0.65  # audio: span starts x span length
    mask_length: int = 10
    text_mask_rate: float = 0.15
    image_mask_ratio: float = 0.6
    image_mask_block: int = 2  # mask blocks of 2 x 2 patches
    ema_start: float = 0.999
    ema_end: float = 0.9999
    ema_anneal: float = 0.1  # fraction of training over which tau rises to ema_end
    loss_beta: float = 0.0


@register_method
class Data2Vec(Method):
    name = "data2vec"
    family = Family.SELF_DISTILLATION
    modalities = frozenset({Modality.AUDIO, Modality.TEXT, Modality.IMAGE})
    paper = "Baevski et al. 2022, data2vec: A General Framework for Self-supervised Learning in Speech, Vision and Language (ICML)"
    default_encoder = "wav2vec2_tiny"
    default_encoders = {Modality.TEXT: "bert_tiny", Modality.IMAGE: "vit_micro"}
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = Data2VecHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        if not isinstance(encoder, (AudioEncoder, TextEncoder, ViTEncoder)):
            raise SelfSupError(f"data2vec needs a transformer encoder, got {encoder.config.get('name')!r}; use a "
                               "wav2vec2_* (audio), bert_* (text) or vit_* (images) encoder")
        if isinstance(encoder, TextEncoder) and encoder.causal:
            raise SelfSupError("data2vec predicts masked tokens from both sides; use a bert_* encoder, not a gpt_* one")
        super().__init__(encoder, input_size, **hparams)
        self.teacher = frozen_copy(encoder)
        self.head = nn.Linear(encoder.dim, encoder.dim)
        if isinstance(encoder, AudioEncoder):
            encoder.enable_frame_masking()
        if isinstance(encoder, ViTEncoder):
            self.mask_token = nn.Parameter(torch.zeros(encoder.dim))
            nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.momentum = self.hp.ema_start

    # ------------------------------------------------------------------ per modality: masked student input
    def pretext(self, modality: Modality) -> Pretext:
        hp, encoder = self.hp, self.encoder
        if modality is Modality.AUDIO:
            def audio(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
                batch = frame_grid(encoder, batch)
                return {**batch, "positions": span_mask(batch["frame_mask"], hp.mask_prob, hp.mask_length)}

            return audio
        if modality is Modality.TEXT:
            spec = encoder.spec

            def text(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
                ids, labels = mlm_mask(batch["input_ids"], batch["attention_mask"], mask_token_id=spec.mask_token_id,
                                       vocab_size=spec.vocab_size, special_ids=spec.special_ids, rate=hp.text_mask_rate,
                                       generator=generator)
                return {**batch, "masked_ids": ids, "positions": labels != -100}

            return text
        augment = light_augment(self.input_size, scale=(0.5, 1.0))
        grid = self.input_size // encoder.patch_size

        def image(images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            mask = random_block_mask(images.shape[0], grid, hp.image_mask_block, hp.image_mask_ratio,
                                     images.device, generator)
            return {"images": augment(images, generator=generator), "positions": mask}

        return image

    def _student(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(student outputs at every position [B, T, D], its pooled embedding [B, D])."""
        encoder, positions = self.encoder, batch["positions"]
        if isinstance(encoder, AudioEncoder):
            out = encoder({**batch, "mask_time_indices": positions})
            return out, encoder.pool(out, batch["frame_mask"])
        if isinstance(encoder, TextEncoder):
            out = encoder({"input_ids": batch["masked_ids"], "attention_mask": batch["attention_mask"]})
            return out, encoder.pool(out, batch["attention_mask"])
        out = encoder(batch["images"], token_mask=positions, mask_token=self.mask_token)
        return out[:, 1:], encoder.pool(out)

    @torch.no_grad()
    def _targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the top-K normalised teacher layers on the full input, [B, T, D]."""
        teacher = self.teacher.eval()
        if isinstance(teacher, AudioEncoder):
            layers = teacher.layer_outputs({k: v for k, v in batch.items() if k != "mask_time_indices"})
            norm = lambda x: standardize_over_time(x.float(), batch["frame_mask"], eps=1e-5)  # noqa: E731
        elif isinstance(teacher, TextEncoder):
            layers = teacher.layer_outputs(batch)
            norm = lambda x: F.layer_norm(x.float(), x.shape[-1:])  # noqa: E731
        else:
            layers = [x[:, 1:] for x in teacher.layer_outputs(batch["images"])]
            norm = lambda x: F.layer_norm(x.float(), x.shape[-1:])  # noqa: E731
        top = layers[-min(self.hp.top_k, len(layers)):]
        return torch.stack([norm(x) for x in top]).mean(0)

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        positions = batch["positions"]
        outputs, embeddings = self._student(batch)
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
