"""Texts as parquet shards: ``selfsup shard --modality text`` writes them (column ``text``, and ``label`` when the
source has one: a ``label`` column of a .csv/.tsv, a ``label`` field of .jsonl), and pretraining streams parquet or
JSONL shards (:mod:`selfsup.shards`: shard order per epoch, a shuffle buffer, every text once per epoch across DDP
processes and loader workers), tokenizing each text in a loader worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ...config import DataConfig, TrainerConfig
from ...errors import SelfSupError
from ...methods.base import Pretext
from ...shards.sources import ShardSet
from ...shards.write import ShardSource
from ...train.sources import TrainData
from .readers import TokenCollator, _as_tensors, _tokenize, find_text_files, located_texts


def text_shard_source(data: str | Path, encoding: str, text_field: str) -> ShardSource:
    """Rows ``{"text", "label"}`` of every text under ``data``, in order (``label`` None where the file has none)."""
    files = find_text_files(data)
    classes: list[str] = []

    def rows() -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        for file in files:
            for _, text, label in located_texts(file, encoding, text_field):
                if label is not None and label not in seen:
                    seen.add(label)
                    classes.append(label)
                yield {"text": text, "label": label}

    return ShardSource("table", rows(), None, classes)


class EmptyText(ValueError):
    """A row whose text tokenizes to special tokens only (or has no text)."""


class RowTokens:
    """Picklable: a shard row -> ``(ids, word_starts)`` of its ``field``, as the file stream tokenizes texts."""

    def __init__(self, tokenizer, max_length: int, field: str) -> None:
        self.tokenizer, self.max_length, self.field = tokenizer, max_length, field

    def __call__(self, row: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.field not in row:
            raise SelfSupError(f"no {self.field!r} column in the shard (columns: {', '.join(row)}); "
                               "pass --set data.text_field=NAME")
        text = row[self.field]
        tokens = next(_tokenize([str(text).strip()], self.tokenizer, self.max_length), None) if text else None
        if tokens is None:
            raise EmptyText("no text")
        return _as_tensors(tokens)


def shard_texts(shards: ShardSet, field: str) -> Iterator[str]:
    """The non-empty texts of every shard in order (for training the tokenizer: one streaming pass)."""
    from ...shards.table import table_rows

    for url in shards.urls:
        for row in table_rows(url):
            text = row.get(field)
            if text is not None and str(text).strip():
                yield str(text).strip()


def load_text_shards(data: DataConfig, shards: ShardSet, run_dir: Path) -> TrainData:
    """Texts streamed from parquet / JSONL shards, tokenized in loader workers; the tokenizer trained on one pass
    over the shards (or given), as for files."""
    from ...shards.dataset import ShardedSamples
    from ...shards.loader import shard_loader
    from ...shards.table import table_rows
    from .tokenizer import token_spec
    from .training import _workers, prepare_tokenizer

    first = next(table_rows(shards.urls[0]), {})
    if data.text_field not in first:
        raise SelfSupError(f"{shards.urls[0]}: no {data.text_field!r} column (columns: {', '.join(first) or 'none'}); "
                           "pass --set data.text_field=NAME")
    tokenizer = prepare_tokenizer(data, shard_texts(shards, data.text_field), run_dir)
    spec = token_spec(tokenizer)
    tokens = RowTokens(tokenizer, data.max_length, data.text_field)

    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        texts = ShardedSamples(shards, table_rows, tokens, (EmptyText,), batch_size, world_size)
        return shard_loader(texts, TokenCollator(spec.pad_token_id), _workers(trainer), unit="text",
                            strict=data.strict, strict_error=lambda path, reason: SelfSupError(
                                f"{path}: {reason}; fix the shard, or drop --strict to skip it"))

    return TrainData(shards.total, data.max_length, {**spec.to_dict(), "max_length": data.max_length}, make_loader,
                     pretext_in_loader=False, unit="texts")


def shard_rows(data: str | Path, text_field: str = "text") -> tuple[list[str], list[str | None]] | None:
    """The texts of parquet (or, by pattern or URL, JSONL) shard DATA in order, with each row's ``label`` (None
    without one); rows without text are left out; None when ``data`` is not shards."""
    from ...shards.labelled import decode_all, label_name
    from ...shards.table import JSONL, SUFFIXES, count_rows, table_rows
    from ...shards.sources import expand

    if expand(str(data), SUFFIXES, JSONL) is None:
        return None

    def text_of(row: dict[str, Any]) -> tuple[str, str | None]:
        text = row.get(text_field)
        if text is None or not str(text).strip():
            raise EmptyText("no text")
        return str(text).strip(), label_name(row, None)

    found = decode_all(str(data), SUFFIXES, count_rows, table_rows, text_of, (EmptyText,), False,
                       lambda exc: SelfSupError(str(exc)), "text")
    assert found is not None
    return [text for text, _ in found[0]], [label for _, label in found[0]]


def located_shard_texts(data: str | Path, text_field: str = "text") -> Iterator[tuple[str, str, str | None]] | None:
    """``(URL:ROW, text, label)`` of every row with text of parquet (or, by pattern or URL, JSONL) shard DATA, rows
    counted from 1 in each shard, for ``selfsup inspect``; None when ``data`` is not shards. A damaged shard is
    skipped with a warning naming it."""
    from ...shards.labelled import label_name, shard_items
    from ...shards.sources import shard_set
    from ...shards.table import JSONL, SUFFIXES, count_rows, table_rows

    shards = shard_set(str(data), SUFFIXES, count_rows, strict=False, pattern_only=JSONL)
    if shards is None:
        return None

    def rows() -> Iterator[tuple[str, str, str | None]]:
        row, previous = 0, None
        for url, raw in shard_items(shards, table_rows, strict=False):
            row = row + 1 if url == previous else 1
            previous = url
            text = raw.get(text_field)
            if text is not None and str(text).strip():
                yield f"{url}:{row}", str(text).strip(), label_name(raw, None)

    return rows()
