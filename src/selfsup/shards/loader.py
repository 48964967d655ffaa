"""The training loader over :class:`~selfsup.shards.dataset.ShardedSamples`, for any modality."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import Sampler

from ..errors import SelfSupError
from ..train.streaming import ReportingLoader, skipping_collate
from .dataset import ShardedSamples


class _EpochSampler(Sampler[None]):
    """What an iterable loader shows as its sampler (it draws no indices; the dataset orders itself): the
    ``set_epoch`` Lightning calls at the start of every epoch, resumed ones included, before the epoch's workers
    start, handing the epoch to the dataset."""

    def __init__(self, dataset: ShardedSamples) -> None:
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[None]:
        while True:
            yield None


def shard_loader(dataset: ShardedSamples, collate: Callable[[list], Any], num_workers: int, *, unit: str,
                 strict: bool, strict_error: Callable[[str, str], SelfSupError], fork: bool = False,
                 pin_memory: bool = False) -> ReportingLoader:
    """Batches of ``dataset``'s samples collated by ``collate``, unreadable samples and broken shards reported
    (:class:`~selfsup.train.streaming.ReportingLoader`). Workers are started anew each epoch, so they read that
    epoch's share; ``fork``: the dataset holds closures (a per-sample pretext), which forked workers inherit."""
    context = None
    if num_workers > 0 and fork:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise SelfSupError("sharded DATA with --num-workers > 0 needs fork-started workers, which this platform "
                               "lacks; use --num-workers 0")
        context = "fork"
    loader = ReportingLoader(dataset, unit=unit, strict=strict, strict_error=strict_error,
                             collate_fn=skipping_collate(collate), batch_size=dataset.batch_size, drop_last=False,
                             num_workers=num_workers, persistent_workers=False, multiprocessing_context=context,
                             pin_memory=pin_memory)
    object.__setattr__(loader, "sampler", _EpochSampler(dataset))  # DataLoader forbids setting it after __init__
    return loader
