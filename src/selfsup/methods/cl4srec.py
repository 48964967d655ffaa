"""CL4SRec — Xie, Sun, Liu, Wu, Gao, Ding, Zhang, Cui 2022, "Contrastive Learning for Sequential
Recommendation" (ICDE).

Pseudo-code (paper §III):
    v1, v2 = aug(s_u), aug(s_u)        # each view: ONE of item crop / mask / reorder, drawn at random (§III-C)
    z1, z2 = pool(f(v1)), pool(f(v2))  # the shared causal (SASRec) encoder, user state at the last item
    loss = next_item_ce(f(s_u)) + lambda * NT-Xent(z1, z2, t)    # multi-task training (§III-E)
The main task is SASRec's next-item prediction with a full softmax over items (see :mod:`.sasrec`); the
views are augmentations of the input history (the history without its last item, which is only a
target). The augmentation ratios default inside the paper's grids (crop eta, mask gamma, reorder beta
searched over 0.1..0.9, §IV). lambda = 0.1 is the default of the public CL4SRec re-implementation
in DuoRec's code (Qiu et al. 2022, "Contrastive Learning for Representation Degeneration Problem in
Sequential Recommendation", WSDM), which scores pairs by dot products at temperature 1; here the
similarity is cosine (SimCLR's ``info_nce``), whose logits lie in [-1, 1], so the temperature is SimCLR's
0.5 rather than 1 (at 1 the contrastive term barely moves the encoder). No projection head (as the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..encoders.sequence import SequenceEncoder
from ..errors import SelfSupError
from ..losses import info_nce
from ..pretext.sequences import augment_history, next_item_targets
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, loss_weight, probability, ratio, scale, softmax_temperature
from .sasrec import item_prediction_loss


@dataclass
class CL4SRecHparams(Hparams):
    crop: float = scale(0.6)  # eta: share of the items an item crop keeps
    mask_ratio: float = ratio(0.3)  # gamma: share of the items an item mask hides
    reorder: float = probability(0.6)  # beta: share of the items an item reorder shuffles
    weight: float = loss_weight(0.1)  # lambda: weight of the contrastive loss
    temperature: float = softmax_temperature(0.5)  # cosine similarity (SimCLR's); see the module docstring


@register_method
class CL4SRec(Method):
    name = "cl4srec"
    family = Family.CONTRASTIVE
    modalities = frozenset({Modality.SEQUENCE})
    paper = "Xie et al. 2022, Contrastive Learning for Sequential Recommendation (ICDE)"
    default_encoder = "sasrec_tiny"
    optim_defaults = {"lr": 4e-3, "weight_decay": 0.0}  # as SASRec's (Adam lr 1e-3 in the paper)
    Hparams = CL4SRecHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        if not isinstance(encoder, SequenceEncoder) or not encoder.causal:
            raise SelfSupError(f"cl4srec needs a causal item-sequence encoder, got {encoder.config.get('name')!r}; "
                               "use --encoder sasrec_tiny")
        super().__init__(encoder, input_size, **hparams)

    def pretext(self, modality: Modality) -> Pretext:
        mask_item_id, hp = self.encoder.mask_item_id, self.hp

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            ids, mask, labels = next_item_targets(batch["input_ids"], batch["attention_mask"])
            views = [augment_history(ids, mask, crop=hp.crop, mask_ratio=hp.mask_ratio, reorder=hp.reorder,
                                     mask_item_id=mask_item_id, generator=generator) for _ in range(2)]
            return {"input_ids": ids, "attention_mask": mask, "labels": labels,
                    "view1_ids": views[0][0], "view1_mask": views[0][1],
                    "view2_ids": views[1][0], "view2_mask": views[1][1]}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        states = self.encoder({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
        next_item, accuracy = item_prediction_loss(self.encoder, states, batch["labels"])

        view_ids = torch.cat([batch["view1_ids"], batch["view2_ids"]])  # one pass for both views
        view_mask = torch.cat([batch["view1_mask"], batch["view2_mask"]])
        z1, z2 = self.encoder.pool(self.encoder({"input_ids": view_ids, "attention_mask": view_mask}),
                                   view_mask).chunk(2)
        contrastive = info_nce(z1, z2, temperature=self.hp.temperature)

        embeddings = self.encoder.pool(states, batch["attention_mask"]).detach()
        return LossOutput(next_item + self.hp.weight * contrastive,
                          metrics={"next_item_accuracy": accuracy, "contrastive_loss": contrastive.detach()},
                          embeddings=embeddings)
