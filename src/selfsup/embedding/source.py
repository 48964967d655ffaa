"""What ``selfsup embed`` streams (:class:`EmbedSource`, from ``Modality.embed_source``) and how (:class:`EmbedOptions`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import SelfSupError

DEFAULT_PART_ROWS = 100_000


@dataclass
class EmbedSource:
    """A modality's inputs for ``selfsup embed``.

    ``items``: the raw inputs in output order (a path, a shard sample, a text, a history), cheap to pass over: a
    resumed run skips the finished parts' items without decoding them. ``decode(raw)`` -> ``(reference, input)``
    (the row's ``key`` column: the path, the text, the user) or raises one of ``errors`` for an unreadable input
    (skipped with a warning, or ``strict_error(exc)`` under ``--strict``). ``collate(inputs)`` -> a batch tensor,
    which is moved to the device and fed as ``encoder.embed(transform(batch))`` (the evaluation transform).
    ``count``: how many items (None when unknown before reading them all: the progress bar then counts up);
    ``threads``: decode a part's items in this many threads (for decoders that release the GIL on large inputs).
    """

    key: str
    items: Iterable[Any]
    decode: Callable[[Any], tuple[str, Any]]
    collate: Callable[[list[Any]], torch.Tensor]
    transform: Callable[[torch.Tensor], Any]
    count: int | None = None
    errors: tuple[type[BaseException], ...] = ()
    strict_error: Callable[[BaseException], SelfSupError] | None = None
    unit: str = "inputs"
    threads: int = 1


@dataclass
class EmbedOptions:
    """``part_rows``: inputs per parquet part (the bound on the rows of one file and on the embeddings held in
    memory); ``overwrite``: replace an ``OUT`` (or ``OUT.partial``) made from another run, data or settings;
    ``progress``: the progress bar on stderr (None: only on a terminal); ``on_part(index, path)``: called after
    each part is written (for callers that report or stop); ``run``: the run or export folder the encoder came
    from (recorded in the manifest with a digest of its weights)."""

    part_rows: int = DEFAULT_PART_ROWS
    overwrite: bool = False
    progress: bool | None = None
    on_part: Callable[[int, Path], None] | None = None
    run: str | None = None
