"""Pretext data operations for images: augmented views, patch masking, rotations (pure tensor ops)."""

from selfsup.pretext.masking import PatchMask, gather_tokens, num_visible, random_patch_mask
from selfsup.pretext.transforms import NUM_ROTATIONS, rotate_all, rotate_random
from selfsup.pretext.views import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    AugmentParams,
    EvalTransform,
    ImageAugment,
    byol_augments,
    eval_transform,
    light_augment,
    normalize,
    simclr_augment,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUM_ROTATIONS",
    "AugmentConfig",
    "AugmentParams",
    "EvalTransform",
    "ImageAugment",
    "PatchMask",
    "byol_augments",
    "eval_transform",
    "gather_tokens",
    "light_augment",
    "normalize",
    "num_visible",
    "random_patch_mask",
    "rotate_all",
    "rotate_random",
    "simclr_augment",
]
