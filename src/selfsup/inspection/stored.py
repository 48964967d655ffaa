"""The files ``selfsup inspect`` reads, from a folder or a file list as the modality finds them, or from WebDataset
tar shards (each sample's media member): one :class:`StoredFile` each, with its bytes, its class and the line
``--write-clean`` keeps. The modality decodes the bytes; nothing here knows what they hold."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .items import folder_labels


@dataclass
class StoredFile:
    """One file: ``id`` (its path, or the path ``selfsup shard`` stored / ``URL:KEY`` in a shard), ``name`` (what
    errors call it, with the extension a decoder may need), ``label`` (a shard sample's class; files get theirs from class folders),
    ``clean`` (the line ``--write-clean`` writes to keep it; None inside a shard: a shard sample cannot be listed as
    DATA)."""

    id: str
    name: str
    clean: str | None
    label: str | None = None
    path: Path | None = None
    content: bytes | None = None

    def read(self) -> bytes:
        """The file's bytes (read now for a file; kept from the shard for a shard sample)."""
        return self.content if self.content is not None else self.path.read_bytes()  # type: ignore[union-attr]

    def opened(self, content: bytes) -> BinaryIO:
        """``content`` (what :meth:`read` gave) as a binary file named :attr:`name`: decoders that look at the name
        see the extension, and their errors name the file."""
        handle = io.BytesIO(content)
        handle.name = self.name
        return handle


@dataclass
class StoredFiles:
    """What DATA holds: ``total`` files, read lazily by iterating ``files``."""

    files: Iterator[StoredFile]
    total: int
    root: Path | None  # the folder whose subfolders are classes (files), None for shards

    def labels(self, kept: Sequence[StoredFile]) -> list[str] | None:
        """The class of each of ``kept``: their class subfolders under DATA, or the shard samples' classes; None
        when not every file has one."""
        if self.root is None:
            names = [f.label for f in kept]
            return names if kept and all(n is not None for n in names) else None  # type: ignore[return-value]
        return folder_labels(self.root, [f.path for f in kept])  # type: ignore[misc]


def stored_files(data: str | Path, find_files: Callable[[str | Path], list[Path]],
                 extensions: Sequence[str]) -> StoredFiles:
    """The files of DATA: tar shards (pattern, glob, folder of shards, URL; the first member of each sample ending in
    one of ``extensions``), else ``find_files(data)``."""
    from ..shards.labelled import label_name, reference, shard_items
    from ..shards.sources import shard_set
    from ..shards.tar import SUFFIXES, count_tar, tar_samples

    shards = shard_set(str(data), SUFFIXES, count_tar, strict=False)
    if shards is None:
        paths = find_files(data)
        return StoredFiles((StoredFile(str(p), str(p), str(p.resolve()), path=p) for p in paths), len(paths),
                           Path(data).expanduser())

    def from_shards() -> Iterator[StoredFile]:
        for url, raw in shard_items(shards, tar_samples, strict=False):
            media = next((key for key in raw if f".{key.lower()}" in extensions), None)
            name = reference(url, raw)
            if media is None:
                continue  # a sample without such a file (e.g. only a label): not one of the modality's items
            yield StoredFile(name, f"{name}.{media}" if not name.lower().endswith(media.lower()) else name, None,
                             label_name(raw, shards.classes), content=raw[media])

    return StoredFiles(from_shards(), shards.total, None)
