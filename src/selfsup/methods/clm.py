"""Causal language modelling (next-token prediction) — Radford, Narasimhan, Salimans, Sutskever 2018,
"Improving Language Understanding by Generative Pre-Training" (GPT).

Pseudo-code (paper §3.1):
    h = causal_transformer(tokens)            # position t attends to positions <= t only
    loss = cross-entropy(head(h[t]), token[t + 1])   summed over every position of every text
The head is GPT's output layer tied to the input embeddings (the checkpoint's own LM head when the encoder
was loaded from one with ``--init``). The sentence embedding used downstream is
the mean of the hidden states over the text's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..heads import TokenPredictionHead
from ..pretext.tokens import causal_lm_targets
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext
from .text_base import require_text_encoder


@dataclass
class CLMHparams(Hparams):
    pass


@register_method
class CLM(Method):
    name = "clm"
    family = Family.PREDICTIVE
    modalities = frozenset({Modality.TEXT})
    paper = "Radford et al. 2018, Improving Language Understanding by Generative Pre-Training (GPT)"
    default_encoder = "gpt_tiny"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = CLMHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        require_text_encoder(encoder, self.name, causal=True)
        super().__init__(encoder, input_size, **hparams)
        own = encoder.lm_head()  # a checkpoint's LM head (--init), else GPT's tied output layer, fresh
        self.head = own if own is not None else TokenPredictionHead(encoder.input_embeddings, transform=False)

    def pretext(self, modality: Modality) -> Pretext:
        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                    "labels": causal_lm_targets(batch["input_ids"], batch["attention_mask"])}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        states = self.encoder(batch)
        chosen = batch["labels"] != -100
        scores = self.head(states[chosen])
        loss = F.cross_entropy(scores, batch["labels"][chosen])
        embeddings = self.encoder.pool(states, batch["attention_mask"]).detach()
        return LossOutput(loss, metrics={"perplexity": loss.detach().exp()}, embeddings=embeddings)
