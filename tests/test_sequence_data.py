"""Interaction-log reader: sorting, item map, formats, malformed rows, leave-one-out, labels."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selfsup.modalities.sequence.readers import (
    InteractionLog,
    LogColumns,
    leave_one_out,
    load_item_map,
    load_user_labels,
    read_interactions,
    save_item_map,
    truncate,
)
from selfsup.errors import SelfSupError


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def ids(log: InteractionLog, user: str) -> list[str]:
    """A user's history as raw item names."""
    back = {v: k for k, v in log.item_map.items()}
    return [back[int(i)] for i in log.histories[log.users.index(user)]]


SHUFFLED = """user,item,timestamp
bob,z,30
alice,c,3
alice,a,1
bob,x,10
alice,b,2
bob,y,20
alice,d,2
"""


def test_histories_sorted_by_time_ties_in_file_order(tmp_path):
    log = read_interactions(write(tmp_path / "log.csv", SHUFFLED))
    assert log.users == ["alice", "bob"]
    # alice: a@1, then b and d both at 2 (b first in the file), then c@3
    assert ids(log, "alice") == ["a", "b", "d", "c"]
    assert ids(log, "bob") == ["x", "y", "z"]
    assert all(h.dtype == np.int64 for h in log.histories)
    assert log.num_interactions == 7 and log.malformed == 0 and log.first_malformed_line is None


def test_item_map_sorted_one_based_and_independent_of_row_order(tmp_path):
    log = read_interactions(write(tmp_path / "a.csv", SHUFFLED))
    assert log.item_map == {"a": 1, "b": 2, "c": 3, "d": 4, "x": 5, "y": 6, "z": 7}
    assert log.num_items == 7
    lines = SHUFFLED.splitlines()
    reversed_log = read_interactions(write(tmp_path / "b.csv", "\n".join([lines[0], *lines[:0:-1]]) + "\n"))
    assert reversed_log.item_map == log.item_map
    assert ids(reversed_log, "bob") == ["x", "y", "z"]


def test_tsv_with_iso_dates_and_custom_columns(tmp_path):
    text = "uid\tmovie\twhen\nu1\tm2\t2020-01-02T10:00:00\nu1\tm1\t2020-01-01T09:00:00\nu1\tm3\t2020-01-02T10:00:01\n"
    columns = LogColumns(user="uid", item="movie", timestamp="when")
    log = read_interactions(write(tmp_path / "log.tsv", text), columns)
    assert ids(log, "u1") == ["m1", "m2", "m3"]


def test_parquet(tmp_path):
    table = pa.table({"user": ["u", "u", "v", "u"], "item": [7, 5, 5, 6], "timestamp": [3.0, 1.0, 1.0, 2.0]})
    pq.write_table(table, tmp_path / "log.parquet")
    log = read_interactions(tmp_path / "log.parquet")
    assert log.users == ["u", "v"]
    assert ids(log, "u") == ["5", "6", "7"] and ids(log, "v") == ["5"]


def test_parquet_malformed_line_is_row_index_plus_two(tmp_path, caplog):
    table = pa.table({"user": ["u", None, "u"], "item": ["a", "b", "c"], "timestamp": [1, 2, 3]})
    pq.write_table(table, tmp_path / "log.parquet")
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        log = read_interactions(tmp_path / "log.parquet")
    assert log.first_malformed_line == 3 and ids(log, "u") == ["a", "c"]


def test_min_rating_keeps_only_rows_at_or_above(tmp_path):
    text = "user,item,timestamp,stars\nu,a,1,5\nu,b,2,3.5\nu,c,3,4\nu,d,4,1\n"
    columns = LogColumns(rating="stars")
    log = read_interactions(write(tmp_path / "log.csv", text), columns, min_rating=4)
    assert ids(log, "u") == ["a", "c"]
    assert set(log.item_map) == {"a", "c"}
    with pytest.raises(SelfSupError, match="rating column"):
        read_interactions(tmp_path / "log.csv", min_rating=4)


MALFORMED = """user,item,timestamp
u,a,1
u,b
u,c,yesterday
,d,4
u,e,5
"""


def test_malformed_rows_counted_first_line_warned(tmp_path, caplog):
    path = write(tmp_path / "log.csv", MALFORMED)
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        log = read_interactions(path)
    assert ids(log, "u") == ["a", "e"]
    assert log.malformed == 3 and log.first_malformed_line == 3
    message = caplog.records[-1].getMessage()
    assert "skipped 3 malformed row(s)" in message and "first at line 3" in message and "missing field" in message


def test_strict_names_file_and_line(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\nu,a,1\nu,c,yesterday\n")
    with pytest.raises(SelfSupError, match=r"log\.csv:3: .*yesterday"):
        read_interactions(path, strict=True)


def test_missing_column_names_found_columns(tmp_path):
    path = write(tmp_path / "log.csv", "uid,item,ts\nu,a,1\n")
    with pytest.raises(SelfSupError) as err:
        read_interactions(path)
    message = str(err.value)
    assert "log.csv" in message and "uid, item, ts" in message and "data.user_column=NAME" in message
    assert "\n" not in message


def test_no_valid_rows_is_an_error(tmp_path):
    with pytest.raises(SelfSupError, match="empty.csv: no valid"):
        read_interactions(write(tmp_path / "empty.csv", "user,item,timestamp\nu,a,x\n"))


def test_leave_one_out(tmp_path):
    text = "user,item,timestamp\n" + "".join(
        f"{u},{i},{t}\n" for u, items in {"long": "abcde", "three": "fgh", "two": "ij", "one": "k"}.items()
        for t, i in enumerate(items)
    )
    log = read_interactions(write(tmp_path / "log.csv", text))
    split = leave_one_out(log)
    assert [log.users[i] for i in split.valid_users] == ["long", "three"]
    for row, user in enumerate(split.valid_users):
        history = log.histories[user]
        np.testing.assert_array_equal(split.train[user], history[:-2])
        assert split.valid_targets[row] == history[-2] and split.test_targets[row] == history[-1]
        np.testing.assert_array_equal(split.valid_inputs[row], history[:-2])
        np.testing.assert_array_equal(split.test_inputs[row], history[:-1])
        assert split.test_inputs[row][-1] == split.valid_targets[row]
    for user in ("two", "one"):  # too short: training only, whole history
        index = log.users.index(user)
        np.testing.assert_array_equal(split.train[index], log.histories[index])
        assert index not in split.valid_users
    assert [log.item_map[c] for c in "abc"] == split.train[log.users.index("long")].tolist()


def test_truncate_keeps_most_recent():
    history = np.arange(1, 8)
    assert truncate(history, 3).tolist() == [5, 6, 7]
    assert truncate(history, 20).tolist() == history.tolist()


def test_item_map_round_trip(tmp_path):
    item_map = {"a": 1, "ü,b": 2, "3": 3}
    save_item_map(item_map, tmp_path / "items.json")
    assert load_item_map(tmp_path / "items.json") == item_map
    assert not (tmp_path / "items.json.tmp").exists()


def test_user_labels(tmp_path, caplog):
    log = read_interactions(write(tmp_path / "log.csv", SHUFFLED))
    labels = write(tmp_path / "labels.csv", "user,label\nbob,old\nghost,young\nalice,young\n")
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        index, names = load_user_labels(labels, log)
    assert index.tolist() == [1, 0] and names == ["old", "young"]
    assert "skipped 1 row(s)" in caplog.records[-1].getMessage()
    with pytest.raises(SelfSupError, match="no labeled user"):
        load_user_labels(write(tmp_path / "none.csv", "user,label\nghost,x\n"), log)
    with pytest.raises(SelfSupError, match="columns: user, gender"):
        load_user_labels(write(tmp_path / "bad.csv", "user,gender\nbob,x\n"), log)


def test_history_windows_cover_every_transition_once() -> None:
    from selfsup.modalities.sequence.readers import history_windows

    history = np.arange(1, 11)
    windows = history_windows(history, 4)
    assert [w.tolist() for w in windows] == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]
    pairs = [(int(a), int(b)) for w in windows for a, b in zip(w[:-1], w[1:])]
    assert sorted(pairs) == [(i, i + 1) for i in range(1, 10)]
    assert [w.tolist() for w in history_windows(np.array([3, 4]), 50)] == [[3, 4]]
