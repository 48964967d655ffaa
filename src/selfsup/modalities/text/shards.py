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
from .languages import LanguageTags
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


def row_text(row: dict[str, Any], field: str, tags: LanguageTags | None = None, where: str = "a shard row") -> str:
    """The stripped text of a shard row's ``field`` ("" when it has none), with its language's tag in front when the
    run has ``tags`` (the row's ``tags.field`` column, or a tag the text starts with)."""
    text = str(row.get(field) or "").strip()
    if text and tags is not None:
        text = tags.apply(text, row.get(tags.field), where)
    return text


class RowText:
    """Picklable: a shard row -> the stripped text of its ``field`` (:class:`EmptyText` when it has none), tagged
    with its language when the run has ``tags``; the texts are tokenized a batch at a time by :class:`BatchTokens`."""

    def __init__(self, field: str, tags: LanguageTags | None = None) -> None:
        self.field, self.tags = field, tags

    def __call__(self, row: dict[str, Any]) -> str:
        if self.field not in row:
            raise SelfSupError(f"no {self.field!r} column in the shard (columns: {', '.join(row)}); "
                               "pass --set data.text_field=NAME")
        text = row_text(row, self.field, self.tags)
        if not text:
            raise EmptyText("no text")
        return text


class BatchTokens:
    """Picklable ``collate_fn``: a batch of texts tokenized together, as the file stream tokenizes them (a fast
    tokenizer takes 71 µs per text in batches of 64 against 248 µs one text at a time, measured on the 2-core
    machine), then padded by :class:`~.readers.TokenCollator`; a text of special tokens only is left out."""

    def __init__(self, tokenizer, max_length: int, pad_token_id: int, sentence_end_ids: tuple[int, ...] = ()) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length
        self.collate = TokenCollator(pad_token_id, sentence_end_ids)

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.collate([_as_tensors(tokens) for tokens in _tokenize(list(texts), self.tokenizer, self.max_length)])


def shard_texts(shards: ShardSet, field: str, tags: LanguageTags | None = None) -> Iterator[str]:
    """The non-empty texts of every shard in order, tagged with ``tags`` (for training the tokenizer: one streaming
    pass)."""
    from ...shards.table import table_rows

    for url in shards.urls:
        for number, row in enumerate(table_rows(url), start=1):
            text = row_text(row, field, tags, f"{url}:{number}")
            if text:
                yield text


def load_text_shards(data: DataConfig, shards: ShardSet, run_dir: Path) -> TrainData:
    """Texts streamed from parquet / JSONL shards, tokenized in loader workers; the tokenizer trained on one pass
    over the shards (or given), as for files."""
    from ...shards.dataset import ShardedSamples
    from ...shards.loader import shard_loader
    from ...shards.table import table_rows
    from .tokenizer import sentence_end_ids, token_spec
    from .training import _workers, prepare_tokenizer

    first = next(table_rows(shards.urls[0]), {})
    if data.text_field not in first:
        raise SelfSupError(f"{shards.urls[0]}: no {data.text_field!r} column (columns: {', '.join(first) or 'none'}); "
                           "pass --set data.text_field=NAME")
    tags = LanguageTags.from_settings(data)
    tokenizer = prepare_tokenizer(data, shard_texts(shards, data.text_field, tags), run_dir)
    spec = token_spec(tokenizer)
    collate = BatchTokens(tokenizer, data.max_length, spec.pad_token_id, sentence_end_ids(tokenizer))

    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        texts = ShardedSamples(shards, table_rows, RowText(data.text_field, tags), (EmptyText,), batch_size, world_size,
                               buffer=data.shuffle_buffer)
        return shard_loader(texts, collate, _workers(trainer), unit="text",
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


def located_shard_texts(data: str | Path, text_field: str = "text",
                        tags: LanguageTags | None = None) -> Iterator[tuple[str, str, str | None]] | None:
    """``(URL:ROW, text, label)`` of every row with text of parquet (or, by pattern or URL, JSONL) shard DATA, rows
    counted from 1 in each shard, for ``selfsup inspect`` (and tagged with ``tags``, for a run's report); None when
    ``data`` is not shards. A damaged shard is skipped with a warning naming it."""
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
            text = row_text(raw, text_field, tags, f"{url}:{row}")
            if text:
                yield f"{url}:{row}", text, label_name(raw, None)

    return rows()
