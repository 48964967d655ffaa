"""Audio reader: folders (any depth), single files or list files of audio → float32 mono waveforms.

Files are decoded with libsndfile (``soundfile``: WAV, FLAC, OGG/Vorbis, Opus, AIFF, AU, MP3, ...),
mixed down to mono by averaging the channels and resampled to the run's rate with a polyphase
filter (``scipy.signal.resample_poly``). Clips are either decoded once into memory
(``decode_clips`` → ``AudioClips``: one flat float32 tensor plus offsets) or read from disk at every
access (``AudioFileDataset``, for data larger than memory). ``ClipCollator`` crops and pads clips
into a batch ``{"input_values" [B, L] float, "attention_mask" [B, L] long}``. Labeled sets
(``load_labeled_audio``) hold clips in one NaN-padded tensor [N, L] (NaN = no sample).

Unreadable files are skipped with a warning naming each one (``strict=True`` stops at the first).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ...errors import SelfSupError
from ...files import files_below, find_files

log = logging.getLogger("selfsup")

# Containers libsndfile >= 1.1 reads (``soundfile.available_formats()``: WAV, FLAC, OGG incl. Opus,
# AIFF, AU, MP3); the format is detected from the file's contents, the suffix only selects files.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".aifc", ".au", ".snd", ".mp3", ".opus"})
TABLE_EXTENSIONS = frozenset({".csv", ".tsv"})
MIN_SAMPLES = 400  # one 25 ms window at 16 kHz: the receptive field of a wav2vec 2.0 frame

_SOUNDFILE_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, EOFError)


class AudioReadError(SelfSupError):
    """An audio file that cannot be used (unreadable, corrupt, empty or non-finite), named in one line.

    ``path`` and ``reason`` are kept for the skip warning; the message alone rebuilds the error
    (DataLoader workers re-raise exceptions from their message)."""

    def __init__(self, message: str, path: Path | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason or message

    @classmethod
    def of(cls, path: Path, reason: str) -> AudioReadError:
        return cls(f"{path}: unreadable audio ({reason}); remove or replace the file, or drop --strict to skip it", path, reason)

    def __reduce__(self):
        return type(self), (str(self), self.path, self.reason)


# --------------------------------------------------------------------------------------- files


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def find_audio_files(path: str | Path) -> list[Path]:
    """The audio files to read: every audio file under a folder (recursively, sorted, hidden files
    and folders skipped), ``path`` itself if it is an audio file, or the files a list file
    (.txt/.lst/.list) names one per line (relative paths against the list file's folder; blank and
    ``#`` lines skipped)."""
    return find_files(path, AUDIO_EXTENSIONS, "audio files", single=True)


# --------------------------------------------------------------------------------------- decoding


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """``wave`` (1-D, or time first) from ``orig_rate`` to ``target_rate`` Hz: polyphase FIR
    resampling (``scipy.signal.resample_poly``, Kaiser-windowed low-pass) by ``target/g`` up and
    ``orig/g`` down, g = gcd. Output length is ``ceil(n * target / orig)``; equal rates return ``wave``."""
    orig_rate, target_rate = int(orig_rate), int(target_rate)
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return wave
    g = math.gcd(orig_rate, target_rate)
    return resample_poly(wave, target_rate // g, orig_rate // g, axis=0).astype(np.float32, copy=False)


def _resampled_length(frames: int, orig_rate: int, target_rate: int) -> int:
    return frames if orig_rate == target_rate else -(-frames * target_rate // orig_rate)


def _centre_crop(wave: np.ndarray, size: int) -> np.ndarray:
    if len(wave) <= size:
        return wave
    start = (len(wave) - size) // 2
    return wave[start : start + size]


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "error_string", None) or str(exc) or exc.__class__.__name__
    return text.strip().rstrip(".")


def _read(path: Path | BinaryIO, sample_rate: int, max_samples: int | None = None) -> np.ndarray:
    """``path`` (or an open binary file, named by its ``name``) as float32 mono at ``sample_rate`` (numpy); see
    :func:`read_audio`."""
    where = path if isinstance(path, Path) else Path(getattr(path, "name", "?"))
    try:
        with sf.SoundFile(str(path) if isinstance(path, Path) else path) as fh:
            rate, frames = fh.samplerate, fh.frames
            if max_samples is not None and frames > 0:
                # a pathological (hours-long) file: read only the centre part that survives the crop,
                # with a margin for the resampling filter's edges
                g = math.gcd(rate, sample_rate)
                up, down = sample_rate // g, rate // g
                half = 10 * max(up, down) // up + 32  # resample_poly's filter half-length, in source samples
                need = -(-max_samples * rate // sample_rate) + 2 * half
                if frames > need:
                    fh.seek((frames - need) // 2)
                    frames = need
            data = fh.read(frames, dtype="float32", always_2d=True)
    except _SOUNDFILE_ERRORS as exc:
        raise AudioReadError.of(where, _reason(exc)) from None
    if data.shape[0] == 0:
        raise AudioReadError.of(where, "empty: 0 samples")
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else np.ascontiguousarray(data[:, 0])
    if not np.isfinite(wave).all():
        raise AudioReadError.of(where, "holds NaN or infinite samples")
    wave = resample(wave, rate, sample_rate)
    if max_samples is not None:
        wave = _centre_crop(wave, max_samples)
    return np.ascontiguousarray(wave, dtype=np.float32)


def read_audio(path: str | Path, sample_rate: int, max_samples: int | None = None) -> torch.Tensor:
    """Decode one file to a float32 mono waveform [N] at ``sample_rate``.

    Channels are averaged (stereo mixed down) and the result resampled with :func:`resample`.
    ``max_samples`` centre-crops longer clips (only that part of the file is read). Raises
    :class:`AudioReadError` naming the file when it is unreadable or corrupt, empty, or holds
    non-finite samples."""
    return torch.from_numpy(_read(Path(path), sample_rate, max_samples))


def audio_of_sample(sample: dict, sample_rate: int, max_samples: int | None = None) -> torch.Tensor:
    """The recording of a WebDataset sample (its first member with an audio extension), as :func:`read_audio`
    reads a file; raises :class:`AudioReadError` naming the shard and key."""
    import io

    name = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
    for key, value in sample.items():
        if f".{key.lower()}" in AUDIO_EXTENSIONS:
            stream = io.BytesIO(value)
            stream.name = f"{name}.{key}"  # what an error names
            return torch.from_numpy(_read(stream, sample_rate, max_samples))
    raise AudioReadError.of(Path(name), "no audio in this sample")


def audio_duration(path: str | Path) -> float | None:
    """Duration of an audio file in seconds from its header (``soundfile.info``), without decoding;
    None when the file cannot be read."""
    try:
        info = sf.info(str(path))
    except _SOUNDFILE_ERRORS:
        return None
    if info.samplerate <= 0 or info.frames < 0:
        return None
    return info.frames / info.samplerate


def _expected_samples(path: Path, sample_rate: int, max_samples: int | None) -> int:
    """Samples ``_read`` will return for ``path``, from the header (0 when it cannot be read)."""
    try:
        info = sf.info(str(path))
    except _SOUNDFILE_ERRORS:
        return 0
    if info.samplerate <= 0 or info.frames <= 0:
        return 0
    n = _resampled_length(info.frames, info.samplerate, sample_rate)
    return min(n, max_samples) if max_samples is not None else n


# --------------------------------------------------------------------------------------- datasets


class AudioClips(Dataset):
    """Decoded clips held in memory: every clip concatenated in one float32 tensor ``data`` and
    int64 ``offsets`` [N + 1] (clip ``i`` is ``data[offsets[i]:offsets[i + 1]]``). Items are 1-D
    float32 views into ``data``: read them, do not modify them in place."""

    def __init__(self, data: torch.Tensor, offsets: torch.Tensor, paths: Sequence[Path]) -> None:
        if data.ndim != 1 or offsets.ndim != 1 or len(offsets) != len(paths) + 1:
            raise ValueError("AudioClips needs 1-D data, and offsets with one more entry than paths")
        self.data = data
        self.offsets = offsets.to(torch.int64)
        self.paths = [Path(p) for p in paths]

    @classmethod
    def from_clips(cls, clips: Sequence[torch.Tensor | np.ndarray], paths: Sequence[Path]) -> AudioClips:
        """Pack separate 1-D clips (one per path) into one storage."""
        lengths = torch.tensor([len(c) for c in clips], dtype=torch.int64)
        offsets = torch.zeros(len(clips) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=offsets[1:])
        data = torch.empty(int(offsets[-1]), dtype=torch.float32)
        for i, clip in enumerate(clips):
            data[offsets[i] : offsets[i + 1]] = torch.as_tensor(clip, dtype=torch.float32)
        return cls(data, offsets, paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self.data[int(self.offsets[index]) : int(self.offsets[index + 1])]

    @property
    def lengths(self) -> torch.Tensor:
        """Samples per clip, int64 [N]."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def nbytes(self) -> int:
        """Memory held by the samples and offsets, in bytes."""
        return self.data.numel() * self.data.element_size() + self.offsets.numel() * self.offsets.element_size()

    def padded(self, fill: float = float("nan")) -> torch.Tensor:
        """All clips in one float32 tensor [N, L] (L = the longest clip), right-padded with ``fill``."""
        lengths = self.lengths
        longest = int(lengths.max()) if len(self) else 0
        out = torch.full((len(self), longest), fill, dtype=torch.float32)
        for i in range(len(self)):
            out[i, : int(lengths[i])] = self[i]
        return out


class AudioFileDataset(Dataset):
    """Clips read from disk at every access, for data larger than memory.

    Item ``i`` is ``read_audio(paths[i], sample_rate, max_samples)``, the very waveform the memory
    path holds for that file. An unusable file raises :class:`AudioReadError` naming it; the caller
    decides to skip, replace or stop."""

    def __init__(self, paths: Sequence[Path], sample_rate: int, max_samples: int | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.sample_rate = int(sample_rate)
        self.max_samples = max_samples

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return read_audio(self.paths[index], self.sample_rate, self.max_samples)


def _none_readable(paths: Sequence[Path]) -> SelfSupError:
    return SelfSupError(
        f"none of the {len(paths)} audio files could be read (first: {paths[0]}); "
        "check that DATA holds valid audio files (e.g. play or re-encode one with ffmpeg/sox)"
    )


def _decode(files: Sequence[Path], sample_rate: int, strict: bool, progress: bool,
            max_samples: int | None) -> tuple[AudioClips, list[int]]:
    """``files`` decoded into one AudioClips, and the indices (into ``files``) of the clips it holds.

    The storage is sized from the file headers first, so memory peaks at the cache's own size."""
    files = [Path(f) for f in files]
    if not files:
        raise SelfSupError("no audio files to read; point DATA at a folder that holds audio files")
    capacity = sum(_expected_samples(f, sample_rate, max_samples) for f in files)
    data = torch.empty(capacity, dtype=torch.float32)
    offsets = [0]
    kept: list[int] = []
    skipped = 0
    used = 0
    for i, path in enumerate(tqdm(files, desc="decoding audio", unit="file", disable=None if progress else True, leave=False)):
        try:
            wave = torch.from_numpy(_read(path, sample_rate, max_samples))
        except AudioReadError as exc:
            if strict:
                raise
            log.warning("skipping unreadable audio %s (%s)", path, exc.reason)
            skipped += 1
            continue
        n = wave.numel()
        if used + n > data.numel():  # the header undercounted (e.g. some MP3s): grow
            grown = torch.empty(max(used + n, int(data.numel() * 1.25)), dtype=torch.float32)
            grown[:used] = data[:used]
            data = grown
        data[used : used + n] = wave
        used += n
        offsets.append(used)
        kept.append(i)
    if not kept:
        raise _none_readable(files)
    if skipped:
        log.warning("skipped %d unreadable audio file(s) of %d", skipped, len(files))
    if used < data.numel():
        data = data[:used].clone()
    return AudioClips(data, torch.tensor(offsets, dtype=torch.int64), [files[i] for i in kept]), kept


def decode_clips(files: Sequence[Path], sample_rate: int, strict: bool = False, progress: bool = True,
                 max_samples: int | None = None) -> AudioClips:
    """Decode ``files`` into memory at ``sample_rate`` (see :func:`read_audio`).

    Whole clips are kept (the collator crops them at random every epoch); ``max_samples`` only caps
    pathological files, centre-cropping longer clips (pass e.g. 30 s worth). An unusable file is
    skipped with a warning naming it (``strict``: its :class:`AudioReadError` is raised); when none
    can be read, a SelfSupError names the first."""
    return _decode(files, sample_rate, strict, progress, max_samples)[0]


# --------------------------------------------------------------------------------------- batches


class ClipCollator:
    """Picklable ``collate_fn``: 1-D clips → ``{"input_values" float32 [B, L], "attention_mask" long [B, L]}``.

    A clip longer than ``crop_samples`` is cropped to it: at a random start drawn from torch's
    global RNG (seeded per DataLoader worker) when ``random_crop``, else at the centre. Shorter clips
    are kept whole. Clips are zero-padded on the right to the longest of the batch, and the batch to
    at least ``min_samples`` (400: one 25 ms window at 16 kHz, so every clip yields a frame); the mask
    is 1 on real samples only."""

    def __init__(self, crop_samples: int, random_crop: bool = True, min_samples: int = MIN_SAMPLES) -> None:
        if int(crop_samples) < 1:
            raise ValueError(f"crop_samples must be positive, got {crop_samples}")
        self.crop_samples = int(crop_samples)
        self.random_crop = bool(random_crop)
        self.min_samples = int(min_samples)

    def _crop(self, clip: torch.Tensor) -> torch.Tensor:
        n = clip.shape[0]
        if n <= self.crop_samples:
            return clip
        if self.random_crop:
            start = int(torch.randint(0, n - self.crop_samples + 1, ()).item())
        else:
            start = (n - self.crop_samples) // 2
        return clip[start : start + self.crop_samples]

    def __call__(self, clips: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        crops = [self._crop(torch.as_tensor(c, dtype=torch.float32).reshape(-1)) for c in clips]
        longest = max([c.shape[0] for c in crops] + [self.min_samples])
        values = torch.zeros((len(crops), longest), dtype=torch.float32)
        mask = torch.zeros((len(crops), longest), dtype=torch.long)
        for row, crop in enumerate(crops):
            n = crop.shape[0]
            values[row, :n] = crop
            mask[row, :n] = 1
        return {"input_values": values, "attention_mask": mask}

    def __repr__(self) -> str:
        return f"ClipCollator(crop_samples={self.crop_samples}, random_crop={self.random_crop})"


# --------------------------------------------------------------------------------------- labeled sets


@dataclass
class LabeledAudio:
    """A labeled split: clips float32 [N, L] right-padded with NaN, labels [N] in 0..C-1, class names,
    and the file of each clip."""

    waves: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.paths)


def _labeled_folder(root: Path, classes: list[str] | None) -> tuple[list[Path], list[str], list[str]]:
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))  # checked by the caller
    if classes is not None:
        unknown = [name for name in found if name not in classes]
        if unknown:
            known = ", ".join(classes)
            raise SelfSupError(
                f"{root / unknown[0]}: unknown label {unknown[0]!r} (the training data's classes: {known}); "
                "use the same class folder names in both sets"
            )
    files: list[Path] = []
    names: list[str] = []
    for name in found:
        class_files = files_below(root / name, AUDIO_EXTENSIONS)
        files += class_files
        names += [name] * len(class_files)
    return files, names, found


def _labeled_table(table: Path, classes: list[str] | None) -> tuple[list[Path], list[str]]:
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    with open(table, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        cells = [c.strip().lower() for c in header or []]
        if "path" not in cells or "label" not in cells:
            found = ", ".join(c for c in cells if c) or "none"
            raise SelfSupError(f"{table}: needs a header row with columns path and label (found: {found}); add that header line")
        ip, il = cells.index("path"), cells.index("label")
        files: list[Path] = []
        names: list[str] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if max(ip, il) >= len(row):
                raise SelfSupError(f"{table}:{line}: row has {len(row)} fields, the header has {len(cells)}")
            name, label = row[ip].strip(), row[il].strip()
            if not name or not label:
                raise SelfSupError(f"{table}:{line}: row without a path or a label; each row names a file and its label")
            file = Path(name).expanduser()
            file = file if file.is_absolute() else (table.parent / file).resolve()
            if classes is not None and label not in classes:
                known = ", ".join(classes)
                raise SelfSupError(f"{table}:{line}: {file} has unknown label {label!r} (the training data's classes: {known}); fix the label")
            files.append(file)
            names.append(label)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise SelfSupError(f"{table}: {len(missing)} listed file(s) do not exist, first: {missing[0]}; fix or remove those lines")
    return files, names


def load_labeled_audio(path: str | Path, sample_rate: int, max_samples: int | None, classes: list[str] | None = None,
                       strict: bool = False, progress: bool = True) -> LabeledAudio:
    """A labeled audio set: a folder with one subfolder per class (audio files at any depth below
    it), or a .csv/.tsv whose header names columns ``path`` and ``label`` (paths relative to the
    table's folder). Clips longer than ``max_samples`` are centre-cropped; all are NaN-padded to the
    longest. ``classes`` fixes the class order (pass the train split's to read the test split); a
    label not in it is an error. Unusable files are skipped with a warning (``strict`` raises)."""
    from_shards = _shard_clips(path, sample_rate, max_samples, strict)
    if from_shards is not None:
        from ...shards.labelled import label_indices

        clips, names = from_shards
        labels, order = label_indices(names, classes, str(path))
        return LabeledAudio(waves=clips.padded(), labels=labels, classes=order, paths=clips.paths)
    root = Path(path).expanduser()
    if root.is_dir():
        files, names, found = _labeled_folder(root, classes)
        shape = "one subfolder of audio files per class"
    elif root.is_file() and root.suffix.lower() in TABLE_EXTENSIONS:
        files, names = _labeled_table(root, classes)
        found = sorted(set(names))
        shape = "rows of path,label"
    else:
        what = "no such file or folder" if not root.exists() else "not a folder or a .csv/.tsv file"
        raise SelfSupError(f"{root}: {what}; a labeled audio set is a folder with one subfolder per class, or a .csv/.tsv with columns path,label")
    class_list = list(classes) if classes is not None else found
    if len(class_list) < 2:
        raise SelfSupError(f"{root}: found {len(class_list)} class(es); a labeled audio set needs at least 2 ({shape})")
    if not files:
        raise SelfSupError(f"{root}: no labeled audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))}); expected {shape}")
    clips, kept = _decode(files, sample_rate, strict, progress, max_samples)
    lookup = {c: i for i, c in enumerate(class_list)}
    labels = torch.tensor([lookup[names[i]] for i in kept], dtype=torch.long)
    return LabeledAudio(waves=clips.padded(), labels=labels, classes=class_list, paths=clips.paths)


def unlabeled_waves(path: str | Path, sample_rate: int, max_samples: int | None, strict: bool = False,
                    progress: bool = True) -> tuple[torch.Tensor, list[Path]]:
    """Every audio file under ``path`` (:func:`find_audio_files`) as one NaN-padded float32 tensor
    [N, L] (clips centre-cropped to ``max_samples``), and the file of each row; tar shards too."""
    from_shards = _shard_clips(path, sample_rate, max_samples, strict)
    if from_shards is not None:
        return from_shards[0].padded(), from_shards[0].paths
    clips = decode_clips(find_audio_files(path), sample_rate, strict=strict, progress=progress, max_samples=max_samples)
    return clips.padded(), clips.paths


def _shard_clips(path: str | Path, sample_rate: int, max_samples: int | None, strict: bool
                 ) -> tuple[AudioClips, list[str | None]] | None:
    """The recordings of tar shard DATA (referenced by their stored paths) and their class names; None when
    ``path`` is not shards."""
    from functools import partial

    from ...shards.labelled import decode_all
    from ...shards.tar import SUFFIXES, count_tar, tar_samples

    found = decode_all(str(path), SUFFIXES, count_tar, tar_samples,
                       partial(audio_of_sample, sample_rate=sample_rate, max_samples=max_samples), (AudioReadError,),
                       strict, lambda exc: exc, "audio")
    return None if found is None else (AudioClips.from_clips(found[0], found[1]), found[2])
