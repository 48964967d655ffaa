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
- :func:`log_mel`, :func:`mfcc`, :func:`delta`: log mel filterbank energies and MFCCs with
  deltas, HuBERT's first-iteration k-means targets (Hsu et al. 2021, "HuBERT: Self-Supervised
  Speech Representation Learning by Masked Prediction of Hidden Units", §IV-B: 39-d MFCC).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "audio_views",
    "SPEED_FACTORS",
    "add_noise",
    "change_speed",
    "delta",
    "log_mel",
    "mel_filters",
    "mfcc",
    "random_crops",
    "random_gain",
]

SPEED_FACTORS: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2)
"""Default classes of the speed-recognition pretext (playback-rate factors)."""

LOG_FLOOR = 1e-6
"""Added to mel energies before the log, so silence gives ``log(1e-6)`` rather than ``-inf``."""


# --------------------------------------------------------------------------- helpers


def _check_waves(waves: Tensor) -> Tensor:
    if waves.ndim != 2:
        raise ValueError(f"expected waves of shape [B, L], got {tuple(waves.shape)}")
    if not waves.is_floating_point():
        raise TypeError(f"expected floating waves, got {waves.dtype}")
    return waves.to(torch.float32)


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
    waves = _check_waves(waves)
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
    waves = _check_waves(waves)
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
    waves = _check_waves(waves)
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
    waves = _check_waves(waves)
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


# --------------------------------------------------------------------------- features


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@functools.lru_cache(maxsize=32)
def _mel_numpy(n_fft: int, n_mels: int, f_min: float, f_max: float, sample_rate: int) -> np.ndarray:
    from transformers.audio_utils import mel_filter_bank

    filters = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min, max_frequency=f_max,
        sampling_rate=sample_rate, norm=None, mel_scale="htk",
    ).astype(np.float32)
    filters.setflags(write=False)
    return filters


@functools.lru_cache(maxsize=64)
def _mel_tensor(n_fft: int, n_mels: int, f_min: float, f_max: float, sample_rate: int, device: str) -> Tensor:
    return torch.tensor(_mel_numpy(n_fft, n_mels, f_min, f_max, sample_rate), device=device)


def mel_filters(
    sample_rate: int, n_mels: int, n_fft: int, f_min: float = 0.0, f_max: float | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """HTK-scale triangular mel filters [n_fft // 2 + 1, n_mels] (unnormalised, peak 1), from
    ``transformers.audio_utils.mel_filter_bank``; cached per settings and device (do not modify)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}, got {f_min} and {f_max}")
    return _mel_tensor(n_fft, n_mels, float(f_min), float(f_max), int(sample_rate), str(torch.device(device)))


def log_mel(
    waves: Tensor,
    sample_rate: int,
    n_mels: int = 80,
    win_length: int = 400,
    hop_length: int = 160,
    n_fft: int | None = None,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> Tensor:
    """Log mel filterbank energies [B, frames, n_mels], ``frames = (L - win_length) // hop_length + 1``.

    Frame ``t`` is samples ``[t * hop, t * hop + win_length)`` times a (periodic) Hann window,
    zero-padded to ``n_fft`` (default: the next power of two >= ``win_length``); its power spectrum
    ``|rfft|^2`` (``torch.stft``, ``center=False``) goes through HTK mel filters (:func:`mel_filters`)
    and ``log(mel + 1e-6)``. Clips shorter than ``win_length`` are zero padded to one frame.
    Defaults: 25 ms window, 10 ms hop at 16 kHz (Kaldi's fbank framing).
    """
    waves = _check_waves(waves)
    if win_length < 1 or hop_length < 1:
        raise ValueError(f"win_length and hop_length must be >= 1, got {win_length} and {hop_length}")
    n_fft = _next_pow2(win_length) if n_fft is None else n_fft
    if n_fft < win_length:
        raise ValueError(f"n_fft ({n_fft}) must be >= win_length ({win_length})")
    filters = mel_filters(sample_rate, n_mels, n_fft, f_min, f_max, device=waves.device)
    if waves.shape[1] < win_length:
        waves = F.pad(waves, (0, win_length - waves.shape[1]))
    # torch.stft centres a win_length window inside each n_fft frame; shifting the signal by the same
    # offset makes frame t start at t * hop, and the right pad keeps the last full window.
    left = (n_fft - win_length) // 2
    padded = F.pad(waves, (left, n_fft - win_length - left))
    window = torch.hann_window(win_length, device=waves.device, dtype=torch.float32)
    spec = torch.stft(padded, n_fft, hop_length=hop_length, win_length=win_length, window=window,
                      center=False, return_complex=True)  # [B, n_fft // 2 + 1, frames]
    power = spec.real.square() + spec.imag.square()
    return torch.log(power.transpose(1, 2) @ filters + LOG_FLOOR)


@functools.lru_cache(maxsize=16)
def _dct_numpy(n_mels: int) -> np.ndarray:
    from scipy.fft import dct

    matrix = dct(np.eye(n_mels), norm="ortho", axis=0).astype(np.float32)  # column i = DCT-II of e_i
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=16)
def _dct_tensor(n_mels: int, device: str) -> Tensor:
    return torch.tensor(_dct_numpy(n_mels), device=device)


def delta(features: Tensor, window: int = 2) -> Tensor:
    """Regression deltas over time of ``features`` [B, T, D] (HTK/Kaldi formula, edges replicated):
    ``d_t = sum_{n=1..N} n (c_{t+n} - c_{t-n}) / (2 sum_{n=1..N} n^2)``, ``N = window``."""
    if features.ndim != 3:
        raise ValueError(f"expected features [B, T, D], got {tuple(features.shape)}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    frames = features.shape[1]
    if frames == 0:
        return features.clone()
    padded = F.pad(features.transpose(1, 2), (window, window), mode="replicate")  # [B, D, T + 2N]
    total = sum(
        n * (padded[..., window + n: window + n + frames] - padded[..., window - n: window - n + frames])
        for n in range(1, window + 1)
    )
    return (total / (2 * sum(n * n for n in range(1, window + 1)))).transpose(1, 2)


def mfcc(
    waves: Tensor,
    sample_rate: int,
    n_mfcc: int = 13,
    n_mels: int = 23,
    win_length: int = 400,
    hop_length: int = 160,
    deltas: bool = True,
) -> Tensor:
    """MFCCs [B, frames, n_mfcc * 3 if deltas else n_mfcc]: the first ``n_mfcc`` coefficients of the
    orthonormal DCT-II of :func:`log_mel` (``n_mels`` bands), then with ``deltas`` the first- and
    second-order :func:`delta` (second = delta of delta) — HuBERT's 39-d first-iteration features."""
    if not 1 <= n_mfcc <= n_mels:
        raise ValueError(f"need 1 <= n_mfcc <= n_mels, got n_mfcc={n_mfcc} and n_mels={n_mels}")
    mels = log_mel(waves, sample_rate, n_mels=n_mels, win_length=win_length, hop_length=hop_length)
    coeffs = mels @ _dct_tensor(n_mels, str(mels.device))[:n_mfcc].T
    if not deltas:
        return coeffs
    first = delta(coeffs)
    return torch.cat([coeffs, first, delta(first)], dim=-1)


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
