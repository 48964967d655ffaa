"""Pretext data operations (pure tensor ops): image views, patch masking, rotations, jigsaw puzzles,
multi-crop views, clustering pseudo-labels; token masking, deletion and next-token targets; waveform
crops, gain, noise, speed changes and frame-span masks (log-mel / MFCC features: ``selfsup.features``)."""

from selfsup.pretext.audio import (
    SPEED_FACTORS,
    add_noise,
    audio_views,
    change_speed,
    random_crops,
    random_gain,
)

from selfsup.pretext.clusters import assign, kmeans, sinkhorn
from selfsup.pretext.masking import (
    PatchMask,
    gather_tokens,
    num_visible,
    random_block_mask,
    random_patch_mask,
    span_mask,
)
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
from selfsup.pretext.image_augment import AugmentConfig, AugmentParams, ImageAugment
from selfsup.pretext.image_eval import EvalTransform, eval_transform
from selfsup.pretext.image_ops import IMAGENET_MEAN, IMAGENET_STD, normalize
from selfsup.pretext.image_recipes import byol_augments, light_augment, simclr_augment
from selfsup.pretext.views import concat_views, dropout_views, two_views

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUM_ROTATIONS",
    "SPEED_FACTORS",
    "add_noise",
    "assign",
    "audio_views",
    "byol_augments",
    "causal_lm_targets",
    "concat_views",
    "change_speed",
    "delete_tokens",
    "dino_multicrop",
    "dropout_views",
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
    "random_crops",
    "random_gain",
    "random_patch_mask",
    "rotate_all",
    "rotate_random",
    "simclr_augment",
    "sinkhorn",
    "span_mask",
    "split_crops",
    "swav_multicrop",
    "two_views",
    "AugmentConfig",
    "AugmentParams",
    "EvalTransform",
    "ImageAugment",
    "MultiCrop",
    "PatchMask",
]
