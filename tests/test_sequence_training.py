"""Behaviour sequences through the engine: the training data path (items held out for evaluation never
reach pretraining) and SASRec, from the CLI, on a tiny generated interaction log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_checks import assert_one_line_error, global_step, run_cli
from selfsup.config import DataConfig, TrainerConfig
from selfsup.encoders import build_encoder
from selfsup.errors import SelfSupError
from selfsup.registry import get_method
from selfsup.modalities.sequence.training import load_sequence_data

N_USERS, N_ITEMS, LENGTH = 40, 12, 14


def write_log(path: Path, malformed: bool = False) -> Path:
    """Each user walks the items in a cycle from its own start: the next item is always predictable."""
    rows = ["user,item,timestamp"]
    for user in range(N_USERS):
        for t in range(LENGTH):
            rows.append(f"u{user},i{(user + t) % N_ITEMS},{1000 * user + t}")
    if malformed:
        rows.insert(3, "u0,i5,yesterday")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_training_histories_hold_out_the_last_two_items(tmp_path: Path) -> None:
    data = DataConfig(path=str(write_log(tmp_path / "log.csv")), modality="sequence", max_length=8)
    train = load_sequence_data(data, tmp_path / "run")
    item_map = json.loads((tmp_path / "run" / "item_map.json").read_text())
    # LENGTH - 2 = 12 training items per user in windows of 8 sharing one item: items 4..11 and 0..4
    assert train.num_samples == 2 * N_USERS and train.encoder_kwargs == {"num_items": N_ITEMS, "max_length": 8}
    batch = next(iter(train.make_loader(lambda b, g: b, 2 * N_USERS, TrainerConfig(), 1)))
    ids = {tuple(row[row > 0].tolist()) for row in batch["input_ids"]}
    for user in range(N_USERS):
        walk = [item_map[f"i{(user + t) % N_ITEMS}"] for t in range(LENGTH - 2)]
        assert tuple(walk[4:]) in ids and tuple(walk[:5]) in ids


def test_sasrec_needs_a_causal_sequence_encoder() -> None:
    with pytest.raises(SelfSupError, match="causal item-sequence encoder"):
        get_method("sasrec").cls(build_encoder({"name": "bert4rec_tiny", "num_items": 5}), 8)


def test_sasrec_learns_the_next_item_from_the_cli(tmp_path: Path) -> None:
    log, run = write_log(tmp_path / "log.csv", malformed=True), tmp_path / "run"
    args = ["pretrain", log, "--modality", "sequence", "--out", run, "--batch-size", "8", "--no-progress",
            "--max-length", "16", "--set", "trainer.log_every=1", "--set", "optim.lr=0.01"]
    code, out, err = run_cli([*args, "--max-steps", "60"])
    assert code == 0, err
    assert global_step(run) == 60
    metrics = (run / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    accuracy = [float(row.split(",")[header.index("next_item_accuracy")]) for row in metrics[1:]
                if row.split(",")[header.index("next_item_accuracy")]]
    assert sum(accuracy[:5]) / 5 < 0.3 < sum(accuracy[-5:]) / 5  # chance is 1/12; the walk is deterministic
    code, _, err = run_cli([*args, "--max-steps", "70"])  # resumes, reusing the saved item map
    assert code == 0, err
    assert global_step(run) == 70
    code, _, err = run_cli([*args, "--max-steps", "80", "--strict", "--out", tmp_path / "strict"])
    assert_one_line_error(code, err, "log.csv:4:", "timestamp")


def test_sequence_methods_are_listed() -> None:
    code, out, _ = run_cli(["methods", "--modality", "sequence"])
    assert code == 0 and "sasrec" in out
