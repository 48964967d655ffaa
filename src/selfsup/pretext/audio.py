"""Batched waveform pretext ops (pure, vectorised tensor ops; CPU or CUDA).

A batch of clips is ``waves`` [B, L] float32 (mono, right zero-padded) with per-clip ``lengths``
[B] int64 or an ``attention_mask`` [B, L] (1 = real sample). Random ops take an optional
``generator`` (None = torch's global RNG); random numbers are drawn on the generator's device (the
waves' device without one) and moved to the waves' device.

- :func:`random_crops`: random segments of each clip, the views of COLA (Saeed, Grangier &
  Zeghidour 2021, "Contrastive Learning of General-Purpose Audio Representations", ICASSP).
- :func:`random_gain`, :func:`add_noise`: level and white-noise augmentations (as in COLA / BYOL-A
  style audio view pipelines).
- :func:`change_speed`: speed perturbation (Ko, Peddinti, Povey & Khudanpur 2015, "Audio
  Augmentation for Speech Recognition", Interspeech; Kaldi/sox ``speed``), also the transformation
  of the speed-recognition pretext (:data:`SPEED_FACTORS`).

Classical features (log-mel, MFCC, deltas) are in :mod:`selfsup.features.audio`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..features.audio import check_waves

__all__ = [
    "audio_views",
    "SPEED_FACTORS",
    "add_noise",
    "change_speed",
    "random_crops",
    "random_gain",
]

SPEED_FACTORS: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2)
"""Default classes of the speed-recognition pretext (playback-rate factors)."""


# --------------------------------------------------------------------------- helpers


def _check_lengths(waves: Tensor, lengths: Tensor) -> Tensor:
    if lengths.shape != (waves.shape[0],):
        raise ValueError(f"expected lengths [B] for waves {tuple(waves.shape)}, got {tuple(lengths.shape)}")
    return lengths.to(device=waves.device, dtype=torch.int64)


def _rand(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None, normal: bool = False) -> Tensor:
    """Uniform [0, 1) (or standard normal) float32 draws on the generator's device, moved to ``like``'s."""
    device = generator.device if generator is not None else like.device
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator, device=device, dtype=torch.float32).to(like.device)


def _uniform(low: float, high: float, batch: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    if not low <= high:
        raise ValueError(f"need a range with low <= high, got [{low}, {high}]")
    return low + (high - low) * _rand((batch,), like, generator)


def _position_dtype(device: torch.device) -> torch.dtype:
    """float64 for sample positions (exact up to hours of audio); MPS has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


# --------------------------------------------------------------------------- augmentations


def random_crops(
    waves: Tensor, lengths: Tensor, crop_samples: int | Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """One random segment per clip (COLA: segments of one clip are positives).

    Clip ``i`` is cut to ``min(crop_samples, lengths[i])`` samples (``crop_samples`` an int, or one per clip
    [B]) starting at a uniformly random
    offset in ``[0, lengths[i] - crop_len_i]``. Returns ``(crops [B, C], crop lengths [B] int64)``
    with ``C`` the longest crop of the batch, zero padded on the right. One gather, no loop.
    """
    waves = check_waves(waves)
    lengths = _check_lengths(waves, lengths)
    crop = torch.as_tensor(crop_samples, device=waves.device).long()
    if bool((crop < 1).any()):
        raise ValueError(f"crop_samples must be >= 1, got {crop_samples}")
    batch, total = waves.shape
    crop_len = torch.minimum(lengths, crop)
    longest, top, bottom = (torch.stack([crop_len.max(), lengths.max(), lengths.min()]).tolist()
                            if batch else (0, 0, 0))
    if bottom < 0 or top > total:
        raise ValueError(f"lengths must lie in [0, {total}] (the waves' length), got [{bottom}, {top}]")
    slack = (lengths - crop_len).to(torch.float32)  # number of valid starts minus one
    start = (_rand((batch,), waves, generator) * (slack + 1)).floor().long()
    start = torch.minimum(start, lengths - crop_len)
    offsets = torch.arange(longest, device=waves.device)
    index = (start[:, None] + offsets).clamp(max=max(total - 1, 0))
    valid = offsets < crop_len[:, None]
    crops = waves.gather(1, index) * valid
    return crops, crop_len


def random_gain(
    waves: Tensor, min_db: float = -6.0, max_db: float = 6.0, generator: torch.Generator | None = None
) -> Tensor:
    """Scale each clip by a gain drawn uniformly in ``[min_db, max_db]`` decibels (amplitude ``10**(g/20)``)."""
    waves = check_waves(waves)
    gain_db = _uniform(min_db, max_db, waves.shape[0], waves, generator)
    return waves * torch.pow(10.0, gain_db / 20.0)[:, None]


def add_noise(
    waves: Tensor,
    mask: Tensor,
    min_snr_db: float = 5.0,
    max_snr_db: float = 40.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Add white Gaussian noise at a per-clip signal-to-noise ratio drawn uniformly in decibels.

    The noise's standard deviation is ``rms_i / 10**(snr_i / 20)``, with ``rms_i`` the clip's RMS over
    its real samples (``mask`` 1), so ``10 log10(P_signal / P_noise) = snr_i`` in expectation.
    Padding (``mask`` 0) receives no noise; a silent clip receives none either (and no NaN).
    """
    waves = check_waves(waves)
    if mask.shape != waves.shape:
        raise ValueError(f"expected mask {tuple(waves.shape)} like the waves, got {tuple(mask.shape)}")
    real = mask.to(device=waves.device, dtype=torch.float32)
    count = real.sum(1).clamp(min=1.0)
    rms = ((waves.square() * real).sum(1) / count).sqrt()
    snr_db = _uniform(min_snr_db, max_snr_db, waves.shape[0], waves, generator)
    scale = rms / torch.pow(10.0, snr_db / 20.0)
    noise = _rand(tuple(waves.shape), waves, generator, normal=True)
    return waves + noise * scale[:, None] * real


def change_speed(
    waves: Tensor, lengths: Tensor, factors: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Speed perturbation (Ko et al. 2015; Kaldi/sox ``speed``): clip ``i`` plays ``factors[i]`` times faster.

    Its new length is ``round(lengths[i] / factors[i])`` and output sample ``j`` is the input
    linearly interpolated at position ``j * factors[i]`` (pitch and tempo change together). Returns
    ``(waves [B, L'], new lengths [B] int64)``, zero padded to the longest output. ``generator`` is
    accepted for a uniform signature and unused (the factors are given). No anti-aliasing filter:
    fine for the small factors of :data:`SPEED_FACTORS`.
    """
    del generator
    waves = check_waves(waves)
    lengths = _check_lengths(waves, lengths)
    batch, total = waves.shape
    pos_dtype = _position_dtype(waves.device)
    factors = torch.as_tensor(factors).to(device=waves.device, dtype=pos_dtype)
    if factors.shape != (batch,):
        raise ValueError(f"expected factors [B] for waves {tuple(waves.shape)}, got {tuple(factors.shape)}")
    if batch and not bool((factors > 0).all()):
        raise ValueError(f"speed factors must be > 0, got {factors.tolist()}")
    new_len = torch.floor(lengths.to(pos_dtype) / factors + 0.5).long()  # round half up
    longest, top, bottom = (torch.stack([new_len.max(), lengths.max(), lengths.min()]).tolist()
                            if batch else (0, 0, 0))
    if bottom < 0 or top > total:
        raise ValueError(f"lengths must lie in [0, {total}] (the waves' length), got [{bottom}, {top}]")
    out_pos = torch.arange(longest, device=waves.device, dtype=pos_dtype)[None, :] * factors[:, None]
    last = (lengths - 1).clamp(min=0)[:, None]
    low = out_pos.floor()
    weight = (out_pos - low).to(torch.float32)
    low = low.long()
    left = waves.gather(1, torch.minimum(low, last).clamp(max=max(total - 1, 0)))
    right = waves.gather(1, torch.minimum(low + 1, last).clamp(max=max(total - 1, 0)))
    valid = torch.arange(longest, device=waves.device)[None, :] < new_len[:, None]
    return (left + weight * (right - left)) * valid, new_len


def audio_views(crop_samples: int, min_fraction: float = 0.5, max_gain_db: float = 6.0,
                min_snr_db: float = 5.0, max_snr_db: float = 40.0) -> Callable[..., dict[str, dict[str, Tensor]]]:
    """Two views of each clip for contrastive learning (COLA, Saeed et al. 2021; BYOL-A, Niizumi et al. 2021):
    each view a random segment of a random ``min_fraction``..1 share of the clip (at most ``crop_samples``),
    with a random gain and white noise at a random SNR. ``{"view1": batch, "view2": batch}``."""

    def view(waves: Tensor, lengths: Tensor, generator: torch.Generator | None) -> dict[str, Tensor]:
        share = min_fraction + (1.0 - min_fraction) * _rand((waves.shape[0],), waves, generator)
        crops, crop_lengths = random_crops(waves, lengths, (lengths * share).ceil().long().clamp(1, crop_samples),
                                           generator=generator)
        mask = (torch.arange(crops.shape[1], device=crops.device)[None] < crop_lengths[:, None]).long()
        crops = random_gain(crops, -max_gain_db, max_gain_db, generator=generator)
        return {"input_values": add_noise(crops, mask, min_snr_db, max_snr_db, generator=generator),
                "attention_mask": mask}

    def views(batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, dict[str, Tensor]]:
        waves, lengths = batch["input_values"], batch["attention_mask"].sum(1)
        return {"view1": view(waves, lengths, generator), "view2": view(waves, lengths, generator)}

    return views
