"""Batched waveform ops: pretext crops, gain, noise, speed perturbation; log-mel and MFCC features (``features.audio``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.fft import dct

from selfsup.features.audio import delta, log_mel, mel_filters, mfcc
from selfsup.pretext.audio import SPEED_FACTORS, add_noise, change_speed, random_crops, random_gain

SR = 16000


def tone(freq: float, samples: int, sr: int = SR, amplitude: float = 0.5) -> torch.Tensor:
    return amplitude * torch.sin(2 * math.pi * freq * torch.arange(samples, dtype=torch.float64) / sr).float()


def padded_ramp(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """waves[i, j] = j + 1 on real samples, 0 on padding (so a value names its position)."""
    total = max(lengths)
    pos = torch.arange(total, dtype=torch.float32).expand(len(lengths), -1)
    lens = torch.tensor(lengths)
    return (pos + 1) * (pos < lens[:, None]), lens


def rms_db(x: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(x.double().square().mean(-1))


def peak_hz(x: torch.Tensor, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x.double().numpy()))
    return float(np.fft.rfftfreq(x.numel(), 1 / sr)[spectrum.argmax()])


# --------------------------------------------------------------------------- random_crops


def test_crops_stay_inside_each_clip_with_right_lengths():
    waves, lens = padded_ramp([500, 120, 300, 50])
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        crops, crop_lens = random_crops(waves, lens, 200, generator=gen)
        assert crops.dtype == torch.float32 and crop_lens.dtype == torch.int64
        assert crop_lens.tolist() == [200, 120, 200, 50]
        assert crops.shape == (4, 200)
        for row, n, length in zip(crops, crop_lens.tolist(), lens.tolist()):
            real = row[:n]
            assert torch.equal(real - real[0], torch.arange(n, dtype=torch.float32))  # contiguous segment
            assert real[0] >= 1 and real[-1] <= length  # inside the clip
            assert torch.all(row[n:] == 0)


def test_crop_starts_vary_and_cover_the_clip():
    waves, lens = padded_ramp([1000, 1000])
    gen = torch.Generator().manual_seed(1)
    starts = torch.stack([random_crops(waves, lens, 100, generator=gen)[0][:, 0] - 1 for _ in range(300)])
    assert starts.min() >= 0 and starts.max() <= 900
    assert starts.unique().numel() > 100  # not a fixed offset
    assert starts.min() < 100 and starts.max() > 800  # roughly uniform over [0, 900]
    assert not torch.equal(starts[:, 0], starts[:, 1])  # each clip draws its own start


def test_crops_reproducible_with_generator():
    waves, lens = padded_ramp([800, 600, 700])
    a = random_crops(waves, lens, 64, generator=torch.Generator().manual_seed(7))
    b = random_crops(waves, lens, 64, generator=torch.Generator().manual_seed(7))
    c = random_crops(waves, lens, 64, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_crops_of_clip_exactly_crop_long_is_the_clip():
    waves, lens = padded_ramp([64, 64])
    crops, crop_lens = random_crops(waves, lens, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(crops, waves) and crop_lens.tolist() == [64, 64]


def test_crops_reject_bad_arguments():
    waves, lens = padded_ramp([10, 5])
    with pytest.raises(ValueError, match="crop_samples"):
        random_crops(waves, lens, 0)
    with pytest.raises(ValueError, match="lengths"):
        random_crops(waves, torch.tensor([11, 5]), 4)


# --------------------------------------------------------------------------- gain and noise


def test_gain_within_range_per_clip_and_reproducible():
    waves = torch.randn(64, 400)
    out = random_gain(waves, -6.0, 6.0, generator=torch.Generator().manual_seed(0))
    gain = rms_db(out) - rms_db(waves)
    assert gain.min() >= -6.0 - 1e-4 and gain.max() <= 6.0 + 1e-4
    assert gain.std() > 2.0  # per-clip draws spread over the range (uniform std = 12 / sqrt(12) ~ 3.5)
    ratio = out / waves
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-5)  # one gain per clip
    again = random_gain(waves, -6.0, 6.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    fixed = random_gain(waves, 3.0, 3.0)
    assert torch.allclose(rms_db(fixed) - rms_db(waves), torch.full((64,), 3.0, dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize("snr_db", [5.0, 20.0, 35.0])
def test_add_noise_hits_snr_and_leaves_padding_zero(snr_db):
    lengths = [32000, 24000, 16000]
    waves = torch.stack([torch.nn.functional.pad(tone(300 * (i + 1), n, amplitude=0.1 * (i + 1)), (0, 32000 - n))
                         for i, n in enumerate(lengths)])
    mask = (torch.arange(32000) < torch.tensor(lengths)[:, None]).long()
    out = add_noise(waves, mask, snr_db, snr_db, generator=torch.Generator().manual_seed(0))
    for i, n in enumerate(lengths):
        signal, noise = waves[i, :n].double(), (out[i, :n] - waves[i, :n]).double()
        measured = 10 * math.log10(signal.square().sum() / noise.square().sum())
        assert abs(measured - snr_db) < 1.0
        assert torch.all(out[i, n:] == 0)


def test_add_noise_draws_snr_per_clip_in_range():
    waves = torch.randn(32, 8000)
    mask = torch.ones_like(waves, dtype=torch.long)
    out = add_noise(waves, mask, 5.0, 40.0, generator=torch.Generator().manual_seed(3))
    snr = rms_db(waves) - rms_db(out - waves)
    assert snr.min() > 4.0 and snr.max() < 41.0 and snr.std() > 5.0


def test_add_noise_silent_and_empty_clips_stay_finite():
    waves = torch.zeros(3, 100)
    mask = torch.ones(3, 100, dtype=torch.long)
    mask[2] = 0
    out = add_noise(waves, mask, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and torch.all(out == 0)


# --------------------------------------------------------------------------- change_speed


def test_change_speed_raises_pitch_and_shortens():
    x = tone(440.0, SR)
    waves = torch.stack([x, x])
    out, lens = change_speed(waves, torch.tensor([SR, SR]), torch.tensor([1.25, 0.8]))
    assert lens.tolist() == [12800, 20000] and out.shape == (2, 20000)
    assert abs(peak_hz(out[0, :12800]) - 550.0) < 2.0
    assert abs(peak_hz(out[1]) - 352.0) < 2.0
    assert torch.all(out[0, 12800:] == 0)


def test_change_speed_factor_one_is_identity_and_interpolates_linearly():
    waves, lens = padded_ramp([50, 30])
    out, new = change_speed(waves, lens, torch.tensor([1.0, 1.0]))
    assert torch.equal(out, waves) and torch.equal(new, lens)
    # On a ramp (value = position + 1), linear interpolation at j * f gives exactly j * f + 1.
    out, new = change_speed(waves, lens, torch.tensor([0.5, 1.5]))
    assert new.tolist() == [100, 20]
    j = torch.arange(100, dtype=torch.float32)
    expected0 = torch.clamp(j * 0.5 + 1, max=50.0)  # the last half-step holds the final sample
    assert torch.allclose(out[0], expected0)
    assert torch.allclose(out[1, :20], j[:20] * 1.5 + 1) and torch.all(out[1, 20:] == 0)


def test_change_speed_per_clip_factors_and_validation():
    assert SPEED_FACTORS == (0.8, 0.9, 1.0, 1.1, 1.2)
    waves = tone(1000.0, 8000).expand(len(SPEED_FACTORS), -1).contiguous()
    out, lens = change_speed(waves, torch.full((5,), 8000), torch.tensor(SPEED_FACTORS))
    assert lens.tolist() == [round(8000 / f) for f in SPEED_FACTORS]
    for row, n, f in zip(out, lens.tolist(), SPEED_FACTORS):
        assert abs(peak_hz(row[:n]) - 1000.0 * f) < 3.0
    with pytest.raises(ValueError, match="> 0"):
        change_speed(waves[:1], torch.tensor([8000]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="lengths"):
        change_speed(waves[:1], torch.tensor([8001]), torch.tensor([1.0]))


# --------------------------------------------------------------------------- log_mel / mfcc


def reference_mel_filters(sample_rate: int, n_mels: int, n_fft: int, f_min: float = 0.0,
                          f_max: float | None = None) -> np.ndarray:
    """HTK mel filterbank [n_fft // 2 + 1, n_mels] written out with loops, independent of selfsup (and of
    the library it uses): mel(f) = 2595 log10(1 + f / 700); n_mels + 2 points equally spaced on that scale
    from f_min to f_max give each triangle's left foot, peak (1) and right foot, in Hz, over the rfft bin
    frequencies k * sample_rate / n_fft."""
    f_max = sample_rate / 2 if f_max is None else f_max
    to_mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)  # noqa: E731
    to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    low, high = to_mel(f_min), to_mel(f_max)
    points = [to_hz(low + (high - low) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    bins = n_fft // 2 + 1
    filters = np.zeros((bins, n_mels))
    for m in range(n_mels):
        left, centre, right = points[m], points[m + 1], points[m + 2]
        for k in range(bins):
            f = k * sample_rate / n_fft
            if left < f <= centre:
                filters[k, m] = (f - left) / (centre - left)
            elif centre < f < right:
                filters[k, m] = (right - f) / (right - centre)
    return filters


def reference_log_mel(x: np.ndarray, n_mels: int, win: int, hop: int, n_fft: int, sample_rate: int = SR) -> np.ndarray:
    """Slow numpy reference that calls no selfsup code: frame loop, periodic Hann window written out, the
    DFT power of the zero-padded frame (np.fft.rfft), :func:`reference_mel_filters`, log(. + 1e-6)."""
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / win) for n in range(win)])
    filters = reference_mel_filters(sample_rate, n_mels, n_fft)
    frames = (len(x) - win) // hop + 1
    out = np.empty((frames, n_mels))
    for t in range(frames):
        spectrum = np.fft.rfft(x[t * hop: t * hop + win] * window, n=n_fft)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        for m in range(n_mels):
            out[t, m] = math.log(float(power @ filters[:, m]) + 1e-6)
    return out


def test_mel_filters_match_an_independent_htk_filterbank():
    for n_mels, n_fft, f_min, f_max in [(40, 512, 0.0, None), (24, 1024, 0.0, None), (16, 512, 100.0, 6000.0)]:
        ours = reference_mel_filters(SR, n_mels, n_fft, f_min, f_max)
        np.testing.assert_allclose(mel_filters(SR, n_mels, n_fft, f_min, f_max).numpy(), ours, atol=1e-5, rtol=0)
        assert ours.max() <= 1.0 + 1e-9 and (ours.sum(0) > 0).all()  # every triangle covers some bin


def test_log_mel_of_a_few_sines_matches_the_independent_reference():
    t = np.arange(4000) / SR
    x = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1830 * t + 1.0)
         + 0.1 * np.sin(2 * np.pi * 5200 * t))
    feats = log_mel(torch.tensor(x, dtype=torch.float32)[None], SR, n_mels=40)
    ref = reference_log_mel(x, 40, 400, 160, 512)
    assert feats.shape == (1, *ref.shape)
    np.testing.assert_allclose(feats[0].numpy(), ref, atol=2e-3, rtol=0)
    # not a vacuous match of two flat spectra: the tones stand well above the median band
    energy = ref.mean(0)
    assert energy.max() - np.median(energy) > 5


def test_log_mel_matches_slow_reference_and_frame_formula():
    gen = torch.Generator().manual_seed(0)
    waves = 0.3 * torch.randn(2, 3000, generator=gen)
    waves[1] += tone(700.0, 3000)
    feats = log_mel(waves, SR, n_mels=40)
    assert feats.shape == (2, (3000 - 400) // 160 + 1, 40) and feats.dtype == torch.float32
    for i in range(2):
        ref = reference_log_mel(waves[i].double().numpy(), 40, 400, 160, 512)
        np.testing.assert_allclose(feats[i].numpy(), ref, atol=2e-3, rtol=0)
    odd = log_mel(waves, SR, n_mels=24, win_length=300, hop_length=100, n_fft=1024)
    assert odd.shape == (2, (3000 - 300) // 100 + 1, 24)
    np.testing.assert_allclose(odd[0].numpy(), reference_log_mel(waves[0].double().numpy(), 24, 300, 100, 1024),
                               atol=2e-3, rtol=0)


def test_log_mel_tone_peaks_in_the_band_containing_its_frequency():
    feats = log_mel(tone(1000.0, 8000)[None], SR, n_mels=40)
    # HTK mel scale: band k's triangle peaks at the (k+1)-th of n_mels + 2 equally spaced mel points.
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    centres = 700 * (10 ** (np.linspace(mel(0), mel(SR / 2), 42)[1:-1] / 2595) - 1)
    expected = int(np.abs(centres - 1000.0).argmin())
    assert int(feats[0].mean(0).argmax()) == expected
    assert feats[0, :, expected].mean() > feats[0, :, expected + 4].mean() + 5  # well above distant bands


def test_log_mel_short_input_gives_one_frame():
    feats = log_mel(torch.randn(3, 250), SR)
    assert feats.shape == (3, 1, 80)
    padded = torch.nn.functional.pad(torch.randn(3, 250, generator=torch.Generator().manual_seed(0)), (0, 150))
    short = padded[:, :250]
    assert torch.equal(log_mel(short, SR), log_mel(padded, SR))


def test_mfcc_is_dct_of_log_mel_with_deltas():
    waves = 0.2 * torch.randn(2, 4000, generator=torch.Generator().manual_seed(0)) + tone(440.0, 4000)
    feats = mfcc(waves, SR)
    frames = (4000 - 400) // 160 + 1
    assert feats.shape == (2, frames, 39)
    mels = log_mel(waves, SR, n_mels=23).double().numpy()
    expected = dct(mels, norm="ortho", axis=-1)[..., :13]
    np.testing.assert_allclose(feats[..., :13].numpy(), expected, atol=1e-3, rtol=1e-5)
    first = delta(feats[..., :13])
    assert torch.allclose(feats[..., 13:26], first) and torch.allclose(feats[..., 26:], delta(first))
    assert mfcc(waves, SR, deltas=False).shape == (2, frames, 13)


def test_delta_of_linear_ramp_is_constant_inside():
    t = torch.arange(12, dtype=torch.float32)
    feats = torch.stack([2.0 * t + 1, -0.5 * t], dim=-1)[None]  # [1, 12, 2], slopes 2 and -0.5
    d = delta(feats)
    assert torch.allclose(d[0, 2:-2], torch.tensor([2.0, -0.5]).expand(8, 2))
    # Replicated edges: frame 0 sees c_{-1} = c_{-2} = c_0, so d_0 = (1*1 + 2*2) * slope / 10.
    assert torch.allclose(d[0, 0], torch.tensor([2.0, -0.5]) * 0.5)
    assert torch.allclose(delta(d)[0, 4:-4], torch.zeros(4, 2), atol=1e-6)


def test_features_finite_on_silence():
    silent = torch.zeros(2, 1600)
    for feats in (log_mel(silent, SR), mfcc(silent, SR)):
        assert torch.isfinite(feats).all()
    assert torch.allclose(log_mel(silent, SR), torch.full((2, (1600 - 400) // 160 + 1, 80), math.log(1e-6)))
    crops, _ = random_crops(silent, torch.tensor([1600, 800]), 400)
    sped, _ = change_speed(silent, torch.tensor([1600, 800]), torch.tensor([1.1, 0.9]))
    assert torch.isfinite(random_gain(crops)).all() and torch.isfinite(sped).all()


def test_log_mel_rejects_bad_settings():
    with pytest.raises(ValueError, match="n_fft"):
        log_mel(torch.zeros(1, 800), SR, n_fft=256)
    with pytest.raises(ValueError, match="f_max"):
        log_mel(torch.zeros(1, 800), SR, f_max=9000.0)
