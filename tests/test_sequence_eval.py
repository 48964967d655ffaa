"""Sequence runs downstream: leave-one-out ranking (`evaluate --protocol ranking`), few-label user attributes,
user and item embeddings, exports with the item map, and the one-line errors; on a tiny generated log where
two groups of users walk two disjoint item cycles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import selfsup
from cli_checks import assert_one_line_error, run_cli
from selfsup.artifacts import load as load_stored
from selfsup.modalities.sequence.readers import InteractionLog, remap_items
from selfsup.encoders import build_encoder
from selfsup.evaluation import EvalResult, format_table
from selfsup.modalities.sequence.readers import pad_histories

N_USERS, CYCLE, LENGTH = 48, 8, 12


def write_log(folder: Path) -> tuple[Path, Path, Path]:
    """Users of group a walk items a0..a7 in a cycle, group b items b0..b7; labels say the group."""
    rows, labels = ["user,item,timestamp"], []
    for user in range(N_USERS):
        group = "ab"[user % 2]
        for t in range(LENGTH):
            rows.append(f"u{user},{group}{(user // 2 + t) % CYCLE},{100 * user + t}")
        labels.append(f"u{user},{group}")
    log = folder / "log.csv"
    log.write_text("\n".join(rows) + "\n")
    train, test = folder / "train.csv", folder / "test.csv"
    train.write_text("user,label\n" + "\n".join(labels[:32]) + "\n")
    test.write_text("user,label\n" + "\n".join(labels[32:]) + "\n")
    return log, train, test


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("seq_eval")
    log, train, test = write_log(folder)
    run = folder / "run"
    code, _, err = run_cli(["pretrain", log, "--modality", "sequence", "--out", run, "--batch-size", "16",
                            "--max-length", "10", "--max-steps", "80", "--no-progress", "--set", "optim.lr=0.01"])
    assert code == 0, err
    return {"folder": folder, "log": log, "train": train, "test": test, "run": run}


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"]


def test_ranking_protocol_scores_held_out_items(workspace) -> None:
    out = workspace["folder"] / "rank.json"
    code, stdout, err = run_cli(["evaluate", workspace["run"], "--protocol", "ranking", "--json", out])
    assert code == 0, err
    rows = _rows(out)
    assert set(rows[0]) == {"protocol", "label_fraction", "n_labels", "encoder", "metric", "value"}
    table = {(r["protocol"], r["encoder"], r["metric"]): r["value"] for r in rows}
    assert set(table) == {(p, e, m) for p in ("ranking", "ranking_valid") for e in ("pretrained", "scratch", "baseline")
                          for m in ("hr@10", "ndcg@10")}
    assert all(r["label_fraction"] == 0 and r["n_labels"] == 0 for r in rows)
    # the walk is deterministic: a trained next-item model ranks the held-out item first for most users, while
    # popularity (8 equally common items per group, 16 in all) cannot beat ~1/log2(rank+1) of a middling rank
    assert table[("ranking", "pretrained", "ndcg@10")] > 0.8
    assert table[("ranking", "pretrained", "ndcg@10")] > table[("ranking", "baseline", "ndcg@10")] + 0.3
    assert table[("ranking", "pretrained", "hr@10")] >= table[("ranking", "pretrained", "ndcg@10")]
    assert "ndcg@10" in stdout and "baseline" in stdout


def test_user_attributes_with_few_labels(workspace) -> None:
    out = workspace["folder"] / "attr.json"
    code, _, err = run_cli(["evaluate", workspace["run"], "--train", workspace["train"], "--test", workspace["test"],
                            "--protocol", "knn,linear", "--label-fractions", "0.25,1", "--json", out])
    assert code == 0, err
    rows = _rows(out)
    assert {(r["protocol"], r["encoder"], r["n_labels"]) for r in rows} == {
        (p, e, n) for p in ("knn", "linear") for e in ("pretrained", "scratch") for n in (8, 32)}
    full = {(r["protocol"], r["encoder"]): r["value"] for r in rows if r["n_labels"] == 32}
    assert full[("linear", "pretrained")] >= 0.9  # the two groups use disjoint items


def test_embed_writes_users_and_items(workspace) -> None:
    target = workspace["folder"] / "emb.parquet"
    code, out, err = run_cli(["embed", workspace["run"], workspace["log"], "--out", target])
    assert code == 0, err
    items_file = workspace["folder"] / "emb.items.parquet"
    assert f"item embeddings: {items_file}" in out
    loaded = load_stored(workspace["run"])
    users, items = pq.read_table(target).to_pydict(), pq.read_table(items_file).to_pydict()
    assert sorted(users["user"]) == sorted(f"u{u}" for u in range(N_USERS))
    assert sorted(items["item"]) == sorted(loaded.item_map)
    row = items["item"].index("a3")
    expected = loaded.encoder.item_embeddings.weight[loaded.item_map["a3"]].detach()
    assert torch.allclose(torch.tensor(items["embedding"][row]), expected, atol=1e-6)
    # a user's embedding is the pooled encoding of its most recent max_length items (here all but the first 2)
    walk = [loaded.item_map[f"a{(0 + t) % CYCLE}"] for t in range(LENGTH)][-10:]
    ids = torch.tensor([walk])
    with torch.no_grad():
        own = loaded.encoder.embed({"input_ids": ids, "attention_mask": torch.ones_like(ids)})[0]
    assert torch.allclose(torch.tensor(users["embedding"][users["user"].index("u0")]), own, atol=1e-5)


def test_exports_carry_the_item_map(workspace) -> None:
    folder = workspace["folder"]
    code, _, err = run_cli(["export", workspace["run"], "--out", folder / "st"])
    assert code == 0, err
    code, _, err = run_cli(["export", workspace["run"], "--out", folder / "hf", "--format", "huggingface"])
    assert code == 0, err
    original = load_stored(workspace["run"])
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    for name in ("st", "hf"):
        assert json.loads((folder / name / "item_map.json").read_text()) == original.item_map
        restored = load_stored(folder / name)
        assert restored.item_map == original.item_map and restored.input_size == 10
        with torch.no_grad():
            assert torch.allclose(restored.encoder.next_item_scores(batch), original.encoder.next_item_scores(batch))
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder / "hf").eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=batch["attention_mask"]).last_hidden_state
        assert torch.allclose(hidden[0, :3], original.encoder(batch)[0, :3], atol=1e-5)
    code, _, err = run_cli(["evaluate", folder / "st", "--protocol", "ranking", "--baseline", "none",
                            "--json", folder / "st.json"])
    assert code == 0, err  # the export remembers where its log is


def test_one_line_errors(workspace, tmp_path: Path) -> None:
    run = workspace["run"]
    code, _, err = run_cli(["evaluate", run, "--protocol", "ranking,knn"])
    assert_one_line_error(code, err, "cannot be mixed")
    code, _, err = run_cli(["evaluate", run])
    assert_one_line_error(code, err, "--test", "--protocol ranking")
    bad = tmp_path / "bad.csv"
    bad.write_text("user,label\nu40,c\n")
    code, _, err = run_cli(["evaluate", run, "--train", workspace["train"], "--test", bad, "--protocol", "knn"])
    assert_one_line_error(code, err, "bad.csv", "'c'")
    stranger = tmp_path / "other.csv"
    stranger.write_text("user,item,timestamp\nx,zz,1\nx,yy,2\n")
    code, _, err = run_cli(["embed", run, stranger, "--out", tmp_path / "e.npy"])
    assert_one_line_error(code, err, "other.csv", "item map")


def test_a_moved_log_is_named(tmp_path: Path) -> None:
    log, _, _ = write_log(tmp_path)
    run = tmp_path / "run"
    code, _, err = run_cli(["pretrain", log, "--modality", "sequence", "--out", run, "--batch-size", "16",
                            "--max-length", "10", "--max-steps", "2", "--no-progress"])
    assert code == 0, err
    log.rename(tmp_path / "elsewhere.csv")
    code, _, err = run_cli(["evaluate", run, "--protocol", "ranking"])
    assert_one_line_error(code, err, "log.csv", "missing")


@pytest.mark.parametrize("name", ["sasrec_tiny", "bert4rec_tiny"])
def test_next_item_scores_follow_each_encoders_protocol(name: str) -> None:
    torch.manual_seed(0)
    encoder = build_encoder({"name": name, "num_items": 9, "max_length": 4, "dropout": 0.0}).eval()
    ids = torch.tensor([[3, 4, 0, 0], [5, 6, 7, 8]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    with torch.no_grad():
        scores = encoder.next_item_scores(batch)
        if encoder.causal:  # the state at the last real item
            states = encoder.pool(encoder(batch), batch["attention_mask"])
        else:  # [MASK] after the history; a full history drops its oldest item to make room
            masked = torch.tensor([[3, 4, 10, 0], [6, 7, 8, 10]])
            mask = (masked != 0).long()
            states = encoder({"input_ids": masked, "attention_mask": mask})[[0, 1], [2, 3]]
        expected = encoder.score_items(states)[:, :10]
    assert scores.shape == (2, 10) and torch.isinf(scores[:, 0]).all()
    assert torch.allclose(scores[:, 1:], expected[:, 1:], atol=1e-5)


def test_remap_items_drops_unknown_items() -> None:
    log = InteractionLog(users=["x", "y"], histories=[np.array([1, 2, 3]), np.array([3])],
                         item_map={"m": 1, "n": 2, "o": 3})
    histories, dropped = remap_items(log, {"o": 7, "m": 5})
    assert [h.tolist() for h in histories] == [[5, 7], [7]] and dropped == 1


def test_pad_histories_keeps_the_most_recent_items() -> None:
    out = pad_histories([np.array([1, 2, 3, 4]), np.array([5])], max_length=3)
    assert out.tolist() == [[2, 3, 4], [5, 0, 0]]


def test_table_keeps_one_row_per_metric() -> None:
    rows = [EvalResult("ranking", 0.0, 0, "pretrained", "hr@10", 0.5),
            EvalResult("ranking", 0.0, 0, "pretrained", "ndcg@10", 0.25)]
    lines = format_table(rows).splitlines()
    assert len(lines) == 4 and "hr@10" in lines[2] and "0.5000" in lines[2] and "0.2500" in lines[3]


def test_python_api_evaluates_ranking(workspace) -> None:
    results = selfsup.evaluate(workspace["run"], protocols=["ranking"], baseline="none",
                               json_path=workspace["folder"] / "api.json")
    assert {r.encoder for r in results} == {"pretrained", "baseline"} and len(results) == 8


def test_embed_a_new_log_leaves_out_unknown_items_and_users(workspace, tmp_path: Path, caplog) -> None:
    log = tmp_path / "new.csv"
    log.write_text("user,item,timestamp\nnew1,a1,1\nnew1,zz,2\nnew1,a2,3\nnew2,zz,1\n")
    out = tmp_path / "new.parquet"
    with caplog.at_level("WARNING", logger="selfsup"):
        written = selfsup.embed(workspace["run"], log, out)
    users = pq.read_table(written).to_pydict()
    assert users["user"] == ["new1"]  # new2 has only an unknown item
    assert "2 interaction(s)" in caplog.text and "1 user(s)" in caplog.text
    loaded = load_stored(workspace["run"])
    ids = torch.tensor([[loaded.item_map["a1"], loaded.item_map["a2"]]])
    with torch.no_grad():
        own = loaded.encoder.embed({"input_ids": ids, "attention_mask": torch.ones_like(ids)})[0]
    assert torch.allclose(torch.tensor(users["embedding"][0]), own, atol=1e-5)
