"""SASRec — Kang & McAuley 2018, "Self-Attentive Sequential Recommendation" (ICDM).

Pseudo-code (paper §III):
    h = causal_transformer(item embeddings of s_1..s_t + positions)      # position t sees s_1..s_t only
    score(i | s_1..s_t) = h_t . e_i                                       # output layer tied to the item table
    loss = sum over real positions t of cross_entropy(scores_t over ALL items, s_{t+1})
The paper trains with one sampled negative per position (binary cross-entropy); the full softmax over
all items used here is the stronger objective of later work (e.g. Klenitskiy & Vasilev 2023, "Turning
Dross Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys) and what the issue asks for. The
user embedding is the state at the last item of the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..encoders.sequence import SequenceEncoder
from ..errors import SelfSupError
from ..pretext.sequences import next_item_targets
from ..pretext.tokens import IGNORE_INDEX
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext


@dataclass
class SASRecHparams(Hparams):
    pass


def item_logits(encoder: SequenceEncoder, states: torch.Tensor) -> torch.Tensor:
    """Scores over the real items: padding (0) and [MASK] (N + 1) can never be predicted."""
    scores = encoder.score_items(states)
    scores[..., 0] = float("-inf")
    scores[..., encoder.mask_item_id] = float("-inf")
    return scores


def item_prediction_loss(encoder: SequenceEncoder, states: torch.Tensor,
                         labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross entropy over all items, accuracy) at the positions with a label (``labels != -100``): the
    full-softmax item prediction shared by SASRec, BERT4Rec and CL4SRec."""
    chosen = labels != IGNORE_INDEX
    logits = item_logits(encoder, states[chosen])
    targets = labels[chosen]
    return F.cross_entropy(logits, targets), (logits.detach().argmax(-1) == targets).float().mean()


@register_method
class SASRec(Method):
    name = "sasrec"
    family = Family.PREDICTIVE
    modalities = frozenset({Modality.SEQUENCE})
    paper = "Kang & McAuley 2018, Self-Attentive Sequential Recommendation (ICDM)"
    default_encoder = "sasrec_tiny"
    optim_defaults = {"lr": 4e-3, "weight_decay": 0.0}  # Adam lr 1e-3 at batch 128 in the paper, scaled for short runs
    Hparams = SASRecHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        if not isinstance(encoder, SequenceEncoder) or not encoder.causal:
            raise SelfSupError(f"sasrec needs a causal item-sequence encoder, got {encoder.config.get('name')!r}; "
                               "use --encoder sasrec_tiny")
        super().__init__(encoder, input_size, **hparams)

    def pretext(self, modality: Modality) -> Pretext:
        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            ids, mask, labels = next_item_targets(batch["input_ids"], batch["attention_mask"])
            return {"input_ids": ids, "attention_mask": mask, "labels": labels}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        states = self.encoder(batch)
        loss, accuracy = item_prediction_loss(self.encoder, states, batch["labels"])
        embeddings = self.encoder.pool(states, batch["attention_mask"]).detach()
        return LossOutput(loss, metrics={"next_item_accuracy": accuracy}, embeddings=embeddings)
