"""Classical audio features (pure, batched tensor ops; CPU or CUDA): log mel filterbank energies,
MFCCs and their deltas, used by the audio encoders' front end, HuBERT's first-iteration targets and
the MFCC baseline.

- :func:`log_mel`: Kaldi-style framing (25 ms window, 10 ms hop at 16 kHz), HTK mel filters.
- :func:`mfcc`, :func:`delta`: MFCCs with first- and second-order deltas, HuBERT's first-iteration
  k-means targets (Hsu et al. 2021, "HuBERT: Self-Supervised Speech Representation Learning by
  Masked Prediction of Hidden Units", §IV-B: 39-d MFCC).

A batch of clips is ``waves`` [B, L] float32 (mono, right zero-padded), as in ``pretext.audio``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOG_FLOOR", "check_waves", "delta", "log_mel", "mel_filters", "mfcc"]

LOG_FLOOR = 1e-6
"""Added to mel energies before the log, so silence gives ``log(1e-6)`` rather than ``-inf``."""


def check_waves(waves: Tensor) -> Tensor:
    """``waves`` as float32 after checking it is a [B, L] floating batch of clips."""
    if waves.ndim != 2:
        raise ValueError(f"expected waves of shape [B, L], got {tuple(waves.shape)}")
    if not waves.is_floating_point():
        raise TypeError(f"expected floating waves, got {waves.dtype}")
    return waves.to(torch.float32)


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
    waves = check_waves(waves)
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
