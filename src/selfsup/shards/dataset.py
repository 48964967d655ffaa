"""The ``IterableDataset`` over shards that every sharded modality trains from.

Each epoch (set by the engine through :meth:`ShardedSamples.set_epoch`, which the training module calls with
Lightning's epoch, so a resumed run continues with its epoch's order) a worker reads its pieces of shards
(:func:`~selfsup.shards.plan.worker_pieces`), passes the raw samples through a shuffle buffer and yields
``(decoded sample or None, skipped)`` items, the form :class:`~selfsup.train.streaming.ReportingLoader` reports
unreadable samples from: a sample that does not decode, or a shard that breaks off while it is read, is left out
with a warning naming it (``--strict`` stops).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .. import distributed
from .plan import per_process, worker_pieces
from .sources import ShardSet

Skipped = list[tuple[str, str]]


class ShardedSamples(IterableDataset):
    """The samples of ``shards`` for one process per epoch: ``read(url)`` yields a shard's raw samples in order,
    ``decode(raw)`` makes a training sample of one (raising one of ``errors`` when it cannot), ``transform`` (a
    per-sample pretext) runs on each decoded sample. ``buffer`` samples are shuffled at a time (``data.shuffle_buffer``;
    0 or 1: the epoch's shard order with each shard's samples in their own order). ``len()`` is the samples per process per epoch (the same in every process)."""

    def __init__(self, shards: ShardSet, read: Callable[[str], Iterator[Any]], decode: Callable[[Any], Any],
                 errors: tuple[type[BaseException], ...], batch_size: int, world_size: int, buffer: int = 1000,
                 seed: int | None = None, transform: Callable[[Any], Any] | None = None) -> None:
        self.shards = shards
        self.read, self.decode, self.errors, self.transform = read, decode, errors, transform
        self.batch_size, self.world_size, self.buffer = batch_size, world_size, buffer
        self.seed = torch.initial_seed() % 2**31 if seed is None else seed  # the same in every process of a run
        self.epoch, self.rank = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch``'s share (called in the main process before the epoch's workers start)."""
        self.epoch, self.rank = epoch, distributed.rank()

    def __len__(self) -> int:
        return per_process(self.shards.total, self.world_size, self.batch_size)

    def _raw(self, worker: int, workers: int) -> Iterator[tuple[str, Any]]:
        for piece in worker_pieces(self.shards.counts, self.epoch, self.seed, self.world_size, self.rank, workers,
                                   worker, self.batch_size):
            url = self.shards.urls[piece.shard]
            position = 0
            try:
                for raw in self.read(url):
                    if position >= piece.stop:
                        break
                    if position >= piece.start:
                        yield url, raw
                    position += 1
            except Exception as exc:  # noqa: BLE001  a shard breaking off (truncated tar, damaged parquet)
                # its missing samples still count as (skipped) items: every process keeps its number of batches
                for missing in range(max(position, piece.start), piece.stop):
                    yield url, exc if missing == max(position, piece.start) else None

    def _shuffled(self, items: Iterator[tuple[str, Any]], rng: random.Random) -> Iterator[tuple[str, Any]]:
        """WebDataset's shuffle buffer: each item swapped out of a buffer of ``buffer`` at a random slot."""
        if self.buffer <= 1:
            yield from items
            return
        pool: list[tuple[str, Any]] = []
        for item in items:
            if len(pool) < self.buffer:
                pool.append(item)
                continue
            slot = rng.randrange(len(pool))
            pool[slot], item = item, pool[slot]
            yield item
        rng.shuffle(pool)
        yield from pool

    def __iter__(self) -> Iterator[tuple[Any, Skipped]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = random.Random(hash((self.seed, self.epoch, self.rank, worker)))
        for url, raw in self._shuffled(self._raw(worker, workers), rng):
            if raw is None or isinstance(raw, Exception):
                yield None, ([(url, f"shard breaks off: {raw}")] if raw is not None else [])
                continue
            try:
                sample = self.decode(raw)
            except self.errors as exc:
                key = raw.get("__key__", "?") if isinstance(raw, dict) else "?"
                yield None, [(f"{url}:{key}", str(getattr(exc, "reason", "") or exc))]
                continue
            yield (self.transform(sample) if self.transform is not None else sample), []
