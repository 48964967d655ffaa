"""Tests for selfsup.pretext: per-sample augmentations, MAE masking, RotNet rotations."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import RandomResizedCrop

from selfsup.pretext import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    ImageAugment,
    byol_augments,
    eval_transform,
    gather_tokens,
    light_augment,
    normalize,
    random_patch_mask,
    rotate_all,
    rotate_random,
    simclr_augment,
)
from selfsup.pretext.image_ops import adjust_hue, blur_kernel_size, gaussian_blur, hsv_to_rgb, rgb_to_hsv

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# A config with every step off: only the (full-image) crop and normalisation remain.
PLAIN = dict(crop_scale=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b: int = 4, size: int = 16, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, size, size), generator=_gen(seed), dtype=torch.uint8).to(device)


def _denorm(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(-1, 1, 1)
    return x * std + mean


# ----------------------------------------------------------------------------- views


@pytest.mark.parametrize("device", DEVICES)
def test_presets_shape_dtype_device(device: str) -> None:
    imgs = _images(3, 16, device=device)
    augs = [simclr_augment(16), *byol_augments(16), light_augment(16), simclr_augment(8), eval_transform(8)]
    for aug in augs:
        out = aug(imgs, generator=_gen(1))
        size = aug.size
        assert out.shape == (3, 3, size, size)
        assert out.dtype == torch.float32
        assert out.device.type == device
        assert torch.isfinite(out).all()


def test_preset_configs_follow_recipes() -> None:
    small, big = simclr_augment(32).config, simclr_augment(96).config
    assert small.blur_p == 0.0 and big.blur_p == 0.5
    assert (small.brightness, small.contrast, small.saturation, small.hue) == pytest.approx((0.4, 0.4, 0.4, 0.1))
    assert small.crop_scale == (0.08, 1.0) and small.jitter_p == 0.8 and small.grayscale_p == 0.2
    v1, v2 = (a.config for a in byol_augments(96))
    assert (v1.blur_p, v1.solarize_p, v2.blur_p, v2.solarize_p) == (1.0, 0.0, 0.1, 0.2)
    assert (v1.brightness, v1.contrast, v1.saturation, v1.hue) == (0.4, 0.4, 0.2, 0.1)
    assert all(a.config.blur_p == 0.0 for a in byol_augments(32))
    light = light_augment(32).config
    assert light.crop_scale == (0.2, 1.0) and light.jitter_p == 0.0 and light.grayscale_p == 0.0


def test_same_seed_same_output_different_seed_differs() -> None:
    imgs = _images(4, 16)
    aug = byol_augments(16)[1]
    a = aug(imgs, generator=_gen(7))
    b = aug(imgs, generator=_gen(7))
    c = aug(imgs, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_flip_rate_and_flip_application() -> None:
    aug = ImageAugment(AugmentConfig(size=8, **{**PLAIN, "flip_p": 0.5}))
    params = aug.sample_params(4000, _gen(0))
    rate = params.flip.float().mean().item()
    assert abs(rate - 0.5) < 0.04  # std of the estimate is ~0.008

    imgs = _images(16, 8)
    out = aug(imgs, generator=_gen(3))
    flip = aug.last_params.flip
    assert 0 < int(flip.sum()) < 16
    want = torch.where(flip.view(-1, 1, 1, 1), normalize(imgs.flip(-1)), normalize(imgs))
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_full_crop_without_other_steps_is_normalize() -> None:
    imgs = _images(5, 16)
    aug = ImageAugment(AugmentConfig(size=16, **PLAIN))
    out = aug(imgs, generator=_gen(0))
    torch.testing.assert_close(out, normalize(imgs), atol=1e-5, rtol=0)
    assert torch.allclose(aug.last_params.area_frac, torch.ones(5))


def test_crop_area_fraction_range_and_mean() -> None:
    n, size = 4000, 224
    # Default scheme: compare with torchvision's own RandomResizedCrop sampling.
    cfg = AugmentConfig(size=size)
    params = ImageAugment(cfg).sample_params(n, _gen(0))
    area = params.area_frac
    assert area.min() >= cfg.crop_scale[0] - 0.005 and area.max() <= 1.0 + 1e-6
    torch.manual_seed(0)
    img = torch.zeros(3, size, size)
    ref = []
    for _ in range(n):
        _, _, h, w = RandomResizedCrop.get_params(img, list(cfg.crop_scale), list(cfg.crop_ratio))
        ref.append(h * w / size**2)
    assert abs(area.mean().item() - sum(ref) / n) < 0.025
    # Boxes lie inside the image and match the reported area.
    x1, y1, x2, y2 = params.boxes.unbind(1)
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= size).all() and (y2 <= size).all()
    torch.testing.assert_close((x2 - x1) * (y2 - y1) / size**2, area)
    # Square crops never fall back, so the area is uniform in the scale range: mean = midpoint.
    cfg = AugmentConfig(size=size, crop_scale=(0.2, 0.6), crop_ratio=(1.0, 1.0))
    area = ImageAugment(cfg).sample_params(n, _gen(1)).area_frac
    assert area.min() >= 0.2 - 0.005 and area.max() <= 0.6 + 0.005
    assert abs(area.mean().item() - 0.4) < 0.01
    assert area.std().item() == pytest.approx(0.4 / math.sqrt(12), rel=0.1)


def test_crop_samples_the_box_bilinearly() -> None:
    # On a linear ramp bilinear resampling is exact, so each output pixel must equal the ramp
    # at the box's pixel-centre positions x1 - 0.5 + (i + 0.5) * w / S (pixel k centred at k).
    size, s = 32, 24
    ramp = torch.arange(size, dtype=torch.float32) / 64.0
    img = torch.stack([ramp.view(1, -1).expand(size, size), ramp.view(-1, 1).expand(size, size), torch.full((size, size), 0.5)])
    aug = ImageAugment(AugmentConfig(size=s, **PLAIN))
    params = aug.sample_params(1, _gen(0), image_size=size)
    params.boxes = torch.tensor([[4.0, 6.0, 20.0, 26.0]])  # x1, y1, x2, y2: upsampling inside
    out = _denorm(aug.apply(img.unsqueeze(0), params))[0]
    i = torch.arange(s, dtype=torch.float32)
    xs = 4.0 - 0.5 + (i + 0.5) * 16.0 / s
    ys = 6.0 - 0.5 + (i + 0.5) * 20.0 / s
    torch.testing.assert_close(out[0], (xs / 64.0).view(1, -1).expand(s, s), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], (ys / 64.0).view(-1, 1).expand(s, s), atol=1e-5, rtol=0)


def test_grayscale_output_has_equal_channels() -> None:
    aug = ImageAugment(AugmentConfig(size=16, **{**PLAIN, "grayscale_p": 1.0}))
    x = _denorm(aug(_images(4, 16), generator=_gen(0)))
    torch.testing.assert_close(x[:, 0], x[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(x[:, 0], x[:, 2], atol=1e-5, rtol=0)
    assert x[:, 0].std() > 0.05  # not a constant image


def test_brightness_on_constant_image() -> None:
    cfg = AugmentConfig(size=8, **{**PLAIN, "jitter_p": 1.0}, brightness=0.5, contrast=0.0, saturation=0.0, hue=0.0)
    aug = ImageAugment(cfg)
    imgs = torch.full((64, 3, 8, 8), 100, dtype=torch.uint8)
    out = _denorm(aug(imgs, generator=_gen(0)))
    f = aug.last_params.brightness
    assert f.min() >= 0.5 and f.max() <= 1.5 and f.std() > 0.1
    want = (100 / 255 * f).clamp(0, 1).view(-1, 1, 1, 1).expand_as(out)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_jitter_probability_is_per_sample() -> None:
    cfg = AugmentConfig(size=8, **{**PLAIN, "jitter_p": 0.5}, brightness=0.9, contrast=0.0, saturation=0.0, hue=0.0)
    aug = ImageAugment(cfg)
    imgs = torch.full((32, 3, 8, 8), 100, dtype=torch.uint8)
    out = aug(imgs, generator=_gen(2))
    jit = aug.last_params.jitter
    assert 0 < int(jit.sum()) < 32
    untouched = (out - normalize(imgs)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert torch.equal(untouched[~jit], torch.ones(int((~jit).sum()), dtype=torch.bool))


def test_hsv_round_trip_and_hue_shift() -> None:
    x = torch.rand(4, 3, 16, 16, generator=_gen(0))
    x[0, :, 0, 0] = 0.3  # grey pixel (saturation 0)
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hue(x, torch.zeros(4)), x, atol=1e-5, rtol=0)
    # Direction / size of the shift: red + 1/3 turn is green; agrees with torchvision.
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(adjust_hue(red, torch.tensor([1 / 3])), torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1), atol=1e-5, rtol=0)
    shifts = torch.tensor([0.1, -0.25, 0.4, -0.05])
    got = adjust_hue(x, shifts)
    for k in range(4):
        torch.testing.assert_close(got[k], TF.adjust_hue(x[k], shifts[k].item()), atol=1e-5, rtol=0)


def test_blur_constant_is_constant_and_matches_torchvision() -> None:
    k = blur_kernel_size(32)
    assert k % 2 == 1 and k >= 3 and blur_kernel_size(224) == 23
    const = torch.full((3, 3, 32, 32), 0.37)
    torch.testing.assert_close(gaussian_blur(const, torch.tensor([0.5, 1.0, 2.0]), k), const, atol=1e-6, rtol=0)
    x = torch.rand(2, 3, 16, 16, generator=_gen(0))
    sig = torch.tensor([0.7, 1.9])
    got = gaussian_blur(x, sig, 5)
    for i in range(2):
        want = TF.gaussian_blur(x[i], kernel_size=[5, 5], sigma=[sig[i].item()] * 2)
        torch.testing.assert_close(got[i], want, atol=1e-5, rtol=0)
    # Through ImageAugment: a constant image stays constant whatever sigma each sample draws.
    aug = ImageAugment(AugmentConfig(size=32, **{**PLAIN, "blur_p": 1.0}))
    imgs = torch.full((4, 3, 32, 32), 90, dtype=torch.uint8)
    torch.testing.assert_close(aug(imgs, generator=_gen(0)), normalize(imgs), atol=1e-5, rtol=0)
    assert aug.last_params.sigma.std() > 0


def test_solarize_inverts_bright_pixels() -> None:
    aug = ImageAugment(AugmentConfig(size=4, **{**PLAIN, "solarize_p": 1.0}))
    imgs = torch.tensor([200, 50], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 4, 4).contiguous()
    out = _denorm(aug(imgs, generator=_gen(0)))
    torch.testing.assert_close(out[0], torch.full((3, 4, 4), 1 - 200 / 255), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], torch.full((3, 4, 4), 50 / 255), atol=1e-5, rtol=0)


def test_eval_transform_is_deterministic() -> None:
    imgs = _images(2, 16)
    torch.testing.assert_close(eval_transform(16)(imgs), normalize(imgs))
    a, b = eval_transform(8)(imgs), eval_transform(8)(imgs)
    assert a.shape == (2, 3, 8, 8) and torch.equal(a, b)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        AugmentConfig(size=8, flip_p=1.5)
    with pytest.raises(ValueError):
        AugmentConfig(size=8, crop_scale=(0.5, 0.2))


# ----------------------------------------------------------------------------- masking


@pytest.mark.parametrize("device", DEVICES)
def test_random_patch_mask(device: str) -> None:
    b, n, ratio = 8, 16, 0.75
    k = round(n * (1 - ratio))
    pm = random_patch_mask(b, n, ratio, device=device, generator=_gen(0))
    assert pm.keep_idx.shape == (b, k) and pm.mask.shape == (b, n) and pm.restore_idx.shape == (b, n)
    assert pm.mask.dtype == torch.bool and pm.mask.device.type == device
    assert (pm.mask.sum(1) == n - k).all()
    # Kept indices are distinct and exactly the unmasked positions.
    for row in range(b):
        kept = pm.keep_idx[row].sort().values
        assert torch.equal(kept, (~pm.mask[row]).nonzero().squeeze(1))
    # restore_idx un-shuffles [visible, masked] back to the original order.
    tokens = torch.randn(b, n, 5, device=device)
    masked_idx = pm.masked_idx
    assert torch.equal(masked_idx.sort(1).values, torch.stack([pm.mask[r].nonzero().squeeze(1) for r in range(b)]))
    assert torch.equal(pm.shuffle_idx[:, :k], pm.keep_idx)
    shuffled = torch.cat([gather_tokens(tokens, pm.keep_idx), gather_tokens(tokens, masked_idx)], dim=1)
    assert torch.equal(gather_tokens(shuffled, pm.restore_idx), tokens)
    # MAE decoder usage: visible tokens + mask tokens, un-shuffled, are masked exactly where mask is.
    filled = torch.cat([gather_tokens(tokens, pm.keep_idx), torch.zeros(b, n - k, 5, device=device)], dim=1)
    restored = gather_tokens(filled, pm.restore_idx)
    assert torch.equal(restored[~pm.mask], tokens[~pm.mask])
    assert (restored[pm.mask] == 0).all()
    # Rows differ; seeds reproduce.
    assert len({tuple(r.tolist()) for r in pm.mask.cpu()}) > 1
    again = random_patch_mask(b, n, ratio, device=device, generator=_gen(0))
    assert torch.equal(again.keep_idx, pm.keep_idx)
    other = random_patch_mask(b, n, ratio, device=device, generator=_gen(1))
    assert not torch.equal(other.mask, pm.mask)


def test_mask_keeps_at_least_one() -> None:
    pm = random_patch_mask(3, 4, 0.99, generator=_gen(0))
    assert pm.keep_idx.shape == (3, 1) and (pm.mask.sum(1) == 3).all()
    with pytest.raises(ValueError):
        random_patch_mask(3, 4, 1.0)


# ----------------------------------------------------------------------------- rotations


def test_rotate_all() -> None:
    imgs = _images(3, 8)
    out, labels = rotate_all(imgs)
    assert out.shape == (12, 3, 8, 8) and labels.shape == (12,) and out.dtype == imgs.dtype
    for j in range(12):
        k = int(labels[j])
        assert torch.equal(out[j], torch.rot90(imgs[j % 3], k, dims=(-2, -1)))
        assert torch.equal(torch.rot90(out[j], -k, dims=(-2, -1)), imgs[j % 3])
    assert torch.equal(labels.bincount(), torch.tensor([3, 3, 3, 3]))
    # 90 degrees counter-clockwise: the top-right corner moves to the top-left.
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, -1] = 1.0
    rot, lab = rotate_all(x)
    assert rot[int((lab == 1).nonzero()[0])][0, 0, 0] == 1.0


def test_rotate_random() -> None:
    imgs = _images(64, 8)
    out, labels = rotate_random(imgs, generator=_gen(0))
    assert out.shape == imgs.shape and labels.shape == (64,)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    for j in range(64):
        assert torch.equal(out[j], torch.rot90(imgs[j], int(labels[j]), dims=(-2, -1)))
    out2, labels2 = rotate_random(imgs, generator=_gen(0))
    assert torch.equal(labels, labels2) and torch.equal(out, out2)
    assert not torch.equal(rotate_random(imgs, generator=_gen(1))[1], labels)
