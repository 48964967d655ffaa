"""Batched, per-sample random image augmentations for joint-embedding pretext tasks.

Images come in as a batch ``[B, 3, H, W]`` (uint8, or float in ``[0, 1]``) already on the
target device; every augmentation draws its random parameters independently for each
sample (unlike ``torchvision.transforms.v2`` applied to a batch, which shares one draw), is
vectorised over the batch, and returns normalised float32 ``[B, 3, S, S]`` on the input's
device. Random parameters are drawn on the generator's device (CPU when no generator is
given, from torch's global CPU generator) and then moved to the images' device, so that a
seeded ``torch.Generator`` gives the same views on CPU and GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AugmentConfig",
    "AugmentParams",
    "EvalTransform",
    "ImageAugment",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur_kernel_size",
    "byol_augments",
    "eval_transform",
    "gaussian_blur",
    "hsv_to_rgb",
    "light_augment",
    "normalize",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "simclr_augment",
    "solarize",
    "to_float",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# ITU-R 601-2 luma weights (as PIL's "L" mode and torchvision's rgb_to_grayscale).
_LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)

_CROP_ATTEMPTS = 10  # as torchvision's RandomResizedCrop.get_params


# --------------------------------------------------------------------------- basic ops


def _check_images(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")


def to_float(images: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; floating input is cast to float32 as is."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if not images.is_floating_point():
        raise TypeError(f"expected uint8 or floating images, got {images.dtype}")
    return images.to(torch.float32)


def normalize(images: Tensor) -> Tensor:
    """Normalise with the ImageNet mean/std: uint8 or float in [0, 1] -> float32 ``[B, 3, H, W]``."""
    x = to_float(images)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


def rgb_to_grayscale(images: Tensor) -> Tensor:
    """ITU-R 601-2 luma of float RGB ``[..., 3, H, W]`` -> ``[..., 1, H, W]``."""
    r, g, b = images.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def rgb_to_hsv(images: Tensor) -> Tensor:
    """Float RGB in [0, 1] ``[..., 3, H, W]`` -> HSV with every channel in [0, 1] (hue in turns)."""
    r, g, b = images.unbind(-3)
    maxc = images.amax(dim=-3)
    minc = images.amin(dim=-3)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_div = torch.where(eqc, ones, cr)
    rc = (maxc - r) / cr_div
    gc = (maxc - g) / cr_div
    bc = (maxc - b) / cr_div
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~is_r & ~is_g
    h = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc)
    h = torch.fmod(h / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def hsv_to_rgb(images: Tensor) -> Tensor:
    """HSV ``[..., 3, H, W]`` (hue in turns, [0, 1)) -> float RGB in [0, 1].

    Uses the closed form ``c_n = v - v*s*clamp(min(k, 4-k), 0, 1)`` with
    ``k = (n + 6h) mod 6`` and ``n = 5, 3, 1`` for R, G, B.
    """
    h, s, v = images.unbind(-3)
    n = torch.tensor((5.0, 3.0, 1.0), dtype=images.dtype, device=images.device)
    n = n.view(*([1] * (images.ndim - 3)), 3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(-3), 6.0)
    a = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return v.unsqueeze(-3) * (1.0 - s.unsqueeze(-3) * a)


def _per_sample(values: Tensor, x: Tensor) -> Tensor:
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """Scale float RGB ``[B, 3, H, W]`` by per-sample ``factor`` [B], clamped to [0, 1]."""
    return (images * _per_sample(factor, images)).clamp_(0.0, 1.0)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with the mean of its grayscale version by per-sample ``factor`` [B]."""
    mean = rgb_to_grayscale(images).mean(dim=(-3, -2, -1), keepdim=True)
    f = _per_sample(factor, images)
    return (f * images + (1.0 - f) * mean).clamp_(0.0, 1.0)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with its grayscale version by per-sample ``factor`` [B]."""
    f = _per_sample(factor, images)
    return (f * images + (1.0 - f) * rgb_to_grayscale(images)).clamp_(0.0, 1.0)


def adjust_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of float RGB ``[B, 3, H, W]`` by per-sample ``shift`` [B] (in turns)."""
    hsv = rgb_to_hsv(images)
    h = torch.remainder(hsv[:, 0:1] + _per_sample(shift, images), 1.0)
    return hsv_to_rgb(torch.cat((h, hsv[:, 1:]), dim=1))


def blur_kernel_size(size: int) -> int:
    """Gaussian-blur kernel size used for ``size``-pixel views: ~10% of it, odd, at least 3."""
    return max(3, int(round(0.1 * size)) // 2 * 2 + 1)


def gaussian_blur(images: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with per-sample ``sigma`` [B] and reflect padding.

    All samples are blurred in one grouped convolution (one group per sample and channel).
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    b, c, h, w = images.shape
    half = kernel_size // 2
    offsets = torch.arange(kernel_size, device=images.device, dtype=images.dtype) - half
    sig = sigma.to(device=images.device, dtype=images.dtype).view(-1, 1)
    kernel = torch.exp(-0.5 * (offsets.view(1, -1) / sig) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, k]
    kernel = kernel.repeat_interleave(c, dim=0)  # [B*C, k]
    x = images.reshape(1, b * c, h, w)
    pad_mode = "reflect" if half < min(h, w) else "replicate"
    x = F.pad(x, (half, half, half, half), mode=pad_mode)
    x = F.conv2d(x, kernel.view(b * c, 1, 1, kernel_size), groups=b * c)
    x = F.conv2d(x, kernel.view(b * c, 1, kernel_size, 1), groups=b * c)
    return x.view(b, c, h, w)


def solarize(images: Tensor, threshold: float = 0.5) -> Tensor:
    """Invert pixels ``>= threshold`` of float images in [0, 1]."""
    return torch.where(images >= threshold, 1.0 - images, images)


def _mask(flags: Tensor, x: Tensor) -> Tensor:
    return flags.to(x.device).view(-1, 1, 1, 1)


# --------------------------------------------------------------------------- config / params


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of :class:`ImageAugment`; probabilities are per sample."""

    size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi, got {self.crop_scale}")
        lo, hi = self.crop_ratio
        if not 0.0 < lo <= hi:
            raise ValueError(f"crop_ratio must satisfy 0 < lo <= hi, got {self.crop_ratio}")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        lo, hi = self.blur_sigma
        if not 0.0 < lo <= hi:
            raise ValueError(f"blur_sigma must satisfy 0 < lo <= hi, got {self.blur_sigma}")


@dataclass
class AugmentParams:
    """Per-sample random draws of one :class:`ImageAugment` call (all tensors have length B).

    ``boxes`` are crop boxes ``(x1, y1, x2, y2)`` in input pixel units (pixel ``k`` spans
    ``[k, k+1]``); ``area_frac`` is the crop's fraction of the input area. Boolean tensors say
    whether a step is applied to a sample; ``brightness``/``contrast``/``saturation`` are
    multiplicative factors, ``hue`` a shift in turns, ``sigma`` the blur std in pixels, and
    ``jitter_order`` a permutation of (0=brightness, 1=contrast, 2=saturation, 3=hue) shared by
    the batch.
    """

    boxes: Tensor
    area_frac: Tensor
    flip: Tensor
    jitter: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor
    jitter_order: Tensor
    grayscale: Tensor
    blur: Tensor
    sigma: Tensor
    solarize: Tensor

    def to(self, device: torch.device | str) -> AugmentParams:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def batch_size(self) -> int:
        return int(self.flip.shape[0])


def _uniform(shape: tuple[int, ...], lo: float, hi: float, generator, device) -> Tensor:
    return torch.empty(shape, device=device).uniform_(lo, hi, generator=generator)


def _sample_crop_boxes(
    batch_size: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Vectorised ``RandomResizedCrop.get_params``: returns boxes [B, 4] and area fractions [B].

    Per sample, up to 10 attempts draw an area fraction uniform in ``scale`` and a log-uniform
    aspect ratio in ``ratio``; the first attempt that fits is used, otherwise a centre crop with
    the aspect ratio clamped to ``ratio`` (the whole image when its ratio is within range).
    """
    area = float(height * width)
    shape = (batch_size, _CROP_ATTEMPTS)
    target = area * _uniform(shape, scale[0], scale[1], generator, device)
    log_r = _uniform(shape, math.log(ratio[0]), math.log(ratio[1]), generator, device)
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting attempt (or 0)
    found = valid.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)

    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))

    u = torch.rand((batch_size, 2), generator=generator, device=device)
    top = torch.minimum(torch.floor(u[:, 0] * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u[:, 1] * (width - w + 1)), width - w)
    top = torch.where(found, top, torch.floor((height - h) / 2))
    left = torch.where(found, left, torch.floor((width - w) / 2))
    boxes = torch.stack((left, top, left + w, top + h), dim=1)
    return boxes, (w * h) / area


# --------------------------------------------------------------------------- augmentation


class ImageAugment:
    """Per-sample random augmentation of a uint8 image batch -> normalised float32 views.

    Steps, in order (each drawn independently per sample): random resized crop to
    ``size x size`` (torchvision ``RandomResizedCrop`` sampling; all crops resampled in one
    ``roi_align`` call, bilinear with ``aligned=True`` and adaptive sub-sampling, which
    averages several bilinear samples per output pixel when shrinking), horizontal flip,
    colour jitter (brightness, contrast, saturation factors uniform in ``[max(0, 1-x), 1+x]``,
    hue shift uniform in ``[-hue, hue]``; the four are applied in a random order drawn once per
    batch call, as torchvision's ``ColorJitter`` does per call), grayscale (ITU-R 601-2 luma),
    Gaussian blur (sigma uniform in ``blur_sigma``, kernel :func:`blur_kernel_size`), solarize
    (threshold 0.5), then ImageNet normalisation.

    Use ``sample_params`` + ``apply`` to inspect or control the draws; ``__call__`` does both
    and keeps the draws in ``last_params``.
    """

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config
        self.last_params: AugmentParams | None = None

    @property
    def size(self) -> int:
        return self.config.size

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def sample_params(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        image_size: tuple[int, int] | int | None = None,
    ) -> AugmentParams:
        """Draw the random parameters for ``batch_size`` images of ``image_size`` (default: ``size``).

        Draws happen on the generator's device (CPU without a generator) in a fixed sequence,
        whatever the probabilities, so a seed determines every parameter.
        """
        cfg = self.config
        if image_size is None:
            height = width = cfg.size
        elif isinstance(image_size, int):
            height = width = image_size
        else:
            height, width = image_size
        device = generator.device if generator is not None else torch.device("cpu")
        b = batch_size

        boxes, area_frac = _sample_crop_boxes(
            b, height, width, cfg.crop_scale, cfg.crop_ratio, generator, device
        )
        flip = torch.rand(b, generator=generator, device=device) < cfg.flip_p
        jitter = torch.rand(b, generator=generator, device=device) < cfg.jitter_p
        brightness = _uniform((b,), max(0.0, 1 - cfg.brightness), 1 + cfg.brightness, generator, device)
        contrast = _uniform((b,), max(0.0, 1 - cfg.contrast), 1 + cfg.contrast, generator, device)
        saturation = _uniform((b,), max(0.0, 1 - cfg.saturation), 1 + cfg.saturation, generator, device)
        hue = _uniform((b,), -cfg.hue, cfg.hue, generator, device)
        jitter_order = torch.randperm(4, generator=generator, device=device)
        grayscale = torch.rand(b, generator=generator, device=device) < cfg.grayscale_p
        blur = torch.rand(b, generator=generator, device=device) < cfg.blur_p
        sigma = _uniform((b,), cfg.blur_sigma[0], cfg.blur_sigma[1], generator, device)
        solar = torch.rand(b, generator=generator, device=device) < cfg.solarize_p
        return AugmentParams(
            boxes=boxes,
            area_frac=area_frac,
            flip=flip,
            jitter=jitter,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            hue=hue,
            jitter_order=jitter_order,
            grayscale=grayscale,
            blur=blur,
            sigma=sigma,
            solarize=solar,
        )

    def apply(self, images: Tensor, params: AugmentParams) -> Tensor:
        """Apply the draws in ``params`` to ``images`` [B, 3, H, W] -> float32 [B, 3, size, size].

        A step is skipped outright when no sample of the batch draws it.
        """
        _check_images(images)
        b = images.shape[0]
        if params.batch_size != b:
            raise ValueError(f"params are for {params.batch_size} images, got {b}")
        size = self.config.size
        x = to_float(images)
        dev = x.device

        # Random resized crop: one roi_align call over all per-sample boxes.
        idx = torch.arange(b, device=dev, dtype=x.dtype).unsqueeze(1)
        rois = torch.cat((idx, params.boxes.to(device=dev, dtype=x.dtype)), dim=1)
        x = roi_align(x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)

        if bool(params.flip.any()):
            x = torch.where(_mask(params.flip, x), x.flip(-1), x)

        if bool(params.jitter.any()):
            jittered = x
            for op in params.jitter_order.tolist():
                if op == 0:
                    jittered = adjust_brightness(jittered, params.brightness)
                elif op == 1:
                    jittered = adjust_contrast(jittered, params.contrast)
                elif op == 2:
                    jittered = adjust_saturation(jittered, params.saturation)
                elif bool((params.hue != 0).any()):
                    jittered = adjust_hue(jittered, params.hue)
            x = torch.where(_mask(params.jitter, x), jittered, x)

        if bool(params.grayscale.any()):
            x = torch.where(_mask(params.grayscale, x), rgb_to_grayscale(x).expand_as(x), x)

        if bool(params.blur.any()):
            blurred = gaussian_blur(x, params.sigma, blur_kernel_size(size))
            x = torch.where(_mask(params.blur, x), blurred, x)

        if bool(params.solarize.any()):
            x = torch.where(_mask(params.solarize, x), solarize(x), x)

        return normalize(x)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment ``images`` [B, 3, H, W] with fresh per-sample draws (kept in ``last_params``)."""
        _check_images(images)
        params = self.sample_params(images.shape[0], generator, tuple(images.shape[-2:]))
        self.last_params = params
        return self.apply(images, params)


class EvalTransform:
    """Deterministic evaluation transform: bilinear (antialiased) resize to ``size`` if needed, normalise."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``images`` [B, 3, H, W] -> float32 [B, 3, size, size]; ``generator`` is ignored."""
        _check_images(images)
        x = to_float(images)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            ).clamp_(0.0, 1.0)
        return normalize(x)


# --------------------------------------------------------------------------- presets


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


def two_views(augment_1: Callable[..., Tensor], augment_2: Callable[..., Tensor]) -> Callable[..., dict[str, Tensor]]:
    """The two-view pretext of the siamese methods (SimCLR, MoCo, BYOL, SimSiam, Barlow Twins, VICReg):
    ``{"view1": augment_1(x), "view2": augment_2(x)}``, each view drawn independently per sample."""

    def pretext(images: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return {"view1": augment_1(images, generator=generator), "view2": augment_2(images, generator=generator)}

    return pretext


def dropout_views() -> Callable[..., dict[str, dict[str, Tensor]]]:
    """The text views of SimCSE (Gao, Yao, Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence
    Embeddings", §3): the same token batch twice; the encoder's dropout, drawn independently for every
    row, makes the two views differ."""

    def pretext(batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, dict[str, Tensor]]:
        return {"view1": batch, "view2": batch}

    return pretext


def concat_views(first: Tensor | dict[str, Tensor], second: Tensor | dict[str, Tensor]) -> Tensor | dict[str, Tensor]:
    """Two batches of views as one (rows of ``first`` first), so one encoder pass sees both: image tensors
    are concatenated; token and waveform batches (dicts of [B, T] tensors) key by key, the shorter right-padded
    with 0 (the attention mask is 0 there, so the encoder ignores the padding)."""
    if isinstance(first, Tensor):
        return torch.cat([first, second])
    length = max(max(v.shape[1] for v in first.values()), max(v.shape[1] for v in second.values()))
    return {key: torch.cat([torch.nn.functional.pad(first[key], (0, length - first[key].shape[1])),
                            torch.nn.functional.pad(second[key], (0, length - second[key].shape[1]))])
            for key in first}


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


def eval_transform(size: int) -> EvalTransform:
    """Deterministic resize + normalise used for evaluation / linear probing."""
    return EvalTransform(size)
