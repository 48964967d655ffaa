"""The ``selfsup embed`` loop: a modality's :class:`~.source.EmbedSource` decoded a batch at a time, embedded, and
written part by part (:mod:`.parts`), with a progress bar; an unreadable input is skipped with a warning naming it
and a count at the end (``--strict`` stops)."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SelfSupError
from ..evaluation.features import extract_features
from .parts import PartWriter, data_fingerprint, weights_digest
from .source import EmbedOptions, EmbedSource

log = logging.getLogger("selfsup")
SUFFIXES = (".npy", ".parquet", "")


class _Embedder:
    """Decodes items a batch at a time (``source.threads`` decoding each batch) and embeds them; counts what it
    skipped."""

    def __init__(self, encoder: torch.nn.Module, source: EmbedSource, batch_size: int, device: str,
                 strict: bool) -> None:
        self.encoder, self.source, self.batch_size, self.device, self.strict = encoder, source, batch_size, device, strict
        self.skipped = self.decoded = 0
        self.pool = None
        if source.threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(source.threads, thread_name_prefix="selfsup-embed")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def _attempt(self, raw: Any) -> tuple[str, Any] | BaseException:
        try:
            return self.source.decode(raw)
        except self.source.errors as exc:
            return exc

    def _decoded(self, raws: list[Any]) -> Iterator[tuple[str, Any]]:
        """The readable ones of ``raws`` in order; the others warned about and counted, or the ``--strict`` error."""
        for result in (self.pool.map if self.pool is not None else map)(self._attempt, raws):
            if not isinstance(result, BaseException):
                yield result
                continue
            if self.strict:
                raise (self.source.strict_error(result) if self.source.strict_error else SelfSupError(str(result))) \
                    from None
            log.warning("skipping unreadable %s (%s)", self.source.unit.rstrip("s"), result)
            self.skipped += 1

    def part(self, raws: list[Any]) -> tuple[torch.Tensor, list[str]]:
        """Embeddings [n, D] and references of the readable ones of ``raws``, ``batch_size`` items at a time
        (only one batch is decoded at once)."""
        chunks: list[torch.Tensor] = []
        references: list[str] = []
        for start in range(0, len(raws), self.batch_size):
            batch = list(self._decoded(raws[start:start + self.batch_size]))
            if not batch:
                continue
            references += [reference for reference, _ in batch]
            chunks.append(extract_features(self.encoder, self.source.collate([item for _, item in batch]),
                                           self.source.transform, batch_size=len(batch), device=self.device))
        self.decoded += len(references)
        dim = int(getattr(self.encoder, "dim", 0))
        return (torch.cat(chunks) if chunks else torch.empty(0, dim)), references


def _parts(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    part: list[Any] = []
    for item in items:
        part.append(item)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def manifest_of(loaded: Any, data: str | Path, source: EmbedSource, options: EmbedOptions,
                settings: dict[str, Any]) -> dict[str, Any]:
    """What makes the rows of an embedding output: the run and its weights, the data, the settings."""
    run = None if options.run is None else str(Path(options.run).expanduser().resolve())
    return {"run": run, "weights": weights_digest(loaded.encoder),
            **data_fingerprint(data), "count": source.count, "key": source.key, "part_rows": options.part_rows,
            **settings}


def embed_stream(loaded: Any, source: EmbedSource, out: str | Path, batch_size: int, device: str, *,
                 strict: bool, options: EmbedOptions, manifest: dict[str, Any]) -> Path:
    """Embed ``source`` into ``out`` (``.npy``: one array; ``.parquet`` or a folder: parts, resumable; see
    :mod:`.parts`); returns ``out``."""
    from tqdm.auto import tqdm

    out = Path(out).expanduser()
    if out.suffix not in SUFFIXES:
        raise SelfSupError(f"{out}: unsupported embeddings file type; use .npy, .parquet or a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = None if out.suffix == ".npy" else PartWriter(out, manifest, source.key, options.overwrite)
    if writer is not None and writer.complete:
        log.warning("%s is complete (same run, data and settings): nothing to embed; --overwrite redoes it", out)
        return out
    embedder = _Embedder(loaded.encoder, source, batch_size, device, strict)
    done = writer.done if writer is not None else 0
    bar = tqdm(total=source.count, desc=f"embedding {out.name}", unit=f" {source.unit}", file=sys.stderr,
               disable=None if options.progress is None else not options.progress, dynamic_ncols=True)
    kept: list[torch.Tensor] = []
    parts = 0
    try:
        for index, raws in enumerate(_parts(iter(source.items), options.part_rows)):
            parts = index + 1
            if index < done:  # finished by an earlier run: its items are passed over, not decoded
                bar.update(len(raws))
                continue
            embeddings, references = embedder.part(raws)
            bar.update(len(raws))
            if writer is None:
                kept.append(embeddings)
                continue
            path = writer.write(index, embeddings, references)
            if options.on_part is not None:
                options.on_part(index, path)
    finally:
        bar.close()
        embedder.close()
    if parts == 0:
        raise SelfSupError(f"{manifest.get('data', 'DATA')}: nothing to embed (no {source.unit} found); check DATA")
    if embedder.skipped:
        log.warning("skipped %d unreadable %s", embedder.skipped, source.unit)
    if embedder.decoded == 0 and done == 0:
        if writer is not None:
            shutil.rmtree(writer.work, ignore_errors=True)
        raise SelfSupError(f"{manifest.get('data', 'DATA')}: none of the {source.unit} could be read; check them")
    if writer is None:
        np.save(out, torch.cat(kept).float().numpy())
        return out
    return writer.finish(parts)
