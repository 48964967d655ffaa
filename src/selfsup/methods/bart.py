"""BART — Lewis, Liu, Goyal, Ghazvininejad, Mohamed, Levy, Stoyanov, Zettlemoyer 2020, "BART: Denoising
Sequence-to-Sequence Pre-training for Natural Language Generation, Translation, and Comprehension" (ACL).

Pseudo-code (paper §2.2 and §5, text infilling + sentence permutation):
    x' = permute_sentences(x)                       # shuffle the sentences of the text
    x' = infill(x', spans ~ Poisson(3), ~30 %)      # each span -> ONE [MASK] (0-length spans insert one)
    h = encoder(x')                                 # bidirectional
    loss = cross-entropy(decoder(x[:-1], h), x[1:])  # the autoregressive decoder rebuilds the ORIGINAL text
The whole encoder-decoder (``bart_tiny`` / ``bart_small``: a transformers ``BartForConditionalGeneration`` built from
a config) is the run's model; its encoder half, mean-pooled, is the embedding of knn/linear/embed, and
``selfsup evaluate --protocol translation`` fine-tunes the whole of it (Lewis et al. §3.4; Liu et al. 2020, mBART,
pretrain on the monolingual text of both languages with one shared vocabulary).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import setting
from ..encoders.text import Seq2SeqTextEncoder
from ..errors import SelfSupError
from ..pretext.bart_noise import bart_noise, decoder_labels
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext


@dataclass
class BARTHparams(Hparams):
    mask_rate: float = setting(0.3, low=0, high=1, high_open=True)  # share of the tokens inside masked spans
    poisson_lambda: float = setting(3.0, low=0, high=64, low_open=True)  # mean span length
    permute_sentences: bool = setting(True)  # shuffle the sentences of each text (split after . ! ?)


@register_method
class BART(Method):
    name = "bart"
    family = Family.GENERATIVE
    modalities = frozenset({Modality.TEXT})
    paper = "Lewis et al. 2020, BART: Denoising Sequence-to-Sequence Pre-training for Natural Language Generation, Translation, and Comprehension (ACL)"
    default_encoder = "bart_tiny"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = BARTHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        if not isinstance(encoder, Seq2SeqTextEncoder):
            raise SelfSupError(f"bart trains an encoder-decoder, got encoder {encoder.config.get('name')!r}; use "
                               "--encoder bart_tiny or bart_small (or --init a bart run)")
        super().__init__(encoder, input_size, **hparams)

    def pretext(self, modality: Modality) -> Pretext:
        spec, hp = self.encoder.spec, self.hp

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            noisy_ids, noisy_mask = bart_noise(
                batch["input_ids"], batch["attention_mask"], batch.get("sentence_ends"),
                mask_token_id=spec.mask_token_id, pad_token_id=spec.pad_token_id,
                special_ids=spec.special_ids, rate=hp.mask_rate, lam=hp.poisson_lambda,
                permute=hp.permute_sentences, generator=generator)
            return {"noisy_ids": noisy_ids, "noisy_mask": noisy_mask,
                    "labels": decoder_labels(batch["input_ids"], batch["attention_mask"])}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        out = self.encoder.hf_model(input_ids=batch["noisy_ids"], attention_mask=batch["noisy_mask"],
                                    labels=batch["labels"], use_cache=False)
        embeddings = self.encoder.pool(out.encoder_last_hidden_state, batch["noisy_mask"]).detach()
        return LossOutput(out.loss, metrics={"perplexity": out.loss.detach().exp()}, embeddings=embeddings)
