"""Functional colour, blur and solarize ops on batches of RGB image tensors (pure, vectorised, CPU or
CUDA), each with per-sample parameters: the building blocks of ``pretext.image_augment``.

Images are ``[B, 3, H, W]``, uint8 or float in ``[0, 1]``; the ops work on float RGB in ``[0, 1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur_kernel_size",
    "check_images",
    "gaussian_blur",
    "hsv_to_rgb",
    "normalize",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "solarize",
    "to_float",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# ITU-R 601-2 luma weights (as PIL's "L" mode and torchvision's rgb_to_grayscale).
_LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------- basic ops


def check_images(images: Tensor) -> None:
    """Raise unless ``images`` is a batch [B, 3, H, W]."""
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
