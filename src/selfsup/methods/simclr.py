"""SimCLR — Chen, Kornblith, Norouzi, Hinton 2020, "A Simple Framework for Contrastive Learning of
Visual Representations" (ICML).

Pseudo-code (paper Algorithm 1):
    x1, x2 = aug(x), aug(x)                 # two views of each image: the positive pair
    z1, z2 = g(f(x1)), g(f(x2))             # encoder f, 2-layer MLP projector g
    loss = NT-Xent(z1, z2, t)               # the other 2N-2 views in the batch are negatives
Defaults follow the CIFAR-10 recipe of the paper's appendix B.9: temperature 0.5, 128-d projection,
colour-jitter strength 0.5, no blur for 32 px images. The method is modality-generic: the modality
supplies the views (image augmentations; for text, dropout views, see :class:`SimCSE`; for audio, two
random crops of each recording with random gain and noise, the positives of COLA, Saeed et al. 2021,
"Contrastive Learning of General-Purpose Audio Representations", ICASSP).

SimCSE — Gao, Yao, Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings" (EMNLP),
unsupervised: the same recipe on sentences, where the positive pair is one sentence encoded twice with
independent dropout masks (§3) and the other sentences of the batch are the negatives; temperature 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..heads import MLP
from ..losses import info_nce
from ..modalities import get_modality
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, probability, scale, softmax_temperature, width
from .joint_embedding import embed_views, first_view


@dataclass
class SimCLRHparams(Hparams):
    temperature: float = softmax_temperature(0.5)
    proj_hidden_dim: int = width(512)
    proj_dim: int = width(128)
    crop_min_scale: float = scale(0.08)  # RandomResizedCrop scale (crop_min_scale, 1)
    flip_p: float = probability(0.5)


@register_method
class SimCLR(Method):
    name = "simclr"
    family = Family.CONTRASTIVE
    modalities = frozenset({Modality.IMAGE, Modality.AUDIO})
    paper = "Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual Representations (ICML)"
    optim_defaults = {"lr": 2e-3, "weight_decay": 1e-4}
    Hparams = SimCLRHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        super().__init__(encoder, input_size, **hparams)
        self.projector = MLP(encoder.dim, self.hp.proj_hidden_dim, self.hp.proj_dim)

    def pretext(self, modality: Modality | str) -> Pretext:
        """Two views of each sample, as the modality makes them (its augmentations; the view settings here)."""
        return get_modality(modality).two_views(self.input_size, self.hp)

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        h, (z1, z2) = embed_views(self.encoder, batch, self.projector)  # one pass: BN sees both views
        loss = info_nce(z1, z2, temperature=self.hp.temperature)
        return LossOutput(loss, embeddings=first_view(h))


@dataclass
class SimCSEHparams(Hparams):
    temperature: float = softmax_temperature(0.05)
    proj_hidden_dim: int = width(512)  # SimCSE trains with an MLP on the sentence vector and drops it afterwards
    proj_dim: int = width(128)


@register_method
class SimCSE(SimCLR):
    """SimCLR with text views (dropout) and SimCSE's temperature."""

    name = "simcse"
    modalities = frozenset({Modality.TEXT})
    paper = "Gao et al. 2021, SimCSE: Simple Contrastive Learning of Sentence Embeddings (EMNLP)"
    default_encoder = "bert_tiny"
    optim_defaults = {"lr": 5e-4, "weight_decay": 0.01}
    Hparams = SimCSEHparams
