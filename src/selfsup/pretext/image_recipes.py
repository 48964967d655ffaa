"""The papers' image augmentation recipes, as configured :class:`ImageAugment` s: SimCLR's views,
BYOL's asymmetric pair, and MAE's crop + flip."""

from __future__ import annotations

from dataclasses import replace

from .image_augment import AugmentConfig, ImageAugment

__all__ = ["byol_augments", "light_augment", "simclr_augment"]


def simclr_augment(size: int, strength: float = 0.5, crop_scale: tuple[float, float] = (0.08, 1.0),
                   flip_p: float = 0.5) -> ImageAugment:
    """SimCLR views (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
    Representations", App. A): crop scale (0.08, 1), flip, colour jitter with p=0.8 and strength
    ``s`` (brightness/contrast/saturation 0.8s, hue 0.2s; s=0.5 as used for CIFAR gives
    0.4/0.4/0.4/0.1), grayscale p=0.2, Gaussian blur p=0.5 only for ``size >= 64``.
    ``crop_scale`` and ``flip_p`` can be narrowed for data where they destroy the content."""
    return ImageAugment(
        AugmentConfig(
            size=size,
            crop_scale=crop_scale,
            flip_p=flip_p,
            jitter_p=0.8,
            brightness=0.8 * strength,
            contrast=0.8 * strength,
            saturation=0.8 * strength,
            hue=0.2 * strength,
            grayscale_p=0.2,
            blur_p=0.5 if size >= 64 else 0.0,
        )
    )


def byol_augments(size: int, crop_scale: tuple[float, float] = (0.08, 1.0),
                  flip_p: float = 0.5) -> tuple[ImageAugment, ImageAugment]:
    """BYOL's asymmetric view pair (Grill et al. 2020, "Bootstrap Your Own Latent", Table 6):
    crop (0.08, 1), flip, jitter 0.4/0.4/0.2/0.1 with p=0.8, grayscale p=0.2; view 1 blur p=1.0,
    no solarize; view 2 blur p=0.1, solarize p=0.2. Blur is disabled when ``size < 64``
    (CIFAR-size images), as is usual."""
    use_blur = size >= 64
    base = AugmentConfig(
        size=size,
        crop_scale=crop_scale,
        flip_p=flip_p,
        jitter_p=0.8,
        brightness=0.4,
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        grayscale_p=0.2,
    )
    view1 = replace(base, blur_p=1.0 if use_blur else 0.0, solarize_p=0.0)
    view2 = replace(base, blur_p=0.1 if use_blur else 0.0, solarize_p=0.2)
    return ImageAugment(view1), ImageAugment(view2)


def light_augment(size: int, scale: tuple[float, float] = (0.2, 1.0)) -> ImageAugment:
    """Crop + flip only, as MAE pre-training uses (He et al. 2022, "Masked Autoencoders Are
    Scalable Vision Learners": RandomResizedCrop scale (0.2, 1) and horizontal flip)."""
    return ImageAugment(
        AugmentConfig(
            size=size,
            crop_scale=scale,
            flip_p=0.5,
            jitter_p=0.0,
            grayscale_p=0.0,
            blur_p=0.0,
            solarize_p=0.0,
        )
    )
