"""TSDAE — Wang, Reimers, Gurevych 2021, "TSDAE: Using Transformer-based Sequential Denoising
Auto-Encoder for Unsupervised Sentence Embedding Learning" (Findings of EMNLP).

Pseudo-code (paper §3):
    noisy = delete ~60 % of the tokens of x                 # the best noise in the paper's Table 1
    s = pool(encoder(noisy))                                # ONE sentence vector
    h = decoder(x[:-1], cross-attending to s only)          # causal decoder, teacher forcing
    loss = cross-entropy(head(h[t]), x[t + 1])
The bottleneck is the point: everything the decoder needs to rebuild the sentence must pass through the
sentence vector. The decoder is the encoder's architecture as a causal decoder with cross-attention
(Hugging Face ``is_decoder`` + ``add_cross_attention``), sharing the word embeddings with the encoder
and the output layer (the paper ties encoder and decoder).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import setting
from ..heads import TokenPredictionHead
from ..pretext.tokens import causal_lm_targets, delete_tokens
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, count
from .text_base import require_text_encoder


@dataclass
class TSDAEHparams(Hparams):
    deletion_rate: float = setting(0.6, low=0, high=1, high_open=True)
    decoder_layers: int | None = count(None, 1024)  # None: as many as the encoder


@register_method
class TSDAE(Method):
    name = "tsdae"
    family = Family.GENERATIVE
    modalities = frozenset({Modality.TEXT})
    paper = "Wang et al. 2021, TSDAE: Transformer-based Sequential Denoising Auto-Encoder for Unsupervised Sentence Embedding Learning (Findings of EMNLP)"
    default_encoder = "bert_tiny"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = TSDAEHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        require_text_encoder(encoder, self.name, causal=False)
        super().__init__(encoder, input_size, **hparams)
        import transformers

        config = copy.deepcopy(encoder.hf_model.config)
        config.is_decoder, config.add_cross_attention = True, True
        if self.hp.decoder_layers:
            config.num_hidden_layers = self.hp.decoder_layers
        extra = {"add_pooling_layer": False} if config.model_type == "bert" else {}
        self.decoder = transformers.AutoModel.from_config(config, **extra)
        self.decoder.set_input_embeddings(encoder.input_embeddings)
        self.head = TokenPredictionHead(encoder.input_embeddings)

    def pretext(self, modality: Modality) -> Pretext:
        spec, rate = self.encoder.spec, self.hp.deletion_rate

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            noisy_ids, noisy_mask = delete_tokens(batch["input_ids"], batch["attention_mask"], rate=rate,
                                                  special_ids=spec.special_ids, pad_token_id=spec.pad_token_id,
                                                  generator=generator)
            return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                    "noisy_ids": noisy_ids, "noisy_mask": noisy_mask}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        noisy = {"input_ids": batch["noisy_ids"], "attention_mask": batch["noisy_mask"]}
        sentence = self.encoder.embed(noisy)  # [B, D]
        ids, mask = batch["input_ids"], batch["attention_mask"]
        states = self.decoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=sentence[:, None],
                              encoder_attention_mask=mask.new_ones(ids.shape[0], 1)).last_hidden_state
        labels = causal_lm_targets(ids, mask)
        chosen = labels != -100
        loss = F.cross_entropy(self.head(states[chosen]), labels[chosen])
        return LossOutput(loss, embeddings=sentence.detach())
