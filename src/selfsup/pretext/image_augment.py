"""Batched, per-sample random image augmentation (``ImageAugment``) for joint-embedding pretext tasks.

Images come in as a batch ``[B, 3, H, W]`` (uint8, or float in ``[0, 1]``) already on the
target device; every augmentation draws its random parameters independently for each
sample (unlike ``torchvision.transforms.v2`` applied to a batch, which shares one draw), is
vectorised over the batch, and returns normalised float32 ``[B, 3, S, S]`` on the input's
device. Random parameters are drawn on the generator's device (CPU when no generator is
given, from torch's global CPU generator) and then moved to the images' device, so that a
seeded ``torch.Generator`` gives the same views on CPU and GPU.

:class:`AugmentConfig` holds the settings, :class:`AugmentParams` one call's draws (crop boxes
sampled as torchvision's ``RandomResizedCrop``); the colour ops are in ``pretext.image_ops``,
the papers' recipes in ``pretext.image_recipes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor
from torchvision.ops import roi_align

from .image_ops import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    blur_kernel_size,
    check_images,
    gaussian_blur,
    normalize,
    rgb_to_grayscale,
    solarize,
    to_float,
)

__all__ = ["AugmentConfig", "AugmentParams", "ImageAugment"]

_CROP_ATTEMPTS = 10  # as torchvision's RandomResizedCrop.get_params


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
        check_images(images)
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
        check_images(images)
        params = self.sample_params(images.shape[0], generator, tuple(images.shape[-2:]))
        self.last_params = params
        return self.apply(images, params)
