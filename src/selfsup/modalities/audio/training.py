"""The audio training data path: recordings → mono clips at ``data.sample_rate`` → batches of random crops.

- ``memory``: every recording is decoded once (resampled, mixed down) into one float32 array
  (:class:`~selfsup.modalities.audio.readers.AudioClips`); unreadable files are skipped with a warning (``--strict`` stops).
- ``stream``: each recording is read when it is drawn (:class:`~selfsup.modalities.audio.readers.AudioFileDataset`,
  in loader workers with ``--num-workers``); an unreadable file is skipped, counted and warned about
  (``--strict`` stops), as for every modality (``train/streaming.py``).
- ``auto``: ``memory`` when the decoded clips fit comfortably in RAM (sized from the file headers).

Batches are dicts ``{input_values [B, L], attention_mask [B, L]}``: a random crop of at most
``data.clip_seconds`` per recording, zero-padded to the longest of the batch. Recordings of similar length
are batched together (:class:`LengthGroupedBatches`, on one process), so little compute goes to padding.
The method's pretext (masks, views, speed changes, pseudo-labels) runs on whole batches on the training
device.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ...config import DataConfig, TrainerConfig
from .readers import (AudioFileDataset, AudioReadError, ClipCollator, audio_duration, audio_of_sample,
                          decode_clips, find_audio_files)
from ...errors import SelfSupError
from ...methods.base import Pretext
from ...train.data import decide_cache
from ...train.sources import TrainData
from ...train.streaming import ReportingLoader, SkipUnreadable, skipping_collate
from ...shards.sources import ShardSet, shard_set
from ...shards.tar import SUFFIXES as TAR_SUFFIXES
from ...shards.tar import count_tar

log = logging.getLogger("selfsup")

MIN_CLIP_SECONDS = 0.05


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of similar-length recordings (transformers' ``group_by_length``): each epoch shuffles
    the recordings (leaving out ``N mod batch_size`` random ones), cuts the order into groups of ``group``
    batches, sorts each group by length, splits it into batches and shuffles the batches. Uses torch's global RNG."""

    def __init__(self, lengths: torch.Tensor, batch_size: int, group: int = 50) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.group = group

    def __len__(self) -> int:
        return len(self.lengths) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths))
        order = order[: len(order) - len(order) % self.batch_size]  # the recordings left out: random ones
        batches: list[list[int]] = []
        span = self.batch_size * self.group
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[torch.argsort(self.lengths[chunk], descending=True)].tolist()
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for i in torch.randperm(len(batches)).tolist():
            yield batches[i]


def _check(data: DataConfig) -> tuple[int, int]:
    if data.sample_rate < 1000:
        raise SelfSupError(f"data.sample_rate={data.sample_rate} Hz is too low; use 16000 (the default) or 8000")
    if not MIN_CLIP_SECONDS <= data.clip_seconds <= data.max_seconds:
        raise SelfSupError(f"data.clip_seconds={data.clip_seconds} must be between {MIN_CLIP_SECONDS} and "
                           f"data.max_seconds={data.max_seconds}; e.g. --set data.clip_seconds=2")
    return int(round(data.clip_seconds * data.sample_rate)), int(round(data.max_seconds * data.sample_rate))


def load_audio_data(data: DataConfig, progress: bool = True) -> TrainData:
    """The unlabeled recordings of ``data`` as :class:`TrainData`: decoded in memory, or streamed (tar shards
    always, :func:`load_audio_shards`)."""
    crop, longest = _check(data)
    shards = shard_set(data.path, TAR_SUFFIXES, count_tar, data.strict)
    if shards is not None:
        return load_audio_shards(data, shards, crop, longest)
    files = find_audio_files(data.path)
    seconds = torch.tensor([min(audio_duration(f) or 0.0, data.max_seconds) for f in files])
    need = int(seconds.sum() * data.sample_rate * 4)
    mode = decide_cache(data.cache, need, f"the audio of {len(files)} file(s)", "decoded")
    collate = ClipCollator(crop, random_crop=True)
    encoder_kwargs = {"sample_rate": data.sample_rate}
    clips: Dataset
    streamed = mode != "memory"
    if streamed:
        clips = AudioFileDataset(files, data.sample_rate, max_samples=longest)
        lengths = (seconds * data.sample_rate).long()
    else:
        clips = decode_clips(files, data.sample_rate, strict=data.strict, progress=progress, max_samples=longest)
        lengths = clips.lengths
    lengths = lengths.clamp(max=crop)  # what a batch holds after cropping

    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        workers = {"num_workers": trainer.num_workers, "persistent_workers": trainer.num_workers > 0}
        if world_size > 1:  # Lightning shards a plain shuffled loader across processes
            order = {"batch_size": batch_size, "shuffle": True, "drop_last": True}
        else:
            order = {"batch_sampler": LengthGroupedBatches(lengths, batch_size)}
        if not streamed:
            return DataLoader(clips, collate_fn=collate, **order, **workers)
        return ReportingLoader(SkipUnreadable(clips, (AudioReadError,), lambda index: clips.paths[index]),
                               unit="audio", strict=data.strict, strict_error=lambda path, reason: AudioReadError.of(path, reason),
                               collate_fn=skipping_collate(collate), **order, **workers)

    def examples(count: int, seed: int) -> Iterator[dict[str, torch.Tensor]]:
        """Up to ``count`` clips chosen by ``seed`` (the same in every process), centre-cropped, in batches of 64."""
        order = torch.randperm(len(clips), generator=torch.Generator().manual_seed(seed))[:count].tolist()
        centre = ClipCollator(crop, random_crop=False)
        for start in range(0, len(order), 64):
            batch = []
            for i in order[start : start + 64]:
                try:
                    batch.append(clips[i])
                except AudioReadError:  # a streamed, unreadable file: reported when training meets it
                    continue
            if batch:
                yield centre(batch)

    return TrainData(len(clips), crop, encoder_kwargs, make_loader, pretext_in_loader=False, unit="recordings",
                     examples=examples)



def load_audio_shards(data: DataConfig, shards: ShardSet, crop: int, longest: int) -> TrainData:
    """Recordings streamed from tar shards (``selfsup shard``, or any WebDataset shards of audio files): decoded in
    loader workers, batched as random crops like the file stream (:mod:`selfsup.shards`: shard order per epoch, a
    shuffle buffer, every recording once per epoch across DDP processes and workers). Batches are not grouped by
    length (a shard's lengths are unknown before it is read)."""
    from functools import partial

    from ...shards.dataset import ShardedSamples
    from ...shards.loader import shard_loader
    from ...shards.tar import tar_samples

    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        clips = ShardedSamples(shards, tar_samples, partial(audio_of_sample, sample_rate=data.sample_rate,
                                                            max_samples=longest), (AudioReadError,), batch_size, world_size,
                               buffer=data.shuffle_buffer)
        return shard_loader(clips, ClipCollator(crop, random_crop=True), trainer.num_workers, unit="audio",
                            strict=data.strict, strict_error=lambda path, reason: AudioReadError.of(path, reason))

    return TrainData(shards.total, crop, {"sample_rate": data.sample_rate}, make_loader, pretext_in_loader=False,
                     unit="recordings")
