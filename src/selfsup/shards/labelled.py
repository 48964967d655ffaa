"""Every sample of a shard set in order, with its label: what ``evaluate`` and ``embed`` read from shards (labelled
splits and embedded data are held in memory, as for folders)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ..errors import SelfSupError
from .sources import ShardSet, bad_shard_error

log = logging.getLogger("selfsup")


def shard_items(shards: ShardSet, read: Callable[[str], Iterator[Any]], strict: bool) -> Iterator[tuple[str, Any]]:
    """``(url, raw sample)`` of every shard in order; a shard breaking off is warned about (its samples before the
    damage kept), or stops under ``strict``."""
    for url in shards.urls:
        try:
            for raw in read(url):
                yield url, raw
        except Exception as exc:  # noqa: BLE001  tarfile / pyarrow / OS errors of a damaged shard
            if strict:
                raise bad_shard_error(url, str(exc)) from None
            log.warning("skipping the rest of bad shard %s (%s)", url, exc)


def streamed(data: str, suffixes: Sequence[str], count: Callable[[str], int], read: Callable[[str], Iterator[Any]],
             strict: bool, pattern_only: Sequence[str] = ()) -> tuple[Iterator[tuple[str, Any]], int] | None:
    """``(url, raw sample)`` of every shard of DATA in order, read as they are consumed (what ``embed`` streams),
    and how many samples the shards hold; None when ``data`` is not shards."""
    from .sources import shard_set

    shards = shard_set(str(data), suffixes, count, strict, pattern_only)
    return None if shards is None else (shard_items(shards, read, strict), shards.total)


def reference(url: str, raw: dict[str, Any]) -> str:
    """How a sample is named: the path ``selfsup shard`` stored, else ``url:key``."""
    path = raw.get("path")
    if path is not None:
        return path.decode() if isinstance(path, bytes) else str(path)
    return f"{url}:{raw.get('__key__', '?')}"


def label_name(raw: dict[str, Any], classes: Sequence[str] | None) -> str | None:
    """A sample's class name: a tar sample's ``cls`` (an index into ``classes`` from ``shards.json``, or the name
    itself without one), a row's ``label``; None when it has none."""
    if "cls" in raw:
        value = raw["cls"].decode() if isinstance(raw["cls"], bytes) else str(raw["cls"])
        return classes[int(value)] if classes and value.strip().isdigit() else value.strip()
    label = raw.get("label")
    return None if label is None else str(label)


def label_indices(names: Sequence[str | None], classes: Sequence[str] | None, where: str) -> tuple[torch.Tensor, list[str]]:
    """Labels [N] indexing ``classes`` (the training split's, when given; else the sorted names): one line for a
    sample without a label or with a class the training split lacks."""
    if any(name is None for name in names):
        raise SelfSupError(f"{where}: the shards hold samples without a label; shard a labelled folder (one subfolder "
                           "per class) or a file with a label column")
    found = sorted(set(names))  # type: ignore[arg-type]
    order = list(classes) if classes is not None else found
    unknown = sorted(set(found) - set(order))
    if unknown:
        raise SelfSupError(f"{where}: class(es) {', '.join(unknown)} do not appear in the training set; use the same "
                           "class names in both")
    lookup = {name: i for i, name in enumerate(order)}
    return torch.tensor([lookup[name] for name in names], dtype=torch.long), order  # type: ignore[index]


def decode_all(data: str, suffixes: Sequence[str], count: Callable[[str], int], read: Callable[[str], Iterator[Any]],
               decode: Callable[[Any], Any], errors: tuple[type[BaseException], ...], strict: bool,
               strict_error: Callable[[BaseException], SelfSupError], unit: str
               ) -> tuple[list[Any], list[str], list[str | None]] | None:
    """Every sample of shard DATA decoded, with its reference and class name; None when ``data`` is not shards.
    A sample that does not decode (``errors``) is skipped with a warning, ``strict`` stops with ``strict_error``."""
    from .sources import shard_set

    shards = shard_set(str(data), suffixes, count, strict)
    if shards is None:
        return None
    samples, references, names = [], [], []
    for url, raw in shard_items(shards, read, strict):
        try:
            samples.append(decode(raw))
        except errors as exc:
            if strict:
                raise strict_error(exc) from None
            log.warning("skipping unreadable %s (%s)", unit, exc)
            continue
        references.append(reference(url, raw))
        names.append(label_name(raw, shards.classes))
    if not samples:
        raise SelfSupError(f"{data}: no readable {unit} in the shards; check them")
    return samples, references, names
