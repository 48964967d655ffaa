"""Interaction logs larger than memory (issue 20): parquet shards grouped into per-user histories on disk
(``modalities/sequence/grouped.py``) give the in-memory reader's item map, histories, leave-one-out split and
training windows; a run pretrained from shards trains and evaluates exactly like one pretrained from the same log in
memory; the sorting buckets respect ``data.group_rows``; bad shards are skipped (``--strict`` stops); ``embed``
reads shards."""

from __future__ import annotations

import datetime
import json
import logging
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import selfsup
from selfsup import api
from cli_checks import assert_one_line_error, run_cli
from selfsup.config import DataConfig
from selfsup.errors import SelfSupError
from selfsup.modalities.sequence.grouped import GroupedWindows, group_log, stream_shards, user_ranges
from selfsup.modalities.sequence.readers import history_windows, leave_one_out, read_interactions, read_log

N_USERS, N_ITEMS = 30, 15


def log_rows(seed: int = 0) -> list[dict]:
    """Users with 1..12 interactions, timestamps with ties (file order decides), some malformed rows; each user
    walks the items from its own start, so the next item is predictable."""
    rng = random.Random(seed)
    rows = []
    for user in range(N_USERS):
        for t in range(1 + user % 12):
            rows.append({"user": f"u{user}", "item": f"i{(user + t) % N_ITEMS}", "timestamp": 100 * user + t // 2})
    rows += [{"user": "u3", "item": "", "timestamp": 5}, {"user": "u4", "item": "i1", "timestamp": None}]
    rng.shuffle(rows)  # users spread over the shards in any order
    return rows


def write_shards(folder: Path, rows: list[dict], parts: int = 3, stamp=lambda t: t) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        chunk = [{**row, "timestamp": None if row["timestamp"] is None else stamp(row["timestamp"])}
                 for row in rows[part::parts]]
        pq.write_table(pa.Table.from_pylist(chunk), folder / f"part-{part}.parquet")
    return folder


def settings(path, **changes) -> DataConfig:
    return DataConfig(path=str(path), modality="sequence", **changes)


def grouped(path, folder: Path, max_length: int = 4, **changes):
    data = settings(path, **changes)
    return group_log(data, stream_shards(data), folder, lambda items: {n: i for i, n in enumerate(items, 1)},
                     max_length=max_length)


ISO = lambda t: (datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=int(t))).isoformat()  # noqa: E731


@pytest.mark.parametrize("stamp", [lambda t: t, lambda t: float(t), str, ISO,
                                   lambda t: datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=int(t))],
                         ids=["int", "float", "text", "iso-text", "arrow-timestamp"])
def test_grouped_log_equals_the_in_memory_reader(tmp_path, stamp, caplog):
    shards = write_shards(tmp_path / "sh", log_rows(), stamp=stamp)
    memory = read_interactions(shards)  # the in-memory reader of the same shards, one after another
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        disk = grouped(shards, tmp_path / "g")
    assert "skipped 2 malformed row(s)" in caplog.text
    assert disk.users == memory.users and disk.item_map == memory.item_map
    log = disk.as_log()
    assert [h.tolist() for h in log.histories] == [h.tolist() for h in memory.histories]
    a, b = leave_one_out(log), leave_one_out(memory)
    for name in ("valid_users", "valid_targets", "test_targets"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist()
    assert [h.tolist() for h in a.test_inputs] == [h.tolist() for h in b.test_inputs]
    windows = [w.tolist() for h in b.train if len(h) >= 2 for w in history_windows(h, 4)]
    dataset = GroupedWindows(disk.folder)
    assert [dataset[i].tolist() for i in range(len(dataset))] == windows


def test_buckets_respect_group_rows(tmp_path):
    counts = np.array([3, 3, 9, 1, 1, 1, 4])
    bounds = user_ranges(counts, 5)
    sizes = [int(counts[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]
    assert sizes == [3, 3, 9, 3, 4]  # at most 5, except the user with 9 alone
    shards = write_shards(tmp_path / "sh", log_rows())
    small, whole = grouped(shards, tmp_path / "small", group_rows=7), grouped(shards, tmp_path / "whole")
    manifest = json.loads((small.folder / "manifest.json").read_text())
    assert manifest["buckets"] > 10 and manifest["group_rows"] == 7
    assert json.loads((whole.folder / "manifest.json").read_text())["buckets"] == 1
    assert np.array_equal(small.items, whole.items) and np.array_equal(small.offsets, whole.offsets)
    assert not list(small.folder.glob("bucket-*"))  # the temporary buckets are gone
    with pytest.raises(SelfSupError, match=r"part-\d\.parquet:\d+: malformed row \((empty 'item'|timestamp)"):
        grouped(shards, tmp_path / "strict", strict=True)


def test_only_shards_and_cache_stream_take_the_disk_path(tmp_path):
    rows = log_rows()
    whole = tmp_path / "log.parquet"
    pq.write_table(pa.Table.from_pylist(rows), whole)
    assert stream_shards(settings(whole)) is None  # a small log: in memory
    assert stream_shards(settings(whole, cache="stream")).urls == [str(whole)]
    folder = write_shards(tmp_path / "sh", rows)
    assert stream_shards(settings(folder)) is not None
    from selfsup.shards.sources import shard_set, write_list
    from selfsup.shards.table import count_rows

    listed = write_list(tmp_path / "some.shards.json", shard_set(str(folder), (".parquet",), count_rows, False), [0, 2])
    assert read_log(settings(listed)).users == read_interactions(f"{folder}/part-[02].parquet").users
    streamed, memory = read_log(settings(whole, cache="stream")), read_log(settings(whole))
    assert streamed.users == memory.users
    assert [h.tolist() for h in streamed.histories] == [h.tolist() for h in memory.histories]


SEQ = ["--modality", "sequence", "--method", "sasrec", "--batch-size", "8", "--max-length", "6", "--max-steps", "12",
       "--no-progress", "--seed", "3", "--set", "optim.lr=0.01"]


def test_a_run_from_shards_trains_and_evaluates_like_the_log_in_memory(tmp_path):
    rows = [row for row in log_rows() if row["item"] and row["timestamp"] is not None]
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n" + "".join(f"{r['user']},{r['item']},{r['timestamp']}\n" for r in rows))
    shards = tmp_path / "sh"
    api.shard(log, shards, shard_size="1KB", modality="sequence", progress=False)
    assert len(list(shards.glob("*.parquet"))) >= 2
    for data, run in ((log, "memory"), (shards, "shards")):
        code, _, err = run_cli(["pretrain", data, "--out", tmp_path / run, *SEQ])
        assert code == 0, err
    assert (tmp_path / "shards/histories/items.npy").is_file() and not (tmp_path / "memory/histories").exists()
    assert (tmp_path / "shards/item_map.json").read_text() == (tmp_path / "memory/item_map.json").read_text()
    # the same windows in the same order and the same seed: the same training, so the same metrics
    results = {run: [(r.protocol, r.encoder, r.metric, r.value) for r in
                     selfsup.evaluate(tmp_path / run, protocols=["ranking"], baseline="none")]
               for run in ("memory", "shards")}
    assert results["shards"] == results["memory"] and len(results["shards"]) >= 4
    more = [("14" if arg == "12" else arg) for arg in SEQ]
    code, _, err = run_cli(["pretrain", shards, "--out", tmp_path / "shards", *more])  # resumes on the grouped folder
    assert code == 0, err
    out = selfsup.embed(tmp_path / "shards", shards, tmp_path / "users.parquet")
    table = pq.read_table(out)
    assert table.num_rows == N_USERS and sorted(table.column("user").to_pylist()) == sorted(f"u{u}" for u in range(N_USERS))
    # embed streams the users: histories stay views of the memory-mapped grouped items until their batch is decoded
    from selfsup.artifacts import load
    from selfsup.modalities.sequence.evaluation import user_source

    source = user_source(load(tmp_path / "shards"), shards)
    first = next(iter(source.items))
    assert not isinstance(source.items, (list, tuple)) and first[1].base is not None  # a view, nothing copied
    user, history = source.decode(first)
    assert user == first[0] and history.dtype == np.int64 and (history > 0).all()


def test_a_truncated_shard_is_skipped_or_stops_under_strict(tmp_path, caplog):
    rows = log_rows()
    shards = write_shards(tmp_path / "sh", rows)
    bad = shards / "part-1.parquet"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        disk = grouped(shards, tmp_path / "g")
    assert f"skipping bad shard {bad}" in caplog.text
    kept = read_interactions(f"{shards}/part-[02].parquet")
    assert disk.users == kept.users and [h.tolist() for h in disk.as_log().histories] == [h.tolist() for h in kept.histories]
    with pytest.raises(SelfSupError, match="part-1.parquet: unreadable shard"):
        grouped(shards, tmp_path / "g2", strict=True)
    code, _, err = run_cli(["pretrain", shards, "--out", tmp_path / "run", *SEQ, "--strict"])
    assert_one_line_error(code, err, "part-1.parquet", "--strict")


def test_a_shard_breaking_off_while_read_is_left_out_whole(tmp_path, caplog):
    """Shards with a ``shards.json`` index are not counted beforehand: the damage shows while the rows are read."""
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n" + "".join(f"u{u % 7},i{u % 5},{u}\n" for u in range(3000)))
    shards = tmp_path / "sh"
    done = api.shard(log, shards, shard_size="8KB", modality="sequence", progress=False)
    assert done["shards"] >= 3
    bad = shards / "train-0001.parquet"
    bad.write_bytes(bad.read_bytes()[:-200])
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        disk = grouped(shards, tmp_path / "g")
    assert f"skipping bad shard {bad}" in caplog.text
    assert int(disk.offsets[-1]) == 3000 - json.loads((shards / "shards.json").read_text())["shards"][1]["samples"]


def test_hold_out_splits_shards_by_user_into_shard_folders(tmp_path):
    """``--method auto``'s held-out sample of a shard log: whole users, written as shards again."""
    from selfsup.modalities import get_modality

    shards = write_shards(tmp_path / "sh", log_rows())
    held = get_modality("sequence").hold_out(settings(shards), 6, 0, tmp_path / "split")
    training, held_out = read_log(settings(held.training)), read_log(settings(held.held_out))
    whole = read_log(settings(shards))
    assert len(held_out.users) == 6 and sorted(training.users + held_out.users) == sorted(whole.users)
    assert held.training.is_dir() and held.held_out.is_dir()


def test_an_earlier_runs_item_map_grows_alike_on_both_paths(tmp_path):
    """``--init RUN`` (``data.item_map``): the earlier run's items keep their ids, the new ones follow, on the disk
    path as in memory; the training windows are the same in both."""
    from selfsup.config import TrainerConfig
    from selfsup.modalities.sequence.training import load_sequence_data

    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"i3": 1, "old": 2, "i0": 3}))
    rows = log_rows()
    whole = tmp_path / "log.parquet"  # the shards' rows one after another: timestamp ties keep this order
    pq.write_table(pa.Table.from_pylist(rows[0::3] + rows[1::3] + rows[2::3]), whole)
    shards = write_shards(tmp_path / "sh", rows)
    loaded = {}
    for name, path in (("memory", whole), ("disk", shards)):
        train = load_sequence_data(settings(path, item_map=str(earlier), max_length=5), tmp_path / name)
        batch = next(iter(train.make_loader(lambda b, g: b, train.num_samples, TrainerConfig(), 1)))
        loaded[name] = (json.loads((tmp_path / name / "item_map.json").read_text()), train.encoder_kwargs,
                        sorted(map(tuple, batch["input_ids"].tolist())))
    assert loaded["disk"] == loaded["memory"]
    assert {k: loaded["disk"][0][k] for k in ("i3", "old", "i0")} == {"i3": 1, "old": 2, "i0": 3}
    assert (tmp_path / "disk/histories/windows.npy").is_file() and not (tmp_path / "memory/histories").exists()


def test_other_ddp_processes_wait_for_the_first_ones_grouping(tmp_path, monkeypatch):
    from selfsup.modalities.sequence import grouped as grouping

    shards = write_shards(tmp_path / "sh", log_rows())
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(grouping, "WAIT_S", 0.5)
    with pytest.raises(SelfSupError, match="the first process did not finish grouping"):
        grouped(shards, tmp_path / "g")
    assert not (tmp_path / "g").exists()  # it never groups itself
    monkeypatch.delenv("LOCAL_RANK")
    first = grouped(shards, tmp_path / "g")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert np.array_equal(grouped(shards, tmp_path / "g").items, first.items)  # the first's folder, read as it is
