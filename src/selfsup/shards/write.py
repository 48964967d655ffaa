"""``selfsup shard``: a modality's samples -> shards of a bounded size in one folder, with ``shards.json``.

A modality gives a :class:`ShardSource` (:meth:`~selfsup.modalities.base.Modality.shard_source`): the format
(``tar``: WebDataset samples of the original file bytes, in a fixed shuffled order; ``table``: parquet rows), the samples in order, how many,
and the class names when the data is labelled (a class folder per image or recording, a ``label`` column).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SelfSupError
from .sources import INDEX_FILE, write_index

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20,
         "GIB": 2**30, "TIB": 2**40}


@dataclass
class ShardSource:
    """What a modality shards: ``format`` ``tar`` or ``table``, the ``samples`` (WebDataset dicts or rows),
    their number (for the progress bar, None when unknown) and the class names of labelled data (labels of tar
    samples index them; a table source may fill the list while its rows are read)."""

    format: str
    samples: Iterable[dict[str, Any]]
    count: int | None
    classes: Sequence[str] | None = None


def parse_size(text: str) -> int:
    """``512MB``, ``1GiB``, ``100000`` -> bytes; one line for anything else."""
    value = str(text).strip().upper().replace(" ", "")
    number = value.rstrip("KMGTIB")
    unit = value[len(number):]
    try:
        size = int(float(number) * UNITS[unit])
    except (ValueError, KeyError):
        raise SelfSupError(f"--shard-size {text}: expected a size such as 512MB, 1GB or 64MiB") from None
    if size < UNITS["KB"]:
        raise SelfSupError(f"--shard-size {text}: a shard needs at least 1KB; e.g. 512MB")
    return size


def folder_labels(root: str | Path, files: Sequence[Path]) -> tuple[list[str], list[int]] | None:
    """Class names and each file's label when every file lies below a subfolder of ``root`` (one folder per class,
    at any depth inside it, at least two classes: what labelled readers read); else None (unlabelled)."""
    root = Path(root)
    if not root.is_dir() or not all(f.is_relative_to(root) and len(f.relative_to(root).parts) > 1 for f in files):
        return None
    names = [f.relative_to(root).parts[0] for f in files]
    classes = sorted(set(names))
    if len(classes) < 2:
        return None
    lookup = {name: i for i, name in enumerate(classes)}
    return classes, [lookup[name] for name in names]


def write_shards(source: ShardSource, out: str | Path, max_bytes: int, info: dict[str, Any],
                 progress: bool = True) -> dict[str, Any]:
    """Write ``source``'s samples into ``out`` (``train-0000.tar`` or ``.parquet``, ...) and ``shards.json``;
    returns a summary: folder, shards, samples, classes."""
    from tqdm.auto import tqdm

    from .table import TableShards
    from .tar import TarShards

    folder = Path(out).expanduser()
    if folder.exists() and any(folder.iterdir()):
        raise SelfSupError(f"{folder}: the --out folder is not empty; give a new folder for the shards")
    folder.mkdir(parents=True, exist_ok=True)
    writer = TarShards(str(folder), max_bytes) if source.format == "tar" else TableShards(str(folder), max_bytes)
    try:
        for sample in tqdm(source.samples, total=source.count, unit=" samples", desc="sharding", disable=not progress):
            writer.write(sample)
    finally:
        writer.close()
    if not writer.counts:
        raise SelfSupError(f"{info.get('source', 'DATA')}: nothing to shard (no samples found); check DATA and --modality")
    names = sorted(writer.counts)
    classes = sorted(set(source.classes)) if source.classes else None  # a table source collects them as it goes
    write_index(str(folder), names, [writer.counts[n] for n in names], classes, info)
    return {"folder": str(folder), "shards": len(names), "samples": sum(writer.counts.values()),
            "classes": classes, "index": str(folder / INDEX_FILE)}


def file_source(data: str | Path, files: Sequence[Path]) -> ShardSource:
    """Tar samples of ``files`` (found under ``data`` by a modality's reader): each file's bytes as they are
    under its extension, its path (relative to the ``data`` folder) as ``path`` and, when every file lies in a
    class folder, its class index as ``cls``."""
    labels = folder_labels(data, files)
    root = Path(data)
    order = list(range(len(files)))
    random.Random(0).shuffle(order)  # classes and sources mixed in every shard (sorted files group them)

    def samples() -> Iterable[dict[str, Any]]:
        for i in order:
            file = files[i]
            path = file.relative_to(root) if root.is_dir() and file.is_relative_to(root) else file
            sample = {"__key__": f"{i:09d}", file.suffix.lower().lstrip("."): file.read_bytes(), "path": str(path)}
            if labels is not None:
                sample["cls"] = str(labels[1][i])
            yield sample

    return ShardSource("tar", samples(), len(files), labels[0] if labels else None)
