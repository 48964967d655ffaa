"""Pretext data operations (pure tensor ops): image views, patch masking, rotations, jigsaw puzzles,
multi-crop views, clustering pseudo-labels; token masking, deletion and next-token targets."""

from selfsup.pretext.clusters import assign, kmeans, sinkhorn
from selfsup.pretext.masking import PatchMask, gather_tokens, num_visible, random_block_mask, random_patch_mask
from selfsup.pretext.multicrop import MultiCrop, dino_multicrop, local_crop_size, split_crops, swav_multicrop
from selfsup.pretext.tokens import causal_lm_targets, delete_tokens, mlm_mask
from selfsup.pretext.transforms import (
    NUM_ROTATIONS,
    hamming_permutations,
    jigsaw_tiles,
    min_hamming_distance,
    rotate_all,
    rotate_random,
)
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
    "MultiCrop",
    "PatchMask",
    "assign",
    "byol_augments",
    "causal_lm_targets",
    "delete_tokens",
    "dino_multicrop",
    "eval_transform",
    "gather_tokens",
    "hamming_permutations",
    "jigsaw_tiles",
    "kmeans",
    "light_augment",
    "local_crop_size",
    "min_hamming_distance",
    "mlm_mask",
    "normalize",
    "num_visible",
    "random_block_mask",
    "random_patch_mask",
    "rotate_all",
    "rotate_random",
    "simclr_augment",
    "sinkhorn",
    "split_crops",
    "swav_multicrop",
]
