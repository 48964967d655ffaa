"""Interaction-log reader: ``user, item, timestamp[, rating]`` rows → per-user item histories.

A log is a .csv (comma) or .tsv (tab) file with a header row, streamed row by row with the csv
module, or a .parquet table (read in record batches with pyarrow). Raw item values are mapped to
ids 1..N in order of their string value (deterministic; id 0 is padding). A user's history is
their item ids sorted by timestamp, oldest first, ties kept in file order. Timestamps may be
numbers or ISO dates. Malformed rows are counted and skipped with one warning (``strict`` raises
at the first one, naming file:line).

The evaluation split is leave-one-out (Kang & McAuley 2018, SASRec §IV-A; Sun et al. 2019,
BERT4Rec §4.1): per user the last item is the test target, the second to last the validation
target, the rest the training history.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SelfSupError, did_you_mean
from ...shards.sources import expand

log = logging.getLogger("selfsup")

SEQUENCE_EXTENSIONS = (".csv", ".tsv", ".parquet")
ITEM_MAP_FILE = "item_map.json"  # the item map's name in run and export folders
_PARQUET_BATCH = 65536


@dataclass
class LogColumns:
    """Column names of an interaction log (``rating`` is optional)."""

    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    rating: str | None = None


@dataclass
class InteractionLog:
    """Per-user histories: ``users`` (raw ids, sorted), ``histories[i]`` (int64 item ids of
    ``users[i]``, oldest first), ``item_map`` (raw item → 1..N; 0 is padding)."""

    users: list[str]
    histories: list[np.ndarray]
    item_map: dict[str, int]
    malformed: int = 0
    first_malformed_line: int | None = None

    @property
    def num_items(self) -> int:
        """N, the number of distinct items (padding id 0 excluded)."""
        return len(self.item_map)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(h) for h in self.histories))


# --------------------------------------------------------------------------------------- fields


def _parse_timestamp(value: Any) -> float | None:
    """Seconds (or any monotone number) from an int, float, numeric string or ISO date; None if not."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            number = float(text)
            return number if math.isfinite(number) else None
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:  # naive dates are read as UTC, so the order never depends on the machine's zone
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _parse_rating(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _as_id(value: Any) -> str:
    return "" if value is None else str(value).strip()


def arrow_ids(column) -> Any:
    """A pyarrow column as :func:`_as_id` reads each value (``str(value).strip()``, null -> ""), as Arrow strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        out = pc.utf8_trim_whitespace(column.cast(pa.string()))
    elif pa.types.is_integer(kind):
        out = column.cast(pa.string())
    else:  # floats, dictionaries, dates ...: Python's str() of each value, as the row-by-row reader
        out = pa.array([_as_id(v) for v in column.to_pylist()], pa.string())
    return pc.fill_null(out, "")


# --------------------------------------------------------------------------------------- rows


def row_fields(row: list[Any] | None, columns: LogColumns) -> tuple[str, tuple[str, str, float | None, float | None]]:
    """``(why the row is malformed or "", (user, item, timestamp, rating))`` of one ``[user, item, timestamp(,
    rating)]`` row (None: a missing field)."""
    if row is None:
        return "missing field", ("", "", None, None)
    user, item = _as_id(row[0]), _as_id(row[1])
    stamp = _parse_timestamp(row[2]) if row[2] is not None else None
    rating = _parse_rating(row[3]) if columns.rating is not None else None
    reason = ""
    if not user:
        reason = f"empty {columns.user!r}"
    elif not item:
        reason = f"empty {columns.item!r}"
    elif stamp is None:
        reason = f"timestamp {_as_id(row[2])!r} is not a number or an ISO date"
    elif columns.rating is not None and rating is None:
        reason = f"rating {_as_id(row[3])!r} is not a number"
    return reason, (user, item, stamp, rating)


def _wanted(columns: LogColumns) -> list[tuple[str, str]]:
    """``(role, column name)`` pairs the header must contain."""
    wanted = [("user", columns.user), ("item", columns.item), ("timestamp", columns.timestamp)]
    if columns.rating is not None:
        wanted.append(("rating", columns.rating))
    return wanted


def _check_header(path: Path, found: list[str], columns: LogColumns) -> list[int]:
    """Positions of the wanted columns in ``found``, or a one-line error naming what is there."""
    positions = []
    for role, name in _wanted(columns):
        if name not in found:
            listed = ", ".join(c for c in found if c) or "none"
            raise SelfSupError(
                f"{path}: no {role} column {name!r} in the header row (columns: {listed})"
                f"{did_you_mean(name, [c for c in found if c])}; "
                f"name it with --set data.{role}_column=NAME"
            )
        positions.append(found.index(name))
    return positions


def _table_rows(path: Path, columns: LogColumns) -> Iterator[tuple[int, list[Any] | None]]:
    """``(line, [user, item, timestamp(, rating)])`` of a csv/tsv, streamed; ``None`` for a row
    with a missing field. Blank lines are skipped."""
    suffix = path.suffix.lower()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = (csv.reader(fh) if suffix == ".csv"
                  else csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
        try:
            header = next(reader, None)
            if header is None:
                raise SelfSupError(f"{path}: the file is empty; a log needs a header row naming the user, item and timestamp columns")
            positions = _check_header(path, [c.strip() for c in header], columns)
            last = max(positions)
            for row in reader:
                if not row or not any(cell.strip() for cell in row):
                    continue
                yield reader.line_num, (None if last >= len(row) else [row[p] for p in positions])
        except UnicodeDecodeError:
            raise SelfSupError(f"{path}:{reader.line_num + 1}: not valid utf-8 text; save the log as utf-8") from None
        except csv.Error as err:
            raise SelfSupError(f"{path}:{reader.line_num}: not a valid {suffix[1:]} row ({err})") from None


def _parquet_rows(path: Path | str, columns: LogColumns) -> Iterator[tuple[int, list[Any] | None]]:
    """``(row index + 2, [user, item, timestamp(, rating)])`` of a parquet table (a path, or the URL of a shard), in
    record batches."""
    import pyarrow.parquet as pq

    from ...shards.sources import open_shard

    try:
        table = pq.ParquetFile(path if isinstance(path, Path) else open_shard(path))
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        raise SelfSupError(f"{path}: not a readable parquet file ({type(err).__name__}: {err}); re-export it, "
                           "or give the log as .csv/.tsv") from None
    names = [name for _, name in _wanted(columns)]
    _check_header(path, list(table.schema_arrow.names), columns)
    line = 1
    for batch in table.iter_batches(batch_size=_PARQUET_BATCH, columns=names):
        values = [batch.column(name).to_pylist() for name in names]
        for row in zip(*values):
            line += 1
            yield line, list(row)


# --------------------------------------------------------------------------------------- reading


def read_interactions(path: str | Path, columns: LogColumns = LogColumns(), min_rating: float | None = None,
                      strict: bool = False) -> InteractionLog:
    """Read an interaction log into per-user, time-sorted item histories.

    With ``columns.rating`` and ``min_rating``, only rows rated >= ``min_rating`` are kept (implicit
    feedback, as in SASRec/BERT4Rec preprocessing). A malformed row (missing field, empty user or
    item, unparsable timestamp or rating) is skipped and counted; ``strict`` raises at the first."""
    shards = None if Path(path).expanduser().is_file() else expand(str(path), (".parquet",))
    if shards is not None:  # parquet shards (`selfsup shard --modality sequence`): their rows one after another
        rows = (row for url in shards for row in _parquet_rows(url, columns))
        return _histories(rows, str(path), columns, min_rating, strict)
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in SEQUENCE_EXTENSIONS:
        raise SelfSupError(f"{path}: unsupported log format {suffix or '(no extension)'!r}; give a {', '.join(SEQUENCE_EXTENSIONS)} file")
    if not path.is_file():
        raise SelfSupError(f"{path}: no such file; give an interaction log ({', '.join(SEQUENCE_EXTENSIONS)})")
    if min_rating is not None and columns.rating is None:
        raise SelfSupError(f"{path}: a minimum rating needs a rating column; name it with --set data.rating_column=NAME")

    rows = _parquet_rows(path, columns) if suffix == ".parquet" else _table_rows(path, columns)
    return _histories(rows, path, columns, min_rating, strict)


def _histories(rows: Iterator[tuple[int, list[Any] | None]], path: Path | str, columns: LogColumns,
               min_rating: float | None, strict: bool) -> InteractionLog:
    """The per-user histories of a log's ``rows`` (see :func:`read_interactions`)."""
    user_code: dict[str, int] = {}
    item_code: dict[str, int] = {}
    users, items, times = array("q"), array("q"), array("d")
    malformed, first_line, first_reason, filtered = 0, None, "", 0
    for line, row in rows:
        reason, (user, item, stamp, rating) = row_fields(row, columns)
        if reason:
            if strict:
                raise SelfSupError(f"{path}:{line}: malformed row ({reason}); fix or remove it, or drop --strict to skip such rows")
            malformed += 1
            if first_line is None:
                first_line, first_reason = line, reason
            continue
        if min_rating is not None and rating < min_rating:
            filtered += 1
            continue
        users.append(user_code.setdefault(user, len(user_code)))
        items.append(item_code.setdefault(item, len(item_code)))
        times.append(stamp)

    if malformed:
        log.warning("%s: skipped %d malformed row(s); first at line %d (%s)", path, malformed, first_line, first_reason)
    if not users:
        why = f"; all {filtered} rated row(s) are below min_rating {min_rating}" if filtered else ""
        raise SelfSupError(f"{path}: no valid interaction rows ({malformed} malformed){why}; "
                           "each row needs a user, an item and a numeric or ISO timestamp")

    # Raw ids sorted as strings: users[i] and item ids 1..N do not depend on the file's row order.
    user_names = sorted(user_code)
    user_rank = np.empty(len(user_code), dtype=np.int64)
    user_rank[[user_code[u] for u in user_names]] = np.arange(len(user_names))
    item_names = sorted(item_code)
    item_id = np.empty(len(item_code), dtype=np.int64)
    item_id[[item_code[i] for i in item_names]] = np.arange(1, len(item_names) + 1)

    u = user_rank[np.frombuffer(users, dtype=np.int64)]
    t = np.frombuffer(times, dtype=np.float64)
    order = np.lexsort((np.arange(len(u)), t, u))  # by user, then time, then file order
    sorted_items = item_id[np.frombuffer(items, dtype=np.int64)][order]
    bounds = np.cumsum(np.bincount(u, minlength=len(user_names)))[:-1]
    histories = [h.copy() for h in np.split(sorted_items, bounds)]
    return InteractionLog(
        users=user_names,
        histories=histories,
        item_map={name: i for i, name in enumerate(item_names, start=1)},
        malformed=malformed,
        first_malformed_line=first_line,
    )


# --------------------------------------------------------------------------------------- item map


def save_item_map(item_map: dict[str, int], path: str | Path) -> None:
    """Write the raw item → id map as JSON (atomically: a ``.tmp`` file renamed over ``path``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(item_map, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def load_item_map(path: str | Path) -> dict[str, int]:
    """The raw item → id map saved by :func:`save_item_map`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SelfSupError(f"{path}: no item map; it is saved next to the model when training on a log") from None
    except json.JSONDecodeError as err:
        raise SelfSupError(f"{path}: not a valid item map ({err.msg} at line {err.lineno}); re-save it from the training run") from None
    if not isinstance(data, dict):
        raise SelfSupError(f"{path}: not a valid item map (expected a JSON object of item -> id)")
    return {str(k): int(v) for k, v in data.items()}


def item_lookup(log: InteractionLog, item_map: dict[str, int]) -> np.ndarray:
    """``lookup[own id]`` = the id of the same item in another ``item_map`` (a trained model's), 0 when it has none."""
    lookup = np.zeros(log.num_items + 1, dtype=np.int64)
    for raw, own in log.item_map.items():
        lookup[own] = item_map.get(raw, 0)
    return lookup


def remap_history(lookup: np.ndarray, history: np.ndarray) -> np.ndarray:
    """One history in the other item map's ids (:func:`item_lookup`), its items without an id there left out."""
    mapped = lookup[history]
    return mapped[mapped > 0]


def remap_items(log: InteractionLog, item_map: dict[str, int]) -> tuple[list[np.ndarray], int]:
    """``log``'s histories in the ids of another ``item_map`` (a trained model's), and how many
    interactions were dropped because their item is not in it (new items have no embedding)."""
    lookup = item_lookup(log, item_map)
    histories = [remap_history(lookup, history) for history in log.histories]
    return histories, log.num_interactions - sum(len(h) for h in histories)


def grown_item_map(own: dict[str, int], base: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """``base`` grown by the items of ``own`` (a log's item map) it lacks, and those new items (sorted).

    Items of ``base`` keep their ids, also those the log no longer has (they may come back); the log's new items
    get the next ids in sorted order. With an empty ``base`` this is ``own``."""
    new = sorted(set(own) - set(base))
    if not base or base == own:
        return own, new
    start = max(base.values()) + 1
    return {**base, **{name: i for i, name in enumerate(new, start=start)}}, new


def grow_item_map(log: InteractionLog, base: dict[str, int]) -> tuple[InteractionLog, list[str]]:
    """``log`` in the ids of ``base`` grown by the log's new items, and those new items (sorted)
    (:func:`grown_item_map`; with an empty ``base`` this is the log as read, ids 1..N by sorted name)."""
    grown, new = grown_item_map(log.item_map, base)
    if grown is log.item_map:
        return log, new
    histories, _ = remap_items(log, grown)  # every item of the log is in the grown map: nothing is dropped
    return replace(log, histories=histories, item_map=grown), new


# --------------------------------------------------------------------------------------- splits


def pad_histories(histories: list[np.ndarray], max_length: int | None = None) -> "torch.Tensor":
    """int64 [N, W]: each history (its most recent ``max_length`` items when given), right-padded with 0;
    W is the longest kept history (at least 1)."""
    import torch

    kept = [np.asarray(h, dtype=np.int64) for h in histories]
    if max_length is not None:
        kept = [truncate(h, max_length) for h in kept]
    out = torch.zeros(len(kept), max((len(h) for h in kept), default=1) or 1, dtype=torch.long)
    for row, history in enumerate(kept):
        out[row, : len(history)] = torch.from_numpy(history)
    return out


def truncate(history: np.ndarray, max_length: int) -> np.ndarray:
    """The most recent ``max_length`` items of a history (the whole history if shorter)."""
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")
    return history[-max_length:]


def history_windows(history: np.ndarray, max_length: int) -> list[np.ndarray]:
    """A long history cut into windows of at most ``max_length`` items from the most recent end, consecutive
    windows sharing one item, so every transition (item t -> item t + 1) is inside exactly one window and no
    interaction is thrown away. Oldest window first."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    windows, end = [], len(history)
    while True:
        start = max(0, end - max_length)
        windows.append(history[start:end])
        if start == 0:
            return windows[::-1]
        end = start + 1


@dataclass
class LeaveOneOut:
    """Leave-one-out split (SASRec §IV-A). ``valid_users`` index ``log.users``; targets and inputs
    are aligned with it."""

    train: list[np.ndarray]
    valid_users: np.ndarray
    valid_targets: np.ndarray
    test_targets: np.ndarray
    valid_inputs: list[np.ndarray] = field(default_factory=list)
    test_inputs: list[np.ndarray] = field(default_factory=list)


def leave_one_out(log: InteractionLog) -> LeaveOneOut:
    """Per user with >= 3 interactions: last item = test target, second to last = validation
    target, the rest = training history. Shorter histories are kept whole for training only."""
    train, users, valid, test, valid_inputs, test_inputs = [], [], [], [], [], []
    for index, history in enumerate(log.histories):
        if len(history) < 3:
            train.append(history)
            continue
        train.append(history[:-2])
        users.append(index)
        valid.append(history[-2])
        test.append(history[-1])
        valid_inputs.append(history[:-2])
        test_inputs.append(history[:-1])
    return LeaveOneOut(
        train=train,
        valid_users=np.asarray(users, dtype=np.int64),
        valid_targets=np.asarray(valid, dtype=np.int64),
        test_targets=np.asarray(test, dtype=np.int64),
        valid_inputs=valid_inputs,
        test_inputs=test_inputs,
    )


# --------------------------------------------------------------------------------------- labels


def load_user_labels(path: str | Path, log: InteractionLog, user_column: str = "user",
                     label_column: str = "label") -> tuple[np.ndarray, list[str]]:
    """``(indices into log.users, labels)`` from a csv/tsv of user,label rows, for few-label
    user-attribute prediction. Rows whose user is not in the log (or with an empty field) are
    skipped with a warning."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise SelfSupError(f"{path}: user labels must be a .csv or .tsv file with columns {user_column},{label_column}")
    if not path.is_file():
        raise SelfSupError(f"{path}: no such file; give a .csv/.tsv of {user_column},{label_column} rows")
    position = {user: i for i, user in enumerate(log.users)}
    indices: list[int] = []
    labels: list[str] = []
    seen: dict[str, int] = {}
    unknown, empty = 0, 0
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = (csv.reader(fh) if path.suffix.lower() == ".csv"
                  else csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
        header = [c.strip() for c in next(reader, None) or []]
        for name in (user_column, label_column):
            if name not in header:
                listed = ", ".join(c for c in header if c) or "none"
                raise SelfSupError(f"{path}: no column {name!r} in the header row (columns: {listed})"
                                   f"{did_you_mean(name, [c for c in header if c])}; add a header row naming it")
        iu, il = header.index(user_column), header.index(label_column)
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            user = row[iu].strip() if iu < len(row) else ""
            label = row[il].strip() if il < len(row) else ""
            if not user or not label:
                empty += 1
                continue
            if user not in position:
                unknown += 1
                continue
            if user in seen:
                raise SelfSupError(f"{path}:{reader.line_num}: user {user!r} is labeled twice (first at line {seen[user]}); keep one row per user")
            seen[user] = reader.line_num
            indices.append(position[user])
            labels.append(label)
    if unknown or empty:
        logging.getLogger("selfsup").warning("%s: skipped %d row(s) with a user not in the log and %d with an empty field", path, unknown, empty)
    if not indices:
        raise SelfSupError(f"{path}: no labeled user is in the interaction log ({unknown} unknown, {empty} empty); "
                           f"check that column {user_column!r} holds the log's user ids")
    return np.asarray(indices, dtype=np.int64), labels


def log_shard_source(path: str | Path):
    """Every row of the log ``path`` (.csv/.tsv values as text, .parquet as typed), all columns, in file order,
    for parquet shards (``selfsup shard --modality sequence``); pretraining reads such shards as one log."""
    from ...shards.write import ShardSource

    path = Path(path).expanduser()
    if not path.is_file() or path.suffix.lower() not in SEQUENCE_EXTENSIONS:
        raise SelfSupError(f"{path}: give an interaction log file ({', '.join(SEQUENCE_EXTENSIONS)}) to shard")

    def rows() -> Iterator[dict[str, Any]]:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH):
                yield from batch.to_pylist()
            return
        with open(path, encoding="utf-8-sig", newline="") as fh:
            delimiter = "," if path.suffix.lower() == ".csv" else "\t"
            yield from csv.DictReader(fh, delimiter=delimiter)

    return ShardSource("table", rows(), None)

def log_columns(data) -> LogColumns:
    """The log columns ``data``'s settings name."""
    return LogColumns(data.user_column, data.item_column, data.timestamp_column, data.rating_column or None)


def read_log(data) -> InteractionLog:
    """The interaction log of ``data`` with its column settings: parquet shards and ``--cache stream`` grouped on
    disk, their histories memory-mapped (:func:`.grouped.read_grouped`), other logs read in memory."""
    from .grouped import read_grouped, stream_shards

    shards = stream_shards(data)
    if shards is not None:
        return read_grouped(data, shards)
    return read_interactions(data.path, log_columns(data), min_rating=data.min_rating, strict=data.strict)


def hold_out_users(data, limit: int, seed: int, folder: Path, unit: str):
    """:meth:`Modality.hold_out` for logs: a seeded sample of the log's users (those :func:`read_log` finds) with
    all their rows in ``folder/heldout.<ext>``, every other row in ``folder/train.<ext>``; both keep the log's
    format, header and columns. Items that only held-out users have are not in the training part's item map:
    embedding the held-out log leaves them out of the histories (:func:`~.evaluation.user_source`)."""
    from ..base import HeldOut, held_out_rows

    from ...shards.sources import LIST_SUFFIX
    from .grouped import stream_shards

    users = read_log(data).users
    held = {users[i] for i in held_out_rows(len(users), limit, seed, data.path, unit)}
    path = Path(data.path).expanduser()
    suffix = path.suffix.lower()
    folder.mkdir(parents=True, exist_ok=True)
    training, held_out = folder / f"train{suffix}", folder / f"heldout{suffix}"
    shards = None if path.is_file() and not str(path).endswith(LIST_SUFFIX) else stream_shards(data)
    if shards is not None:  # parquet shards: a folder of shards each
        training, held_out = folder / "train", folder / "heldout"
        _split_parquet(shards.urls, log_columns(data).user, held, training, held_out)
    elif suffix == ".parquet":
        _split_parquet([str(path)], log_columns(data).user, held, training, held_out)
    else:
        _split_table(path, log_columns(data), held, training, held_out)
    return HeldOut(training, held_out, len(held), len(users))


def _split_table(path: Path, columns: LogColumns, held: set[str], training: Path, held_out: Path) -> None:
    """The rows of a csv/tsv log whose user is in ``held`` into ``held_out``, the others into ``training`` (the
    header row into both), each as the reader reads it back (:func:`_table_rows`)."""
    tsv = path.suffix.lower() != ".csv"
    with open(path, encoding="utf-8-sig", newline="") as fh, open(training, "w", encoding="utf-8", newline="") as a, \
            open(held_out, "w", encoding="utf-8", newline="") as b:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(fh)
        header = next(reader)
        position = _check_header(path, [c.strip() for c in header], columns)[0]
        # a tsv is split at tabs and line ends only (no quoting), so joining its fields back is exact
        writers = [(lambda row, out=out: out.write("\t".join(row) + "\n")) if tsv
                   else csv.writer(out, lineterminator="\n").writerow for out in (a, b)]
        for write in writers:
            write(header)
        for row in reader:
            if row and any(cell.strip() for cell in row):
                writers[position < len(row) and _as_id(row[position]) in held](row)


def _split_parquet(urls: list[str], user: str, held: set[str], training: Path, held_out: Path) -> None:
    """The rows of parquet logs whose ``user`` is in ``held`` into ``held_out``, the others into ``training``,
    streamed in record batches: one log into the files ``training`` and ``held_out``, shards into a shard each in the
    folders ``training`` and ``held_out`` (a part without rows is not written)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ...shards.sources import open_shard

    held_ids = pa.array(sorted(held), pa.string())
    for k, url in enumerate(urls):
        outputs = (training, held_out) if len(urls) == 1 and training.suffix else \
            (training / f"part-{k:05d}.parquet", held_out / f"part-{k:05d}.parquet")
        writers: list[Any] = [None, None]
        with open_shard(url) as fh:
            table = pq.ParquetFile(fh)
            for batch in table.iter_batches(batch_size=_PARQUET_BATCH):
                mask = pc.is_in(arrow_ids(batch.column(user)), value_set=held_ids)
                for side, part in enumerate((batch.filter(pc.invert(mask)), batch.filter(mask))):
                    if part.num_rows and writers[side] is None:
                        outputs[side].parent.mkdir(parents=True, exist_ok=True)
                        writers[side] = pq.ParquetWriter(outputs[side], table.schema_arrow)
                    if part.num_rows:
                        writers[side].write_batch(part)
        for side, writer in enumerate(writers):
            if writer is not None:
                writer.close()
            elif outputs[side] in (training, held_out):  # one log: both files always exist
                pq.write_table(table.schema_arrow.empty_table(), outputs[side])
