"""Parquet (and JSONL) shards of rows: text with an optional ``label`` column, interaction logs; read and written
with pyarrow (``pip install selfsup[parquet]``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import SelfSupError
from .sources import open_shard

SUFFIXES = (".parquet",)
JSONL = (".jsonl",)  # shards when a pattern, glob or URL names them; a local .jsonl file or folder is a text corpus
ROWS_PER_BATCH = 1024


def _pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise SelfSupError("parquet shards need pyarrow; pip install 'selfsup[parquet]'") from None
    return pq


def count_rows(url: str) -> int:
    """Rows of a parquet shard (from its footer) or JSONL shard (its lines); raises on a damaged file."""
    if url.lower().endswith(".jsonl"):
        with open_shard(url) as fh:
            return sum(1 for line in fh if line.strip())
    pq = _pyarrow()
    with open_shard(url) as fh:
        return pq.ParquetFile(fh).metadata.num_rows


def table_rows(url: str) -> Iterator[dict[str, Any]]:
    """The rows of a parquet or JSONL shard in order, as dicts; raises on a damaged file."""
    if url.lower().endswith(".jsonl"):
        import json

        with open_shard(url, "r") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
        return
    pq = _pyarrow()
    with open_shard(url) as fh:
        for batch in pq.ParquetFile(fh).iter_batches(batch_size=ROWS_PER_BATCH):
            yield from batch.to_pylist()


class TableShards:
    """Writes rows (dicts with the same keys) into parquet shards ``DIR/train-0000.parquet``, ... of about
    ``max_bytes`` each (measured on the rows' Arrow size; compression makes the files smaller)."""

    suffix = ".parquet"

    def __init__(self, folder: str, max_bytes: int) -> None:
        self.pq = _pyarrow()
        self.folder, self.max_bytes = folder, max_bytes
        self.counts: dict[str, int] = {}
        self.rows: list[dict[str, Any]] = []
        self.size = 0
        self.writer = None

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.size += sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row.values())
        if len(self.rows) >= ROWS_PER_BATCH or self.size >= self.max_bytes:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self.rows:
            return
        table = pa.Table.from_pylist(self.rows)
        if self.writer is None:
            name = f"train-{len(self.counts):04d}.parquet"
            self.writer = self.pq.ParquetWriter(f"{self.folder}/{name}", table.schema)
            self.name, self.counts[name] = name, 0
        self.writer.write_table(table)
        self.counts[self.name] += len(self.rows)
        self.rows = []
        if self.size >= self.max_bytes:
            self._close_shard()

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer, self.size = None, 0

    def close(self) -> None:
        self._flush()
        self._close_shard()

