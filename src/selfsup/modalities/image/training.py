"""The image training data path: where decoded images live (``data.cache``) and the DataLoader that feeds the engine.

Two paths, one set of augmentation operations (``pretext/``):

- ``memory``: every image is decoded once into one uint8 tensor [N, 3, S, S]; the loader yields uint8
  batches and :class:`~selfsup.train.module.PretrainModule` applies the method's pretext to the whole batch
  on the training device (per-sample random parameters, vectorised).
- ``stream``: only the file list is held; each item is decoded from disk (the same ``read_image``, so the
  same [3, S, S] image as the memory path: shorter side resized to S, centre crop) and the method's pretext
  is applied to that ONE sample (``pretext(image[None], None)``, on CPU, in a loader worker when
  ``num_workers > 0``). :func:`stack_copy_major` collates the per-sample dicts so the batch is laid out
  exactly as the batched pretext lays it out; the engine skips its pretext call for such dict batches.
  An unreadable file is skipped, counted and warned about (``--strict`` stops), as for every modality
  (``train/streaming.py``).
- ``auto``: ``memory`` when the decoded cache fits comfortably in RAM (below
  :data:`~selfsup.train.data.MEMORY_FRACTION` of the memory available now), else ``stream``.

PERF: the memory path with on-device batched augmentation is the fastest wherever the data fits: decoding
happens once and one vectorised call augments a whole batch. Streaming decodes and augments every sample
every epoch on the CPU; with few cores (e.g. 2) its workers compete with the training step for them. Use it
for data larger than RAM, with ``--num-workers`` near the number of spare cores; on a GPU machine with many
cores it keeps the accelerator fed. Each worker draws its augmentations from its own seed
(the DataLoader's per-worker ``base_seed + worker_id``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from ...config import DataConfig, TrainerConfig
from ...errors import SelfSupError
from ...methods.base import Pretext
from ...train.data import check_cache_mode, check_fits, decide_cache
from ...train.sources import TrainData
from ...train.streaming import ReportingLoader, SkipUnreadable, skipping_collate
from ...shards.sources import ShardSet, shard_set
from .readers import (
    ImageFileDataset,
    ImageTensorDataset,
    decode_unlabeled,
    find_images,
    open_unlabeled,
    image_of_sample,
    unreadable_error,
)

Batch = dict[str, torch.Tensor]
VIEW_BYTES = 1 + 2 * 4  # per pixel of a batch: the uint8 image plus two float32 views of it (the fewest a method makes)


def cache_bytes(n_images: int, image_size: int) -> int:
    """Size of the decoded uint8 cache: n × 3 × S × S bytes."""
    return n_images * 3 * image_size * image_size


def choose_cache(mode: str, n_images: int, image_size: int, memory_budget: int | None = None) -> str:
    """``memory`` or ``stream`` for ``mode`` (``auto`` decides by the size of the decoded images)."""
    return decide_cache(mode, cache_bytes(n_images, image_size), f"{n_images} images at {image_size} px",
                        "decoded", memory_budget)


def load_train_data(data: DataConfig, progress: bool = True,
                    memory_budget: int | None = None) -> ImageTensorDataset | ImageFileDataset:
    """The unlabeled training images of ``data``: decoded into memory or opened for streaming (``data.cache``)."""
    check_cache_mode(data.cache)
    files = find_images(data.path)
    if choose_cache(data.cache, len(files), data.image_size, memory_budget) == "memory":
        return decode_unlabeled(files, data.image_size, strict=data.strict, progress=progress)
    return open_unlabeled(files, data.image_size, strict=data.strict)


def stack_copy_major(samples: Sequence[Batch]) -> Batch:
    """Collate per-sample pretext outputs (each tensor [k, ...]) into the batched layout [k·B, ...].

    Row ``j·B + i`` holds copy ``j`` of sample ``i``, exactly as the batched pretext lays out its outputs
    (e.g. the four rotations of every image grouped by rotation).
    """
    batch = {}
    for key, value in samples[0].items():
        if value.ndim == 0:
            raise ValueError(f"pretext output {key!r} is a scalar; every output needs a leading copy dimension")
        batch[key] = torch.stack([sample[key] for sample in samples], dim=1).flatten(0, 1)  # [k, B, ...] -> [k·B, ...]
    return batch


def pretext_dataset(images: ImageFileDataset, pretext: Pretext) -> SkipUnreadable:
    """Each image read from disk and pretexted alone (in a loader worker, on CPU); unreadable ones -> None."""
    return SkipUnreadable(images, (ValueError,), lambda index: images.paths[index],
                          transform=lambda image: pretext(image[None], None))


def train_loader(dataset: ImageTensorDataset | ImageFileDataset, pretext: Pretext, batch_size: int,
                 trainer: TrainerConfig, strict: bool = False) -> DataLoader:
    """The shuffled training loader: uint8 batches for the memory path; pretexted, copy-major dict batches
    (a :class:`~selfsup.train.streaming.ReportingLoader`) for a streamed :class:`ImageFileDataset`."""
    workers = trainer.num_workers
    common = {"batch_size": batch_size, "shuffle": True, "drop_last": True, "num_workers": workers,
              "persistent_workers": workers > 0}
    if not isinstance(dataset, ImageFileDataset):
        return DataLoader(dataset, **common)
    # the pretext is a closure: workers inherit it by fork (Python 3.14 defaults to forkserver on Linux)
    context = "fork" if workers > 0 and "fork" in multiprocessing.get_all_start_methods() else None
    if workers > 0 and context is None:
        raise SelfSupError("--cache stream with --num-workers > 0 needs fork-started workers, which this platform "
                           "lacks; use --num-workers 0 or --cache memory")
    pin = torch.cuda.is_available() and trainer.accelerator != "cpu"
    return ReportingLoader(pretext_dataset(dataset, pretext), unit="image", strict=strict,
                           strict_error=lambda path, reason: unreadable_error(f"{path}: {reason}"),
                           collate_fn=skipping_collate(stack_copy_major), pin_memory=pin,
                           multiprocessing_context=context, **common)


def load_image_data(data: DataConfig, progress: bool = True) -> TrainData:
    """The unlabeled images of ``data`` as :class:`TrainData` (memory cache or stream, see the module doc; tar
    shards are streamed, :func:`load_image_shards`)."""
    from ...shards.tar import SUFFIXES, count_tar

    shards = shard_set(data.path, SUFFIXES, count_tar, data.strict)
    if shards is not None:
        return load_image_shards(data, shards)
    dataset = load_train_data(data, progress=progress)

    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        check_fits(batch_size * VIEW_BYTES * cache_bytes(1, data.image_size), f"one batch of {batch_size} images at "
                   f"{data.image_size} px (uint8 + two float32 views each)", "lower --batch-size or --image-size")
        return train_loader(dataset, pretext, batch_size, trainer, data.strict)

    return TrainData(len(dataset), data.image_size, {"image_size": data.image_size}, make_loader,
                     pretext_in_loader=isinstance(dataset, ImageFileDataset), unit="images")


def load_image_shards(data: DataConfig, shards: ShardSet) -> TrainData:
    """Images streamed from tar shards (``selfsup shard``, or any WebDataset shards): each decoded and pretexted
    alone in a loader worker, as the ``stream`` path does with files (:mod:`selfsup.shards`: shard order per epoch,
    a shuffle buffer, every sample once per epoch across DDP processes and workers)."""
    from functools import partial

    from ...shards.dataset import ShardedSamples
    from ...shards.loader import shard_loader
    from ...shards.tar import tar_samples

    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        check_fits(batch_size * VIEW_BYTES * cache_bytes(1, data.image_size), f"one batch of {batch_size} images at "
                   f"{data.image_size} px (uint8 + two float32 views each)", "lower --batch-size or --image-size")
        samples = ShardedSamples(shards, tar_samples, partial(image_of_sample, size=data.image_size), (ValueError,),
                                 batch_size, world_size, buffer=data.shuffle_buffer,
                                 transform=lambda image: pretext(image[None], None))
        return shard_loader(samples, stack_copy_major, trainer.num_workers, unit="image", strict=data.strict,
                            strict_error=lambda path, reason: unreadable_error(f"{path}: {reason}"), fork=True,
                            pin_memory=torch.cuda.is_available() and trainer.accelerator != "cpu")

    return TrainData(shards.total, data.image_size, {"image_size": data.image_size}, make_loader,
                     pretext_in_loader=True, unit="images")
