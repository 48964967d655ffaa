"""Jigsaw puzzles — Noroozi & Favaro 2016, "Unsupervised Learning of Visual Representations by
Solving Jigsaw Puzzles" (ECCV).

Pseudo-code (paper §3, Fig. 3 "context-free network"):
    P = hamming_permutations(N)                       # N classes, far apart in Hamming distance
    cut x into a 3x3 grid of cells; one random tile inside each cell (64 px tiles in 75 px cells)
    k ~ U{1..N}; shuffle the 9 tiles by P[k]; normalise every tile on its own
    h_i = f(tile_i) for i = 1..9                       # one shared encoder, tiles never see each other
    loss = cross_entropy(MLP(concat(h_1, ..., h_9)), k)  # which permutation was applied?
Defaults: 100 permutations instead of the paper's 1000 (ImageNet): small data sets give each class
enough examples, the greedy max-min set keeps them at least 6 swaps apart (5 for 1000), and the
paper's ablation (Table 3) loses little transfer accuracy from 1000 down to 100 classes.
The tile side scales with the input (cells of input_size // 3, tiles 64/75 of a cell: 4 px tiles
at 16 px, 8 px at 32 px); the random crop and grayscale images (30 % of them, against
chromatic-aberration shortcuts) follow the paper's §3.2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..heads import MLP
from ..pretext.transforms import hamming_permutations, jigsaw_tiles
from ..pretext.image_augment import ImageAugment
from ..pretext.image_recipes import light_augment
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, count, probability, scale, width

NUM_TILES = 9


@dataclass
class JigsawHparams(Hparams):
    num_permutations: int = count(100, 362880, low=2)  # paper: 1000 for ImageNet
    permutation_seed: int = count(0, 2**32 - 1, low=0)
    tile_fraction: float = scale(64 / 75)  # tile side / cell side (paper: 64 px tiles in 75 px cells)
    head_hidden_dim: int = width(1024)  # the paper's fc7 has 4096 units
    min_crop_scale: float = scale(0.5)  # paper: a 225 px crop of the 256 px image
    grayscale_p: float = probability(0.3)


@register_method
class Jigsaw(Method):
    name = "jigsaw"
    family = Family.TRANSFORMATION
    modalities = frozenset({Modality.IMAGE})
    paper = "Noroozi & Favaro 2016, Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles (ECCV)"
    optim_defaults = {"lr": 2e-3, "weight_decay": 5e-4}
    Hparams = JigsawHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        super().__init__(encoder, input_size, **hparams)
        self.permutations = hamming_permutations(self.hp.num_permutations, NUM_TILES, self.hp.permutation_seed)
        self.head = MLP(NUM_TILES * encoder.dim, self.hp.head_hidden_dim, self.hp.num_permutations)

    def pretext(self, modality: Modality) -> Pretext:
        light = light_augment(self.input_size, scale=(self.hp.min_crop_scale, 1.0))
        augment = ImageAugment(replace(light.config, grayscale_p=self.hp.grayscale_p))
        permutations, fraction = self.permutations, self.hp.tile_fraction

        def pretext(images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            view = augment(images, generator=generator)
            tiles, labels = jigsaw_tiles(view, permutations, generator, tile_fraction=fraction)
            return {"images": view, "tiles": tiles, "labels": labels}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        tiles, labels = batch["tiles"], batch["labels"]
        h = self.encoder.embed(tiles.flatten(0, 1))  # [B*9, D]: every tile on its own, one pass
        logits = self.head(h.view(tiles.shape[0], -1))  # the 9 embeddings concatenated in puzzle order
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        with torch.no_grad():
            embeddings = self.encoder.embed(batch["images"])  # the whole image, for the health monitor
        return LossOutput(loss, metrics={"jigsaw_acc": accuracy.detach()}, embeddings=embeddings)
