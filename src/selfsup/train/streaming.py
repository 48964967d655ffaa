"""Streaming training data that meets unreadable files: skip, count and warn — or stop under ``--strict``.

One policy for every modality that reads files while it trains (DESIGN.md §5): a loader worker cannot drop
an index, so :class:`SkipUnreadable` turns an unreadable item into ``None`` plus a note of the file and why;
the collate function built by :func:`skipping_collate` leaves those out of the batch; and
:class:`ReportingLoader`, in the main process, warns once per file, counts them, stops with a one-line error
under ``strict``, and drops a batch left with fewer than :data:`MIN_BATCH` samples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset

from ..errors import SelfSupError

log = logging.getLogger("selfsup")

MIN_BATCH = 2  # a batch needs two samples (views, BatchNorm); one with fewer after skipping is dropped
Skipped = list[tuple[str, str]]  # (path, reason) of the unreadable files met while building a batch


class SkipUnreadable(Dataset):
    """Items of ``dataset`` as ``(sample or None, skipped)``: an item whose reading raises one of ``errors``
    becomes ``None`` with ``[(path_of(index), reason)]``; ``transform`` runs on each readable sample (e.g. a
    per-sample pretext, in the worker)."""

    def __init__(self, dataset: Dataset, errors: tuple[type[BaseException], ...], path_of: Callable[[int], Any],
                 transform: Callable[[Any], Any] | None = None) -> None:
        self.dataset = dataset
        self.errors = errors
        self.path_of = path_of
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Skipped]:
        try:
            sample = self.dataset[index]
        except self.errors as exc:
            path = str(self.path_of(index))
            reason = str(getattr(exc, "reason", "") or exc)
            return None, [(path, reason.removeprefix(f"{path}: "))]
        return (self.transform(sample) if self.transform is not None else sample), []


def skipping_collate(collate: Callable[[list], Any]) -> Callable[[Sequence[tuple[Any, Skipped]]], tuple[Any, Skipped, int]]:
    """A collate function for :class:`SkipUnreadable` items: ``(collate(readable samples) or None, skipped,
    number of readable samples)``."""

    def collate_readable(items: Sequence[tuple[Any, Skipped]]) -> tuple[Any, Skipped, int]:
        samples = [sample for sample, _ in items if sample is not None]
        skipped = [entry for _, entries in items for entry in entries]
        return (collate(samples) if len(samples) >= MIN_BATCH else None), skipped, len(samples)

    return collate_readable


class ReportingLoader(DataLoader):
    """A DataLoader over :class:`SkipUnreadable` items (collated by :func:`skipping_collate`) that reports the
    unreadable files: a warning per new file and a count at the end of each epoch that met some, or the
    ``strict_error(path, reason)`` one-liner at the first one under ``strict``. ``skipped`` maps every
    unreadable path met so far to its reason."""

    def __init__(self, dataset: Dataset, *, unit: str, strict: bool,
                 strict_error: Callable[[str, str], SelfSupError], **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.unit = unit
        self.strict = strict
        self.strict_error = strict_error
        self.skipped: dict[str, str] = {}

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        new = 0
        for batch, skipped, _ in super().__iter__():
            for path, reason in skipped:
                if self.strict:
                    raise self.strict_error(path, reason)
                if path not in self.skipped:
                    self.skipped[path] = reason
                    log.warning("skipping unreadable %s %s (%s)", self.unit, path, reason)
                    new += 1
            if batch is not None:
                yield batch
        if new:
            log.warning("skipped %d unreadable %s(s) of %d", len(self.skipped), self.unit, len(self.dataset))
