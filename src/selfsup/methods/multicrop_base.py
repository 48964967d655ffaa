"""What the multi-crop methods (SwAV: Caron et al. 2020, NeurIPS, §3.2; DINO: Caron et al. 2021, ICCV)
share on top of ``pretext.multicrop``: the crop settings, the pretext they configure, and one
encoder pass per crop resolution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

import torch
from torch import nn

from ..config import MAX_IMAGE_SIZE
from ..pretext.multicrop import MultiCrop, local_crop_size
from .base import Hparams, count, probability, scale


@dataclass
class MultiCropHparams(Hparams):
    """Crop settings: globals at scale (global_crop_min_scale, 1), locals at (local_crop_min_scale,
    global_crop_min_scale). Each method sets its paper's ``global_crop_min_scale``."""

    global_crop_min_scale: float
    num_local_crops: int = count(4, 64, low=0)
    local_crop_min_scale: float = scale(0.05)
    local_crop_size: int | None = count(None, MAX_IMAGE_SIZE)  # None: half the input size (multicrop.local_crop_size)
    flip_p: float = probability(0.5)


def multicrop_pretext(make: Callable[..., MultiCrop], hp: MultiCropHparams, encoder: nn.Module,
                      input_size: int) -> MultiCrop:
    """``make`` (``dino_multicrop`` or ``swav_multicrop``) with the crops of ``hp``; local crops of
    ``hp.local_crop_size`` px, else half the input rounded down to the ViT patch size (4 for a CNN)."""
    local_size = hp.local_crop_size or local_crop_size(input_size, getattr(encoder, "patch_size", 4))
    return make(input_size, hp.num_local_crops, (hp.global_crop_min_scale, 1.0),
                (hp.local_crop_min_scale, hp.global_crop_min_scale), local_size, hp.flip_p)


def embed_crops(encoder: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
    """Pooled features of all ``views`` in order, one encoder pass per run of same-size views
    (DINO's ``MultiCropWrapper``): BatchNorm sees each resolution as one batch."""
    return torch.cat([encoder.embed(torch.cat(list(group))) for _, group in groupby(views, key=lambda v: v.shape[-2:])])
