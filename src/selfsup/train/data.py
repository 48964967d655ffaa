"""The training data path: where decoded images live (``data.cache``) and the DataLoader that feeds the engine.

Two paths, one set of augmentation operations (``pretext/views.py``):

- ``memory``: every image is decoded once into one uint8 tensor [N, 3, S, S]; the loader yields uint8
  batches and :class:`~selfsup.train.module.PretrainModule` applies the method's pretext to the whole batch
  on the training device (per-sample random parameters, vectorised).
- ``stream``: only the file list is held; each item is decoded from disk (the same ``read_image``, so the
  same [3, S, S] image as the memory path: shorter side resized to S, centre crop) and the method's pretext
  is applied to that ONE sample (``pretext(image[None], None)``, on CPU, in a loader worker when
  ``num_workers > 0``). :func:`stack_copy_major` collates the per-sample dicts so the batch is laid out
  exactly as the batched pretext lays it out; the engine skips its pretext call for such dict batches.
- ``auto``: ``memory`` when the decoded cache fits comfortably in RAM (below :data:`MEMORY_FRACTION` of the
  memory available now), else ``stream``.

PERF: the memory path with on-device batched augmentation is the fastest wherever the data fits: decoding
happens once and one vectorised call augments a whole batch. Streaming decodes and augments every sample
every epoch on the CPU; with few cores (e.g. 2) its workers compete with the training step for them. Use it
for data larger than RAM, with ``--num-workers`` near the number of spare cores; on a GPU machine with many
cores it keeps the accelerator fed. Each worker draws its augmentations from its own seed
(the DataLoader's per-worker ``base_seed + worker_id``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ..config import CACHE_MODES, DataConfig, TrainerConfig
from ..data.images import (
    ImageFileDataset,
    ImageTensorDataset,
    decode_unlabeled,
    find_images,
    open_unlabeled,
    unreadable_error,
)
from ..errors import SelfSupError, did_you_mean
from ..methods.base import Pretext
from .sources import TrainData

log = logging.getLogger("selfsup")

MEMORY_FRACTION = 0.25  # auto: cache in memory when the decoded images take less than this share of available RAM
VIEW_BYTES = 1 + 2 * 4  # a uint8 image in the batch plus two float32 views of it (the fewest a method makes)
MAX_REPLACEMENTS = 32  # random draws to replace an unreadable file before falling back to a known-good one

Batch = dict[str, torch.Tensor]
Skipped = list[tuple[str, str]]  # (path, reason) of unreadable files met while building a batch


# --------------------------------------------------------------------------- the cache decision


def _read_bytes(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes of physical memory available now, or None when unknown.

    Linux: ``MemAvailable`` (free + reclaimable page cache), capped by a cgroup v2 memory limit (containers);
    elsewhere the free pages from ``os.sysconf``.
    """
    available = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    limit, used = _read_bytes("/sys/fs/cgroup/memory.max"), _read_bytes("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        available = min(available, max(0, limit - used))
    return available


def cache_bytes(n_images: int, image_size: int) -> int:
    """Size of the decoded uint8 cache: n × 3 × S × S bytes."""
    return n_images * 3 * image_size * image_size


def check_fits(need: int, what: str, fix: str) -> None:
    """One line when ``need`` bytes (of ``what``) exceed the memory available now; says the size and ``fix``."""
    available = available_memory()
    if available is not None and need > available:
        raise SelfSupError(f"{what} would take {_size(need)}, more than the {_size(available)} of memory "
                           f"available; {fix}")


def check_image_memory(data: DataConfig, n_images: int, batch_size: int | None = None) -> None:
    """Before any image is decoded: one batch (uint8 images + two float32 views each) must fit in memory
    (the whole decoded cache is checked by :func:`decide_cache`)."""
    size = data.image_size
    if batch_size:
        batch = max(1, min(batch_size, n_images))
        check_fits(batch * VIEW_BYTES * cache_bytes(1, size), f"one batch of {batch} images at {size} px (uint8 + "
                   "two float32 views each)", "lower --batch-size or --image-size")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def check_cache_mode(mode: str) -> str:
    if mode not in CACHE_MODES:
        raise SelfSupError(f"data.cache={mode!r} is not a cache mode{did_you_mean(str(mode), CACHE_MODES)}; "
                           f"use one of {', '.join(CACHE_MODES)}")
    return mode


def choose_cache(mode: str, n_images: int, image_size: int, memory_budget: int | None = None) -> str:
    """``memory`` or ``stream`` for ``mode`` (``auto`` decides by the size of the decoded images)."""
    return decide_cache(mode, cache_bytes(n_images, image_size), f"{n_images} images at {image_size} px",
                        "decoded", memory_budget)


def decide_cache(mode: str, need: int, what: str, form: str, memory_budget: int | None = None) -> str:
    """``memory`` or ``stream`` for ``mode``: ``auto`` keeps the data in memory when its ``need`` bytes (in
    ``form``: decoded, tokenized) fit in ``memory_budget`` (default :data:`MEMORY_FRACTION` of
    :func:`available_memory`), and logs which and why; a forced ``memory`` that cannot fit at all stops with
    one line giving the size it needs."""
    if check_cache_mode(mode) == "memory":  # forced: it must fit in all the memory there is
        check_fits(need, f"data.cache=memory: {what} ({form})",
                   "use --cache stream, or auto (which streams what does not fit), or smaller settings")
    if mode != "auto":
        return mode
    if memory_budget is None:
        available = available_memory()
        if available is None:
            log.info("data.cache=auto: available memory unknown; keeping %s (%s %s) in memory", what, _size(need), form)
            return "memory"
        memory_budget = int(MEMORY_FRACTION * available)
        budget = f"{_size(memory_budget)} ({MEMORY_FRACTION:.0%} of the {_size(available)} of memory available)"
    else:
        budget = f"the memory budget of {_size(memory_budget)}"
    if need < memory_budget:
        log.info("data.cache=auto: %s take %s %s, within %s: keeping them in memory", what, _size(need), form, budget)
        return "memory"
    log.warning("data.cache=auto: %s would take %s %s, more than %s: streaming from disk "
                "(slower; use --num-workers to read in parallel, or --cache memory to override)",
                what, _size(need), form, budget)
    return "stream"


def load_train_data(data: DataConfig, progress: bool = True, memory_budget: int | None = None,
                    batch_size: int | None = None) -> ImageTensorDataset | ImageFileDataset:
    """The unlabeled training images of ``data``: decoded into memory or opened for streaming (``data.cache``).
    With ``batch_size``, stops with one line before decoding when a batch (or a forced memory cache) cannot fit."""
    check_cache_mode(data.cache)
    files = find_images(data.path)
    check_image_memory(data, len(files), batch_size)
    if choose_cache(data.cache, len(files), data.image_size, memory_budget) == "memory":
        return decode_unlabeled(files, data.image_size, strict=data.strict, progress=progress)
    return open_unlabeled(files, data.image_size, strict=data.strict)


# --------------------------------------------------------------------------- the per-sample path


class PretextDataset(Dataset):
    """Reads one image and applies the pretext to it alone (in a loader worker, on CPU).

    A worker cannot drop an index, so an unreadable file is replaced by another, random sample; the files
    replaced travel with the batch so that :class:`StreamLoader` (in the main process) warns about and
    counts them, or stops with ``strict``. ``skipped`` holds the unreadable paths met so far (main process).
    """

    def __init__(self, images: ImageFileDataset, pretext: Pretext, strict: bool = False) -> None:
        self.images = images
        self.pretext = pretext
        self.strict = strict
        self.skipped: dict[str, str] = {}  # path -> reason, filled by StreamLoader
        self._bad: set[int] = set()  # per process: unreadable indices already reported

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Batch, Skipped]:
        skipped: Skipped = []
        for _ in range(MAX_REPLACEMENTS):
            if index not in self._bad:
                try:
                    image = self.images[index]
                except ValueError as exc:
                    self._bad.add(index)
                    skipped.append((str(self.images.paths[index]), str(exc)))
                else:
                    return self.pretext(image[None], None), skipped
            index = int(torch.randint(len(self.images), ()))
        return self.pretext(self.images[self.images.readable][None], None), skipped


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


def _collate(items: Sequence[tuple[Batch, Skipped]]) -> tuple[Batch, Skipped]:
    return stack_copy_major([sample for sample, _ in items]), [entry for _, entries in items for entry in entries]


class StreamLoader(DataLoader):
    """DataLoader over a :class:`PretextDataset`: yields copy-major dict batches and reports unreadable files."""

    dataset: PretextDataset

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        dataset, new = self.dataset, 0
        for batch, skipped in super().__iter__():
            for path, reason in skipped:
                if dataset.strict:
                    raise unreadable_error(reason)
                if path not in dataset.skipped:
                    dataset.skipped[path] = reason
                    log.warning("skipping unreadable image %s", path)
                    new += 1
            yield batch
        if new:
            log.warning("skipped %d unreadable image(s) of %d", len(dataset.skipped), len(dataset))


def train_loader(dataset: ImageTensorDataset | ImageFileDataset, pretext: Pretext, batch_size: int,
                 trainer: TrainerConfig, strict: bool = False) -> DataLoader:
    """The shuffled training loader: uint8 batches for the memory path; pretexted, copy-major dict batches
    (:class:`StreamLoader`) for a streamed :class:`ImageFileDataset`."""
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
    return StreamLoader(PretextDataset(dataset, pretext, strict), collate_fn=_collate, pin_memory=pin,
                        multiprocessing_context=context, **common)


def load_image_data(data: DataConfig, progress: bool = True, batch_size: int | None = None) -> TrainData:
    """The unlabeled images of ``data`` as :class:`TrainData` (memory cache or stream, see the module doc)."""
    dataset = load_train_data(data, progress=progress, batch_size=batch_size)

    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        return train_loader(dataset, pretext, batch_size, trainer, data.strict)

    return TrainData(len(dataset), data.image_size, {"image_size": data.image_size}, make_loader,
                     pretext_in_loader=isinstance(dataset, ImageFileDataset), unit="images")
