"""Multi-crop views (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments", NeurIPS, §3.2): two full-resolution *global* crops covering a large part of
the image plus K small, low-resolution *local* crops of small parts of it. The local crops add
views at a fraction of the cost (a 16 px crop costs a quarter of a 32 px one) and teach
local-to-global correspondence. Used by SwAV and DINO (Caron et al. 2021).

The pretext returns a flat dict ``global1, global2, local1 .. localK`` of separate tensors (views of
different sizes cannot share one), each [B, 3, S, S] with row i from sample i.

Sizes for small images: the papers use 2 x 224 px + 6 (SwAV) or 10 (DINO) x 96 px crops. Scaled
down, the local crop is half the input size rounded down to a multiple of the ViT patch size
(:func:`local_crop_size`): 96/224 would give 13.7 px at 32 px, a 3 x 3 grid of 4 px patches, too
few tokens; 16 px keeps a 4 x 4 grid, and a whole grid is what a ViT's position embeddings can be
resampled to. For 32 px data the default is thus 2 x 32 px + 4 x 16 px: the four local crops cost
as much as one global crop, so a step costs ~3 single-view passes instead of BYOL's 2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from selfsup.pretext.image_augment import ImageAugment
from selfsup.pretext.image_recipes import byol_augments, simclr_augment

__all__ = ["MultiCrop", "dino_multicrop", "local_crop_size", "split_crops", "swav_multicrop"]

_KEY = re.compile(r"(global|local)(\d+)")


def local_crop_size(size: int, multiple: int = 4) -> int:
    """Side of the local crops for ``size``-px inputs: ``size // 2`` rounded down to a multiple of
    ``multiple`` (the ViT patch size; 4 suits CNNs), at least ``multiple``."""
    if size < 1 or multiple < 1:
        raise ValueError(f"size and multiple must be positive, got {size} and {multiple}")
    return max(multiple, size // 2 // multiple * multiple)


class MultiCrop:
    """Pretext ``(images, generator) -> {"global1": .., "globalG": .., "local1": .., "localK": ..}``.

    ``global_augments[g]`` makes view ``global{g+1}`` (one augmentation each, so the views can be
    asymmetric as in BYOL/DINO); ``local_augment`` makes all K local views in one batched call on the
    images repeated K times (copy-major), then split into ``local1 .. localK``.
    """

    def __init__(self, global_augments: Sequence[ImageAugment], local_augment: ImageAugment | None,
                 num_local: int) -> None:
        if not global_augments:
            raise ValueError("multi-crop needs at least one global augmentation")
        if num_local < 0 or (num_local > 0 and local_augment is None):
            raise ValueError(f"num_local must be >= 0 and needs a local_augment, got {num_local}")
        self.global_augments = tuple(global_augments)
        self.local_augment = local_augment
        self.num_local = num_local

    @property
    def keys(self) -> list[str]:
        return ([f"global{g + 1}" for g in range(len(self.global_augments))]
                + [f"local{k + 1}" for k in range(self.num_local)])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(globals={list(self.global_augments)}, "
                f"local={self.local_augment}, num_local={self.num_local})")

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        views = {f"global{g + 1}": aug(images, generator=generator) for g, aug in enumerate(self.global_augments)}
        if self.num_local:
            local = self.local_augment(images.repeat(self.num_local, 1, 1, 1), generator=generator)
            views.update({f"local{k + 1}": v for k, v in enumerate(local.chunk(self.num_local))})
        return views


def split_crops(batch: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """The global and the local views of a multi-crop batch, each list in index order."""
    found: dict[str, list[tuple[int, Tensor]]] = {"global": [], "local": []}
    for key, value in batch.items():
        match = _KEY.fullmatch(key)
        if match:
            found[match.group(1)].append((int(match.group(2)), value))
    if not found["global"]:
        raise ValueError(f"not a multi-crop batch (no 'global1' view): keys {sorted(batch)}")
    return tuple([v for _, v in sorted(found[kind], key=lambda item: item[0])] for kind in ("global", "local"))


def dino_multicrop(size: int, num_local: int = 4, global_scale: tuple[float, float] = (0.4, 1.0),
                   local_scale: tuple[float, float] = (0.05, 0.4), local_size: int | None = None,
                   flip_p: float = 0.5) -> MultiCrop:
    """DINO's crops (Caron et al. 2021, App. / ``DataAugmentationDINO``): BYOL's asymmetric pair for the
    two globals (blur p=1 / blur p=0.1 + solarize p=0.2), the same colour jitter and blur p=0.5 for the
    locals. Global scale (0.4, 1), local (0.05, 0.4); blur only for ``size >= 64`` as in
    :func:`byol_augments`."""
    first, second = byol_augments(size, crop_scale=global_scale, flip_p=flip_p)
    local = replace(first.config, size=local_size or local_crop_size(size), crop_scale=local_scale,
                    blur_p=0.5 if first.config.blur_p > 0 else 0.0, solarize_p=0.0)
    return MultiCrop((first, second), ImageAugment(local), num_local)


def swav_multicrop(size: int, num_local: int = 4, global_scale: tuple[float, float] = (0.14, 1.0),
                   local_scale: tuple[float, float] = (0.05, 0.14), local_size: int | None = None,
                   flip_p: float = 0.5) -> MultiCrop:
    """SwAV's crops (Caron et al. 2020, §3.2 and App. A): the same augmentation for every crop,
    SimCLR's colour distortion at strength 1 (jitter 0.8/0.8/0.8/0.2 with p=0.8, grayscale p=0.2,
    blur p=0.5 for ``size >= 64``); global scale (0.14, 1), local (0.05, 0.14)."""
    glob = simclr_augment(size, strength=1.0, crop_scale=global_scale, flip_p=flip_p)
    local = replace(glob.config, size=local_size or local_crop_size(size), crop_scale=local_scale)
    return MultiCrop((glob, glob), ImageAugment(local), num_local)
