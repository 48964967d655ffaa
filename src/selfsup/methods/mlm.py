"""Masked language modelling — Devlin, Chang, Lee, Toutanova 2019, "BERT: Pre-training of Deep
Bidirectional Transformers for Language Understanding" (NAACL).

Pseudo-code (paper §3.1, "Task #1: Masked LM"):
    choose 15 % of the tokens of each text (never [CLS]/[SEP]/[PAD])
    of those: 80 % -> [MASK], 10 % -> a random token, 10 % unchanged
    h = bidirectional_transformer(corrupted text)
    loss = cross-entropy(head(h), original token) at the chosen positions only
``whole_word`` masks all the pieces of a chosen word together (Google's BERT whole-word-masking release;
Cui et al. 2021, "Pre-Training with Whole Word Masking for Chinese BERT"). The head is BERT's
(dense, GELU, LayerNorm, output layer tied to the input embeddings), or the checkpoint's own masked-LM head
when the encoder was loaded from one (``--init``). The sentence embedding used
downstream is the encoder's pooled output (mean over tokens by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import setting
from ..heads import TokenPredictionHead
from ..pretext.tokens import mlm_mask
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, probability, ratio
from .text_base import require_text_encoder


@dataclass
class MLMHparams(Hparams):
    mask_rate: float = ratio(0.15)
    mask_prob: float = probability(0.8)  # of the chosen tokens: replaced by [MASK]
    random_prob: float = probability(0.1)  # replaced by a random token (the rest stay unchanged)
    whole_word: bool = setting(False)


@register_method
class MLM(Method):
    name = "mlm"
    family = Family.PREDICTIVE
    modalities = frozenset({Modality.TEXT})
    paper = "Devlin et al. 2019, BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding (NAACL)"
    default_encoder = "bert_tiny"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = MLMHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        require_text_encoder(encoder, self.name, causal=False)
        super().__init__(encoder, input_size, **hparams)
        own = encoder.lm_head()  # a checkpoint's masked-LM head (--init), else BERT's head, fresh
        self.head = own if own is not None else TokenPredictionHead(encoder.input_embeddings)

    def pretext(self, modality: Modality) -> Pretext:
        spec, hp = self.encoder.spec, self.hp

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            ids, labels = mlm_mask(batch["input_ids"], batch["attention_mask"], mask_token_id=spec.mask_token_id,
                                   vocab_size=spec.vocab_size, special_ids=spec.special_ids, rate=hp.mask_rate,
                                   mask_prob=hp.mask_prob, random_prob=hp.random_prob,
                                   word_starts=batch.get("word_starts") if hp.whole_word else None,
                                   generator=generator)
            return {"input_ids": ids, "attention_mask": batch["attention_mask"], "labels": labels}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        states = self.encoder(batch)
        chosen = batch["labels"] != -100
        scores = self.head(states[chosen])  # the vocabulary scores only where there is a target
        targets = batch["labels"][chosen]
        loss = F.cross_entropy(scores, targets)
        accuracy = (scores.detach().argmax(-1) == targets).float().mean()
        embeddings = self.encoder.pool(states, batch["attention_mask"]).detach()
        return LossOutput(loss, metrics={"mlm_accuracy": accuracy}, embeddings=embeddings)
