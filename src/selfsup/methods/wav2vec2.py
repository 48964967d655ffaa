"""wav2vec 2.0 — Baevski, Zhou, Mohamed, Auli 2020, "wav2vec 2.0: A Framework for Self-Supervised
Learning of Speech Representations" (NeurIPS).

Pseudo-code (paper §3):
    z = feature_encoder(waveform)                  # one latent frame per 20 ms
    q = gumbel_quantize(z)                         # G codebooks of V entries, product quantisation
    mask spans: p = 0.065 of the frames start a span of M = 10 masked frames (mask_prob 0.65 here)
    c = transformer(z with masked frames replaced by a learned vector)
    L_m = -log exp(sim(c_t, q_t)/k) / sum over q~ in {q_t} + K distractors exp(sim(c_t, q~)/k)
          at every masked frame t; distractors are other frames of the same utterance
    L_d = (GV - perplexity of the averaged codebook distributions) / GV       # diversity
    loss = L_m + alpha * L_d                       # alpha = 0.1, k = 0.1, K = 100
The quantiser, the projections, the contrastive and diversity losses are transformers'
``Wav2Vec2ForPreTraining`` (its masks and distractors from ``pretext.span_masking``, transformers'
``_compute_mask_indices`` and ``_sample_negative_indices`` vendored, as in transformers' pretraining example), sharing the encoder's
``Wav2Vec2Model``; the loss is averaged over the masked frames. The Gumbel temperature anneals from 2 to 0.5
over training (the paper: by a factor 0.999995 per update, over 400k updates). An encoder started from a
checkpoint saved from ``Wav2Vec2ForPreTraining`` (``--init``) continues with that checkpoint's quantiser and
projections, whose sizes then replace ``codebooks``, ``codebook_size``, ``codevector_dim`` and ``proj_dim``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..encoders import starts_from_checkpoint
from ..pretext.masking import span_mask
from ..pretext.span_masking import sample_negative_indices
from ..registry import register_method
from ..schedules import geometric_decay
from ..types import Family, LossOutput, Modality
from .audio_base import frame_grid, require_audio_encoder
from .base import Hparams, Method, Pretext, count, loss_weight, scale, softmax_temperature, width

if TYPE_CHECKING:  # pragma: no cover
    import transformers

log = logging.getLogger("selfsup")


@dataclass
class Wav2Vec2Hparams(Hparams):
    mask_prob: float = scale(0.65)
    mask_length: int = count(10, 10000)
    num_negatives: int = count(100, 10000)
    codebooks: int = count(2, 64)  # G
    codebook_size: int = count(320, 65536)  # V
    codevector_dim: int = width(256)
    proj_dim: int = width(256)
    temperature: float = softmax_temperature(0.1)  # kappa
    diversity_weight: float = loss_weight(0.1)  # alpha
    gumbel_start: float = softmax_temperature(2.0)
    gumbel_end: float = softmax_temperature(0.5)


def fresh_pretraining(config: transformers.PretrainedConfig, hp: Wav2Vec2Hparams) -> nn.Module:
    """A ``Wav2Vec2ForPreTraining`` with a new quantiser and projections for an encoder whose transformers config is
    ``config`` (its model is replaced by the encoder's). Another family's config (HuBERT, WavLM, data2vec-audio)
    gives the quantiser its frame width and the projections their input width only."""
    import transformers

    if isinstance(config, transformers.Wav2Vec2Config):
        config = copy.deepcopy(config)
    else:  # a one-layer throwaway model of the same widths: replaced by the encoder's
        config = transformers.Wav2Vec2Config(
            hidden_size=config.hidden_size, num_hidden_layers=1, num_attention_heads=config.num_attention_heads,
            intermediate_size=config.hidden_size, conv_dim=config.conv_dim, conv_kernel=config.conv_kernel,
            conv_stride=config.conv_stride, num_conv_pos_embeddings=2, num_conv_pos_embedding_groups=1)
    config.update({"num_codevector_groups": hp.codebooks, "num_codevectors_per_group": hp.codebook_size,
                   "codevector_dim": hp.codevector_dim, "proj_codevector_dim": hp.proj_dim,
                   "feat_quantizer_dropout": 0.0})
    return transformers.Wav2Vec2ForPreTraining(config)


@register_method
class Wav2Vec2(Method):
    name = "wav2vec2"
    family = Family.CONTRASTIVE
    modalities = frozenset({Modality.AUDIO})
    paper = "Baevski et al. 2020, wav2vec 2.0: A Framework for Self-Supervised Learning of Speech Representations (NeurIPS)"
    default_encoder = "wav2vec2_tiny"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = Wav2Vec2Hparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        require_audio_encoder(encoder, self.name)
        super().__init__(encoder, input_size, **hparams)
        hp = self.hp
        own = encoder.pretraining_model()  # a checkpoint's quantiser and projections (--init), else fresh ones
        if own is not None:
            config = own.config
            hp.codebooks, hp.codebook_size = config.num_codevector_groups, config.num_codevectors_per_group
            hp.codevector_dim, hp.proj_dim = config.codevector_dim, config.proj_codevector_dim
            log.info("wav2vec2: continuing with the checkpoint's own quantiser (%d codebooks of %d entries) and "
                     "projections; its Gumbel temperature restarts at method.gumbel_start=%g (wav2vec 2.0's schedule "
                     "ends at 0.5)", hp.codebooks, hp.codebook_size, hp.gumbel_start)
            own.dropout_features.p = 0.0
            self.pretraining = own
        else:
            if starts_from_checkpoint(encoder.config):  # a selfsup run keeps its encoder only; a HF base model too
                log.info("wav2vec2: checkpoint %s holds no quantiser (not saved from Wav2Vec2ForPreTraining); "
                         "starting a fresh one", encoder.config.get("init_from") or encoder.config.get("source"))
            self.pretraining = fresh_pretraining(encoder.hf_model.config, hp)
            self.pretraining.wav2vec2 = encoder.features_model()  # shared: the exported encoder is what was trained
        self.pretraining.config.update({"contrastive_logits_temperature": hp.temperature,
                                        "num_negatives": hp.num_negatives,
                                        "diversity_loss_weight": hp.diversity_weight})
        self.pretraining.set_gumbel_temperature(hp.gumbel_start)
        encoder.enable_frame_masking()

    def pretext(self, modality: Modality) -> Pretext:
        encoder, hp = self.encoder, self.hp

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            batch = frame_grid(encoder, batch, min_frames=2)  # a distractor needs a second frame
            frame_mask = batch["frame_mask"]
            masked = span_mask(frame_mask, hp.mask_prob, hp.mask_length)
            # distractors: real frames of the same utterance (transformers' example samples them this way)
            negatives = sample_negative_indices(tuple(frame_mask.shape), hp.num_negatives,
                                                mask_time_indices=frame_mask.cpu().numpy())
            return {**batch, "mask_time_indices": masked,
                    "negatives": torch.from_numpy(negatives).long().to(frame_mask.device)}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        waves, mask = self.encoder.prepare_inputs(batch)
        masked = batch["mask_time_indices"]
        out = self.pretraining(waves, attention_mask=self.encoder.model_attention_mask(mask), mask_time_indices=masked,
                               sampled_negative_indices=batch["negatives"])
        count = masked.sum().clamp_min(1)
        metrics = {"contrastive": (out.contrastive_loss / count).detach(),
                   "diversity": (out.diversity_loss / count).detach(),
                   "codebook_perplexity": out.codevector_perplexity.detach()}
        return LossOutput(out.loss / count, metrics=metrics)

    def on_step_end(self, progress: float) -> None:
        hp = self.hp
        self.pretraining.set_gumbel_temperature(geometric_decay(progress, hp.gumbel_start, hp.gumbel_end))
