"""Recordings (files or tar shards) for ``selfsup inspect``: bytes digest, a full decode (unreadable, empty or non-finite files are
reported), duration, sample rate and channels from the header, a log-mel embedding (or the run's encoder), the
class subfolder when DATA has one per class."""

from __future__ import annotations

import math
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...features.audio import log_mel
from ...inspection.items import ENCODER_THRESHOLD, InspectedItems, digest
from ...inspection.stored import stored_files
from .readers import AUDIO_EXTENSIONS, AudioReadError, _read, find_audio_files

MEL_BANDS = 32
TIME_SEGMENTS = 16
DYNAMIC_RANGE = math.log(1e4)  # 40 dB in natural-log power: quieter energy is floored (hiss, dither, silence)
MAX_SECONDS = 60.0  # the centre minute of a longer recording is decoded and embedded
LOG_MEL_THRESHOLD = 0.98
"""Log-mel embeddings with a cosine of at least 0.98 are near-duplicates: a copy re-encoded, with faint noise or at
another volume stays above 0.99; two harmonic tones 7 % apart in pitch reach 0.96."""


def log_mel_embedding(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """[32 x 16]: the recording's log-mel energies (32 bands, 25 ms windows, 10 ms hop; :func:`log_mel`)
    floored 40 dB below their maximum (so that faint hiss or a codec's dither, large changes in the log domain,
    do not count), averaged over 16 equal stretches of time, minus their mean, so that a change of volume (a constant in the
    log domain) leaves it unchanged. Compared by cosine: how alike two recordings' spectrograms are, at the
    resolution of a sixteenth of their length."""
    mel = log_mel(wave[None].float(), sample_rate, n_mels=MEL_BANDS, win_length=int(0.025 * sample_rate),
                  hop_length=int(0.010 * sample_rate))[0]  # [frames, bands]
    mel = mel.clamp(min=float(mel.max()) - DYNAMIC_RANGE)  # what is 40 dB below the loudest is silence
    pooled = F.adaptive_avg_pool1d(mel.T[None], TIME_SEGMENTS)[0]  # [bands, segments]
    return (pooled - pooled.mean()).reshape(-1)


def inspect_audio(data: str | Path, sample_rate: int, loaded=None, device: str = "cpu",
                  batch_size: int = 256) -> InspectedItems:
    """:meth:`~selfsup.modalities.base.Modality.inspect_items` for recordings."""
    stored = stored_files(data, find_audio_files, sorted(AUDIO_EXTENSIONS))
    rate = loaded.encoder.sample_rate if loaded is not None else sample_rate
    limit = loaded.input_size if loaded is not None else int(MAX_SECONDS * rate)
    ids, digests, clean, vectors, waves, readable = [], [], [], [], [], []
    stats: dict[str, list[float]] = {"duration (s)": [], "sample rate (Hz)": [], "channels": []}
    unreadable: list[tuple[str, str]] = []
    for item in tqdm(stored.files, total=stored.total, desc="reading recordings", unit="file", leave=False,
                     disable=None):
        try:
            content = item.read()
            info = sf.info(item.opened(content))
            wave = torch.from_numpy(_read(item.opened(content), rate, limit))
        except AudioReadError as exc:
            unreadable.append((item.id, exc.reason))
            continue
        except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, EOFError) as exc:
            unreadable.append((item.id, str(exc) or exc.__class__.__name__))
            continue
        ids.append(item.id)
        digests.append(digest(content))
        clean.append(item.clean)
        readable.append(item)
        stats["duration (s)"].append(info.frames / info.samplerate)
        stats["sample rate (Hz)"].append(info.samplerate)
        stats["channels"].append(info.channels)
        if loaded is None:
            vectors.append(log_mel_embedding(wave, rate))
        else:
            waves.append(wave)
    labels = stored.labels(readable)
    if loaded is None:
        matrix = torch.stack(vectors) if vectors else torch.empty(0, MEL_BANDS * TIME_SEGMENTS)
        return InspectedItems(ids, digests, matrix, f"log-mel ({MEL_BANDS} bands x {TIME_SEGMENTS} time segments, "
                              "volume removed)", LOG_MEL_THRESHOLD, clean, stats, labels, unreadable)
    from ...evaluation.features import extract_features
    from .modality import WaveBatch

    length = max((len(w) for w in waves), default=1)
    padded = torch.full((len(waves), length), float("nan"))
    for i, w in enumerate(waves):
        padded[i, : len(w)] = w
    matrix = extract_features(loaded.encoder, padded, WaveBatch(), batch_size=batch_size, device=device)
    return InspectedItems(ids, digests, matrix, f"the run's encoder ({loaded.method}, cosine)", ENCODER_THRESHOLD,
                          clean, stats, labels, unreadable)
