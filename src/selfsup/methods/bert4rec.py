"""BERT4Rec — Sun, Liu, Wu, Pei, Lin, Ou, Jiang 2019, "BERT4Rec: Sequential Recommendation with
Bidirectional Encoder Representations from Transformer" (CIKM).

Pseudo-code (paper §3.6):
    corrupt the history: each item -> [MASK] with probability rho (no random / kept replacements)
    (some samples instead mask only the last item: they match the next-item test)
    h = bidirectional_transformer(corrupted history)
    loss = cross_entropy(h_t . e_i over ALL items, original item) at the masked positions only
The paper's output layer is a GELU projection plus a per-item bias before the product with the tied item
table (§3.5); a plain tied output (``item_logits`` of SASRec) is used here. rho = 0.2 is the paper's
best mask proportion on ML-1M (§4, "Impact of Mask Proportion"; its scripts use 0.6 on Beauty, 0.4 on
Steam). The paper gives no share for the mask-the-last-item samples; ``last_item_prob = 0.1`` is our
choice (a small share, so most rows still train the Cloze task). The user embedding is the mean of the
states over the real items (the encoder's pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..encoders.sequence import SequenceEncoder
from ..errors import SelfSupError
from ..pretext.sequences import mask_items
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, probability, ratio
from .sasrec import item_prediction_loss


@dataclass
class BERT4RecHparams(Hparams):
    mask_rate: float = ratio(0.2)  # Sun et al. 2019, §4: best rho on ML-1M
    last_item_prob: float = probability(0.1)  # share of rows that mask only their last item (§3.6; the share is our choice)


@register_method
class BERT4Rec(Method):
    name = "bert4rec"
    family = Family.PREDICTIVE
    modalities = frozenset({Modality.SEQUENCE})
    paper = ("Sun et al. 2019, BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations "
             "from Transformer (CIKM)")
    default_encoder = "bert4rec_tiny"
    optim_defaults = {"lr": 4e-3, "weight_decay": 0.0}  # as SASRec's (Adam lr 1e-4 in the paper, for 400k steps)
    Hparams = BERT4RecHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        if not isinstance(encoder, SequenceEncoder) or encoder.causal:
            raise SelfSupError(f"bert4rec needs a bidirectional item-sequence encoder, got "
                               f"{encoder.config.get('name')!r}; use --encoder bert4rec_tiny")
        super().__init__(encoder, input_size, **hparams)

    def pretext(self, modality: Modality) -> Pretext:
        encoder, hp = self.encoder, self.hp

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            ids, labels = mask_items(batch["input_ids"], batch["attention_mask"], mask_item_id=encoder.mask_item_id,
                                     num_items=encoder.num_items, rate=hp.mask_rate,
                                     last_item_prob=hp.last_item_prob, generator=generator)
            return {"input_ids": ids, "attention_mask": batch["attention_mask"], "labels": labels}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        states = self.encoder(batch)
        loss, accuracy = item_prediction_loss(self.encoder, states, batch["labels"])
        embeddings = self.encoder.pool(states, batch["attention_mask"]).detach()
        return LossOutput(loss, metrics={"masked_item_accuracy": accuracy}, embeddings=embeddings)
