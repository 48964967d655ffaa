"""Interaction logs larger than memory: parquet shards (or one large parquet log) grouped into per-user histories on
disk, then read memory-mapped.

pyarrow reads the rows in record batches, only the log's columns (:func:`batch_fields` parses a whole batch as
:func:`~.readers.row_fields` parses one row), in two streaming passes:

1. **counting**: the item map (distinct raw items sorted as strings -> 1..N, as :func:`~.readers.read_interactions`
   builds it) and every user's number of valid rows; only the distinct users and items are held in memory.
2. **partitioning**: the users, sorted as strings, are cut into contiguous ranges of at most ``data.group_rows``
   interactions (a user with more fills a range alone); each valid row is appended to its range's bucket file as
   ``(user rank, timestamp, row number, item id)``.

Then each bucket in turn (at most ``group_rows`` rows in memory, ≈ 50 bytes each) is sorted by user, timestamp and
row number (ties keep file order: shards in name order, rows in file order, as the in-memory reader) and appended
to ``items.npy``. Because the ranges follow the sorted users, the buckets one after another are the histories in
the in-memory reader's user order, so the leave-one-out split (:func:`~.readers.leave_one_out`) and the training
windows are the same. The folder holds ``users.parquet`` (the sorted user ids), ``offsets.npy`` (int64 [U + 1]:
user ``u``'s history is ``items[offsets[u]:offsets[u + 1]]``), ``items.npy`` (int32 item ids, oldest first),
``windows.npy`` (int64 [W, 2]: the training windows, :func:`window_bounds`) and ``manifest.json`` (what was grouped,
so a resumed run reuses the folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ...errors import SelfSupError
from ...shards.sources import ShardSet, bad_shard_error, open_shard, shard_set
from .readers import (InteractionLog, LogColumns, arrow_ids, _parse_rating, _parse_timestamp, _wanted, _check_header,
                      log_columns, row_fields)

log = logging.getLogger("selfsup")

SUFFIXES = (".parquet",)
BATCH_ROWS = 65536
ROW = np.dtype([("user", "<i8"), ("time", "<f8"), ("row", "<i8"), ("item", "<i4")])  # one bucketed interaction
BYTES_PER_INTERACTION = 48  # the in-memory reader: user, item and timestamp arrays, the sort, the histories
MANIFEST = "manifest.json"
WAIT_S = 6 * 3600  # DDP: how long the other processes wait for the first to group the log


# --------------------------------------------------------------------------------------- which path


def stream_shards(data) -> ShardSet | None:
    """The parquet files to group on disk, or None for the in-memory reader: shard DATA (a folder, brace pattern,
    glob or fsspec URL of parquet files; unreadable shards skipped with a warning, ``--strict`` stops), or one
    .parquet log with ``--cache stream`` (or ``auto`` when it would take more than a quarter of the free memory).
    A .csv/.tsv log is read in memory (``selfsup shard LOG --modality sequence`` turns it into parquet shards)."""
    from ...shards.sources import LIST_SUFFIX
    from ...shards.table import count_rows

    path = Path(str(data.path)).expanduser()
    if not path.is_file() or str(data.path).endswith(LIST_SUFFIX):  # shards, or a list of them
        return shard_set(str(data.path), SUFFIXES, count_rows, data.strict)
    mode = data.cache
    if path.suffix.lower() != ".parquet":
        if mode == "stream":
            log.warning("%s: --cache stream reads parquet logs only; reading this one in memory (selfsup shard LOG "
                        "--modality sequence --out DIR writes it as parquet shards)", path)
        return None
    if mode == "memory":
        return None
    from ...train.data import decide_cache  # (imports Lightning: only for a parquet log that may stream)

    rows = count_rows(str(path))
    if mode == "auto" and decide_cache(mode, rows * BYTES_PER_INTERACTION, f"the {rows} interactions of {path.name}",
                                       "as histories") == "memory":
        return None
    return ShardSet([str(path)], [rows])


# --------------------------------------------------------------------------------------- parsing a batch


def _numbers(column, parse: Callable[[Any], float | None]) -> np.ndarray:
    """A column as ``parse`` reads each value, float64 with NaN where it reads None: numbers and Arrow timestamps
    (seconds since the epoch, naive ones as UTC) at once, numeric text by Arrow's cast, anything else value by
    value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    try:
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            values = column.cast(pa.float64())
        elif pa.types.is_timestamp(kind) and parse is _parse_timestamp:
            scale = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[kind.unit]
            values = pc.divide(column.cast(pa.int64()).cast(pa.float64()), scale)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = pc.utf8_trim_whitespace(column.cast(pa.string())).cast(pa.float64())
        else:
            raise pa.ArrowInvalid("not a number column")
        out = pc.fill_null(values, float("nan")).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # ISO dates, empty strings, ...: value by value
        parsed = (None if v is None else parse(v) for v in column.to_pylist())
        out = np.array([np.nan if v is None else v for v in parsed], dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


@dataclass
class BatchFields:
    """A record batch's rows parsed: ``users`` and ``items`` (Arrow strings), ``stamps`` and ``ratings`` (float64),
    ``bad`` (malformed rows), ``keep`` (valid rows that pass ``min_rating``)."""

    users: Any
    items: Any
    stamps: np.ndarray
    bad: np.ndarray
    keep: np.ndarray


def batch_fields(batch, columns: LogColumns, min_rating: float | None) -> BatchFields:
    """The rows of ``batch`` parsed, malformed ones marked (what :func:`~.readers.row_fields` says of each row)."""
    import pyarrow.compute as pc

    users, items = arrow_ids(batch.column(columns.user)), arrow_ids(batch.column(columns.item))
    stamps = _numbers(batch.column(columns.timestamp), _parse_timestamp)
    bad = pc.or_(pc.equal(users, ""), pc.equal(items, "")).to_numpy(zero_copy_only=False) | np.isnan(stamps)
    keep = ~bad
    if columns.rating is not None:
        ratings = _numbers(batch.column(columns.rating), _parse_rating)
        bad |= np.isnan(ratings)
        keep = ~bad
        if min_rating is not None:
            with np.errstate(invalid="ignore"):
                keep &= ratings >= min_rating
    return BatchFields(users, items, stamps, bad, keep)


def _reason(batch, columns: LogColumns, row: int) -> str:
    """Why row ``row`` of ``batch`` is malformed (:func:`~.readers.row_fields`)."""
    values = [batch.column(name)[row].as_py() for _, name in _wanted(columns)]
    return row_fields(values, columns)[0] or "malformed"


def shard_batches(url: str, columns: LogColumns) -> Iterator[Any]:
    """The record batches of the parquet shard ``url``, only the log's columns (a missing one: a one-line error)."""
    import pyarrow.parquet as pq

    with open_shard(url) as fh:
        table = pq.ParquetFile(fh)
        _check_header(url, list(table.schema_arrow.names), columns)  # type: ignore[arg-type]
        yield from table.iter_batches(batch_size=BATCH_ROWS, columns=[name for _, name in _wanted(columns)])


# --------------------------------------------------------------------------------------- the two passes


@dataclass
class Counted:
    """What the counting pass found: the shards read whole (``urls``, their ``rows``), the sorted users and their
    valid interactions, the sorted distinct items, the malformed rows."""

    urls: list[str]
    rows: list[int]
    users: list[str]
    counts: np.ndarray
    items: list[str]
    malformed: int


class _Malformed:
    """Malformed rows: counted and warned about once (the first named by shard and line), or ``strict``: an error."""

    def __init__(self, strict: bool) -> None:
        self.strict, self.count, self.first = strict, 0, ""

    def see(self, url: str, batch, fields: BatchFields, line: int, columns: LogColumns) -> None:
        found = int(fields.bad.sum())
        if not found:
            return
        row = int(np.argmax(fields.bad))
        if self.strict:
            raise SelfSupError(f"{url}:{line + row}: malformed row ({_reason(batch, columns, row)}); fix or remove "
                               "it, or drop --strict to skip such rows")
        if not self.first:
            self.first = f"{url}:{line + row} ({_reason(batch, columns, row)})"
        self.count += found


def _bad_shard(url: str, exc: Exception, strict: bool, skipped: dict[str, str]) -> None:
    if isinstance(exc, SelfSupError):
        raise exc
    reason = str(exc) or type(exc).__name__
    if strict:
        raise bad_shard_error(url, reason) from None
    log.warning("skipping bad shard %s (%s)", url, reason)
    skipped[url] = reason


def count_pass(shards: ShardSet, columns: LogColumns, min_rating: float | None, strict: bool) -> Counted:
    """Pass 1: the item map's items and each user's interactions, one record batch at a time; a shard that breaks
    off while read is left out whole (warned about; ``strict`` stops)."""
    users: Counter[str] = Counter()
    items: set[str] = set()
    malformed = _Malformed(strict)
    urls, rows, skipped = [], [], dict(shards.skipped)
    for url in shards.urls:
        shard_users: Counter[str] = Counter()
        shard_items: set[str] = set()
        line, before = 2, malformed.count  # rows are named as the in-memory reader names them (row index + 2)
        try:
            for batch in shard_batches(url, columns):
                fields = batch_fields(batch, columns, min_rating)
                malformed.see(url, batch, fields, line, columns)
                line += batch.num_rows
                counts = fields.users.filter(fields.keep).value_counts()
                shard_users.update(dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())))
                shard_items.update(fields.items.filter(fields.keep).unique().to_pylist())
        except Exception as exc:  # noqa: BLE001  a truncated or damaged parquet file
            malformed.count = before
            _bad_shard(url, exc, strict, skipped)
            continue
        users.update(shard_users)
        items |= shard_items
        urls.append(url)
        rows.append(line - 2)
    if len(skipped) > len(shards.skipped):
        log.warning("skipped %d bad shard(s) of %d", len(skipped), len(shards.urls) + len(shards.skipped))
    if malformed.count:
        log.warning("skipped %d malformed row(s); first at %s", malformed.count, malformed.first)
    if not users:
        raise SelfSupError(f"{shards.urls[0] if shards.urls else 'the log'}: no valid interaction rows in the shards "
                           f"({malformed.count} malformed); each row needs a user, an item and a numeric or ISO "
                           "timestamp")
    names = sorted(users)
    return Counted(urls, rows, names, np.array([users[u] for u in names], dtype=np.int64), sorted(items),
                   malformed.count)


def user_ranges(counts: np.ndarray, limit: int) -> np.ndarray:
    """Bucket boundaries over the sorted users: contiguous ranges of at most ``limit`` interactions (a user with
    more gets a range alone); ``bounds[b]`` is the first user of bucket ``b``, the last entry the number of users."""
    bounds, size = [0], 0
    for user, count in enumerate(counts.tolist()):
        if size and size + count > limit:
            bounds.append(user)
            size = 0
        size += count
    bounds.append(len(counts))
    return np.asarray(bounds, dtype=np.int64)


def partition_pass(counted: Counted, columns: LogColumns, min_rating: float | None, item_ids: np.ndarray,
                   bounds: np.ndarray, folder: Path) -> list[Path]:
    """Pass 2: every valid row appended to its users' bucket file ``folder/bucket-NNNNN.bin`` as a :data:`ROW`
    (``item_ids[k]`` is the run's id of the ``k``-th sorted item)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    user_set, item_set = pa.array(counted.users, pa.string()), pa.array(counted.items, pa.string())
    paths = [folder / f"bucket-{b:05d}.bin" for b in range(len(bounds) - 1)]
    for path in paths:
        path.touch()
    position = 0
    for url in counted.urls:
        try:
            for batch in shard_batches(url, columns):
                fields = batch_fields(batch, columns, min_rating)
                keep = np.flatnonzero(fields.keep)
                out = np.empty(len(keep), dtype=ROW)
                out["user"] = pc.index_in(fields.users.take(keep), value_set=user_set).to_numpy()
                out["item"] = item_ids[pc.index_in(fields.items.take(keep), value_set=item_set).to_numpy()]
                out["time"] = fields.stamps[keep]
                out["row"] = position + keep
                position += batch.num_rows
                bucket = np.searchsorted(bounds, out["user"], side="right") - 1
                order = np.argsort(bucket, kind="stable")
                split = np.searchsorted(bucket[order], np.arange(len(paths) + 1))
                for b in np.flatnonzero(np.diff(split)):  # opened per batch: any number of buckets, few open files
                    with open(paths[b], "ab") as fh:
                        out[order[split[b]:split[b + 1]]].tofile(fh)
        except Exception as exc:  # noqa: BLE001
            raise SelfSupError(f"{url}: the shard changed or broke while it was read ({exc}); run again") from None
    return paths


def group_pass(paths: list[Path], counts: np.ndarray, folder: Path) -> None:
    """Each bucket sorted by (user, timestamp, row number) into ``folder/items.npy``, with ``offsets.npy``."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    items = np.lib.format.open_memmap(folder / "items.npy", mode="w+", dtype=np.int32, shape=(int(offsets[-1]),))
    position = 0
    for path in paths:
        rows = np.fromfile(path, dtype=ROW)
        order = np.lexsort((rows["row"], rows["time"], rows["user"]))
        items[position:position + len(rows)] = rows["item"][order]
        position += len(rows)
        del rows, order
        path.unlink()
    items.flush()
    del items
    np.save(folder / "offsets.npy", offsets)


def window_bounds(offsets: np.ndarray, max_length: int) -> np.ndarray:
    """int64 [W, 2]: ``(start, stop)`` in ``items.npy`` of every training window, as the in-memory path makes them
    (:func:`~.readers.leave_one_out`'s training part of each history: all but the last two items of a history of
    3 or more; those of 2 or more items cut by :func:`~.readers.history_windows`), users in order, oldest window
    first."""
    starts, lengths = offsets[:-1], np.diff(offsets)
    lengths = np.where(lengths >= 3, lengths - 2, lengths)
    kept = lengths >= 2
    starts, lengths = starts[kept], lengths[kept]
    step = max_length - 1
    count = np.where(lengths > max_length, 1 + -(-(lengths - max_length) // step), 1)
    user = np.repeat(np.arange(len(lengths)), count)
    k = np.arange(len(user)) - np.repeat(np.cumsum(count) - count, count)
    end = lengths[user] - (count[user] - 1 - k) * step  # window j from the most recent end stops at L - j (m - 1)
    begin = np.maximum(0, end - max_length)
    return np.stack([starts[user] + begin, starts[user] + end], axis=1).astype(np.int64)


# --------------------------------------------------------------------------------------- the grouped log


@dataclass
class GroupedLog:
    """Histories grouped on disk (see the module doc): ``users`` (sorted raw ids), ``offsets`` and ``items``
    (memory-mapped), ``item_map`` (raw item -> id)."""

    folder: Path
    users: list[str]
    offsets: np.ndarray
    items: np.ndarray
    item_map: dict[str, int]
    malformed: int = 0

    @classmethod
    def open(cls, folder: Path, item_map: dict[str, int]) -> GroupedLog:
        import pyarrow.parquet as pq

        manifest = json.loads((folder / MANIFEST).read_text())
        return cls(folder, pq.read_table(folder / "users.parquet").column("user").to_pylist(),
                   np.load(folder / "offsets.npy"), np.load(folder / "items.npy", mmap_mode="c"), item_map,
                   int(manifest.get("malformed", 0)))

    def as_log(self) -> InteractionLog:
        """The :class:`~.readers.InteractionLog` of these histories: int32 views of the memory-mapped items (mapped
        copy-on-write, so torch takes them as they are), nothing copied."""
        bounds, items = self.offsets.tolist(), np.asarray(self.items)  # plain views: lighter than np.memmap ones
        histories = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        return InteractionLog(list(self.users), histories, self.item_map, self.malformed)


def _signature(shards: ShardSet, data, item_map: dict[str, int]) -> dict[str, Any]:
    """What a grouped folder was made from: the shards (name, size, modification time), the column settings, the
    item map's digest."""
    from ...shards.sources import _filesystem

    files = []
    for url in shards.urls:
        fs, path = _filesystem(url)
        info = fs.info(path)
        files.append([url, info.get("size"), str(info.get("mtime", info.get("LastModified", "")))])
    digest = hashlib.sha256(json.dumps(sorted(item_map.items())).encode()).hexdigest()
    columns = log_columns(data)
    return {"shards": files, "columns": [columns.user, columns.item, columns.timestamp, columns.rating],
            "min_rating": data.min_rating, "item_map": digest}


def _reusable(folder: Path, shards: ShardSet, data, max_length: int | None) -> GroupedLog | None:
    """The grouped log in ``folder`` when it was made from these very shards (less those it skipped as bad) with
    these settings; else None."""
    try:
        stored = json.loads((folder / MANIFEST).read_text())
        item_map = json.loads((folder / "item_map.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    read = ShardSet([url for url in shards.urls if url not in stored.get("skipped", [])], [])
    if stored.get("signature") != _signature(read, data, item_map) or \
            (max_length is not None and stored.get("max_length") != max_length):
        return None
    return GroupedLog.open(folder, item_map)


def group_log(data, shards: ShardSet, folder: Path, item_map_for: Callable[[list[str]], dict[str, int]],
              max_length: int | None = None) -> GroupedLog:
    """The log of ``shards`` grouped into ``folder`` (reused when it holds this very grouping: a resumed run).

    ``item_map_for(sorted items)`` gives the run's item map (the log's own, or an earlier run's grown by the new
    items); ``max_length``: also write the training windows (``windows.npy``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ...distributed import launched_as_other_rank

    reused = _reusable(folder, shards, data, max_length)
    if reused is not None:
        log.info("%s: reusing the histories grouped in %s", data.path, folder)
        return reused
    if launched_as_other_rank():  # DDP: the first process groups, the others wait for its folder
        deadline = time.monotonic() + WAIT_S
        while reused is None:
            if time.monotonic() > deadline:
                raise SelfSupError(f"{folder}: the first process did not finish grouping the log; check its log")
            time.sleep(1.0)
            reused = _reusable(folder, shards, data, max_length)
        return reused
    columns = log_columns(data)
    counted = count_pass(shards, columns, data.min_rating, data.strict)
    item_map = item_map_for(counted.items)
    item_ids = np.asarray([item_map[name] for name in counted.items], dtype=np.int32)
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    bounds = user_ranges(counted.counts, data.group_rows)
    log.info("%s: grouping %d interactions of %d users in %d bucket(s) of at most %d", data.path,
             int(counted.counts.sum()), len(counted.users), len(bounds) - 1, data.group_rows)
    paths = partition_pass(counted, columns, data.min_rating, item_ids, bounds, staging)
    group_pass(paths, counted.counts, staging)
    pq.write_table(pa.table({"user": pa.array(counted.users, pa.string())}), staging / "users.parquet")
    (staging / "item_map.json").write_text(json.dumps(item_map, ensure_ascii=False), encoding="utf-8")
    if max_length is not None:
        np.save(staging / "windows.npy", window_bounds(np.load(staging / "offsets.npy"), max_length))
    skipped = [url for url in shards.urls if url not in counted.urls]
    (staging / MANIFEST).write_text(json.dumps({
        "signature": _signature(ShardSet(counted.urls, counted.rows), data, item_map), "skipped": skipped,
        "max_length": max_length, "users": len(counted.users), "interactions": int(counted.counts.sum()),
        "malformed": counted.malformed, "buckets": len(bounds) - 1, "group_rows": data.group_rows}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return GroupedLog.open(folder, item_map)


def read_grouped(data, shards: ShardSet) -> InteractionLog:
    """The log of ``shards`` grouped in a temporary folder (under ``$TMPDIR``; its files are unlinked at once, the
    memory maps keep them readable) as an :class:`~.readers.InteractionLog` of memory-mapped histories."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="selfsup-log-") as tmp:
        own = group_log(data, shards, Path(tmp) / "histories", lambda items: {n: i for i, n in enumerate(items, 1)})
        return own.as_log()


class GroupedWindows(Dataset):
    """The training windows of a grouped folder (``windows.npy`` over ``items.npy``, memory-mapped in each process:
    the process's memory does not grow with the log), each an int64 array of item ids."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.length = len(np.load(folder / "windows.npy", mmap_mode="r"))
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict[str, Any]:  # loader workers map the files themselves
        return {**self.__dict__, "_arrays": None}

    def _maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:  # plain views of the maps: slicing a np.memmap costs more than reading it
            self._arrays = (np.asarray(np.load(self.folder / "windows.npy", mmap_mode="r")),
                            np.asarray(np.load(self.folder / "items.npy", mmap_mode="r")))
        return self._arrays

    def __getitem__(self, index: int) -> np.ndarray:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[np.ndarray]:
        """A batch's windows at once (the DataLoader's batched fetch)."""
        windows, items = self._maps()
        return [items[start:stop].astype(np.int64) for start, stop in windows[indices].tolist()]
