"""Collapse alarms, --on-collapse, and the --probe online probe (issue 19 item 2), on real tiny runs.

The collapsing run is a real one: vit_micro (no BatchNorm to keep its outputs spread) trained with SGD and a
weight decay of 10, so that once the warmup has raised the learning rate every weight shrinks toward zero
and the encoder maps every image to the same vector; its first steps are healthy.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from cli_checks import checkpoint_step, metrics_rows
from selfsup import api
from selfsup.artifacts import LoadedEncoder, load
from selfsup.cli import main
from selfsup.encoders import build_encoder
from selfsup.errors import SelfSupError
from selfsup.modalities import get_modality
from selfsup.probe import load_probe, probe_scores
from selfsup.train.health import HealthMonitor, HealthRecord, embedding_std, std_floor

FAST = {"batch_size": 16, "image_size": 16, "progress_bar": False}
COLLAPSE = ["--encoder", "vit_micro", "--method", "simsiam", "--batch-size", "16", "--image-size", "16",
            "--epochs", "10", "--no-progress", "--set", "trainer.health_every=1", "--set", "trainer.checkpoint_every=2",
            "--set", "optim.optimizer=sgd", "--set", "optim.lr=0.1", "--set", "optim.weight_decay=10",
            "--set", "optim.warmup=0.3"]


def health(run: Path) -> dict:
    return json.loads((run / "health.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory, write_images) -> tuple[Path, Path]:
    """(unlabelled images, a labelled probe folder): 3 visually distinct classes."""
    root = tmp_path_factory.mktemp("health")
    return write_images(root / "images", per_class=16, seed=0), write_images(root / "probe", per_class=10, seed=5)


def probe_std(run: Path, probe: Path) -> float:
    """The embedding std of the run's stored encoder on the probe images, relative to the floor."""
    loaded = load(run)
    modality = get_modality(loaded.modality)
    images = modality.read_labeled(loaded, probe, None, "utf-8").inputs
    with torch.no_grad():
        feats = loaded.encoder.embed(modality.eval_transforms(loaded)[1](images))
    return embedding_std(feats).item() / std_floor(feats.shape[1])


def test_collapse_stops_the_run_and_keeps_the_last_healthy_checkpoint(data, tmp_path, capsys):
    images, probe = data
    run = tmp_path / "run"
    assert main(["pretrain", str(images), "--out", str(run), "--on-collapse", "stop", *COLLAPSE]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    record = health(run)
    assert record["stopped_at"] is not None and record["stopped_at"] < 29  # before the 30 steps of 10 epochs
    assert {a["metric"] for a in record["alarms"]} & {"health/embedding_std", "health/rankme"}
    alarm = record["alarms"][0]
    assert alarm["value"] < alarm["floor"] and alarm["step"] == record["stopped_at"]
    assert f"training stopped at step {record['stopped_at']}" in err and "optim.weight_decay" in err
    last = run / "checkpoints" / "last.ckpt"
    assert record["healthy_checkpoint"] == "checkpoints/last.ckpt" and str(last) in err
    assert checkpoint_step(last) <= record["stopped_at"]  # not a checkpoint written after the collapse
    assert not (run / "checkpoints" / "healthy.ckpt").exists()
    assert "Stopped at step" in (run / "report.html").read_text()  # the report of a stopped run says why
    # the kept checkpoint was written after a healthy check, and loads
    dim = load(run).encoder.dim
    checked = next(r for r in metrics_rows(run) if r["health/rankme"] and int(r["step"]) == checkpoint_step(last) - 1)
    assert float(checked["health/rankme"]) >= 2.0 and float(checked["health/embedding_std"]) >= std_floor(dim)


def test_warn_keeps_training_and_keeps_the_healthy_checkpoint_aside(data, tmp_path, caplog):
    images, probe = data
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        assert main(["pretrain", str(images), "--out", str(run), *COLLAPSE, "--max-steps", "22"]) == 0
    record = health(run)
    assert record["stopped_at"] is None and record["alarms"]
    warned = [r.getMessage() for r in caplog.records if "collapse at step" in r.getMessage()]
    assert len(warned) == len(record["alarms"])  # once per kind
    assert len({a["metric"] for a in record["alarms"]}) == len(record["alarms"])
    kept = run / "checkpoints" / "healthy.ckpt"
    assert record["healthy_checkpoint"] == "checkpoints/healthy.ckpt"
    assert checkpoint_step(kept) < checkpoint_step(run / "checkpoints" / "last.ckpt") == 22
    assert checkpoint_step(kept) <= record["alarms"][0]["step"]
    # the kept encoder spreads the probe images more than the collapsed one of last.ckpt
    collapsed = probe_std(run, probe)
    kept_run = tmp_path / "kept"
    shutil.copytree(run, kept_run)
    shutil.copy(kept, kept_run / "checkpoints" / "last.ckpt")
    assert probe_std(kept_run, probe) > 1.3 * collapsed


def test_healthy_run_raises_no_alarm_and_logs_the_probe(data, tmp_path):
    images, probe = data
    run = api.pretrain(images, "simclr", tmp_path / "run", encoder="tiny_cnn", epochs=5, probe=probe,
                       overrides={"trainer.health_every": 1, "trainer.probe_every": 5}, **FAST)
    assert health(run) == {"alarms": [], "stopped_at": None, "healthy_checkpoint": "checkpoints/last.ckpt"}
    rows = [r for r in metrics_rows(run) if r.get("probe/knn")]
    assert [int(r["step"]) for r in rows] == [4, 9, 14]  # every 5 steps, on the step just trained
    for row in rows:
        assert float(row["probe/knn"]) > 0.5 and float(row["probe/linear"]) > 0.5  # 3 classes: chance is 1/3
    # probing changes nothing in training: the same run without it ends with the same weights
    plain = api.pretrain(images, "simclr", tmp_path / "plain", encoder="tiny_cnn", epochs=5,
                         overrides={"trainer.health_every": 1}, **FAST)
    weights = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for r in (run, plain)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


class Constant(nn.Module):
    """An encoder that maps every input to the same vector."""

    dim = 8

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], self.dim)


def test_probe_scores_reflect_the_encoder_and_leave_its_modes_alone(data):
    _, probe_folder = data
    encoder = build_encoder({"name": "tiny_cnn", "image_size": 16})
    loaded = LoadedEncoder(encoder, "image", 16, "simclr")
    probe = load_probe(loaded, probe_folder)
    assert len(probe.classes) == 3 and probe.fit_labels.numel() == probe.test_labels.numel() == 15
    assert probe.chance == pytest.approx(1 / 3)
    assert probe_scores(Constant(), probe, "cpu") == {"knn": pytest.approx(probe.chance),
                                                      "linear": pytest.approx(probe.chance)}
    encoder.train()
    frozen = next(m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d))
    frozen.eval()  # as a run with frozen_norm_stats keeps it
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    scores = probe_scores(encoder, probe, "cpu")
    assert scores["knn"] > 0.5 and scores["linear"] > 0.5  # even random features separate these classes
    assert encoder.training and not frozen.training
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # running stats untouched


@pytest.mark.parametrize("case", ["missing", "one_class", "empty", "sequence"])
def test_bad_probe_is_one_line_before_the_run_folder(data, tmp_path, case):
    images, probe = data
    path = tmp_path / "probe"
    if case == "one_class":
        (path / "only").mkdir(parents=True)
        (path / "only" / "a.png").write_bytes((probe / "blob" / "blob_000.png").read_bytes())
        (path / "only" / "b.png").write_bytes((probe / "blob" / "blob_001.png").read_bytes())
    elif case == "empty":
        (path / "a").mkdir(parents=True)
        (path / "b").mkdir()
    modality = "sequence" if case == "sequence" else "image"
    with pytest.raises(SelfSupError) as info:
        api.pretrain(images, None, tmp_path / "run", epochs=1, probe=path if case != "sequence" else probe,
                     modality=modality, **({"encoder": "tiny_cnn", **FAST} if modality == "image" else {"progress_bar": False}))
    message = str(info.value)
    assert "\n" not in message and message.startswith("--probe ")
    expected = {"missing": "no such file or folder", "one_class": "at least 2", "empty": "no images",
                "sequence": "no labelled reader"}[case]
    assert expected in message
    if case in ("missing", "sequence"):  # found before any data is read or any folder written
        assert not (tmp_path / "run").exists()


def test_on_collapse_takes_warn_or_stop(data, tmp_path, capsys):
    images, _ = data
    assert main(["pretrain", str(images), "--out", str(tmp_path / "run"), "--on-collapse", "halt"]) == 2
    err = capsys.readouterr().err
    assert "--on-collapse / trainer.on_collapse must be one of warn, stop; got 'halt'" in err
    assert not (tmp_path / "run").exists()


class Steady(pl.LightningModule):
    """A real training loop whose embeddings stay spread and whose loss is ``flat`` (the same every step) or
    moves with the batch."""

    def __init__(self, flat: bool) -> None:
        super().__init__()
        self.flat = flat
        self.weight = nn.Parameter(torch.ones(8))

    def training_step(self, batch, batch_idx):
        moving = 0.0 if self.flat else batch.mean()
        loss = (self.weight * 0).sum() + 0.5 + moving
        return {"loss": loss, "embeddings": batch}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("flat", [True, False])
def test_a_loss_stuck_at_one_value_raises_the_flat_loss_alarm(tmp_path, flat):
    batches = [torch.randn(16, 8, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    record = HealthRecord()
    trainer = pl.Trainer(max_steps=8, logger=CSVLogger(str(tmp_path)), enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[HealthMonitor(1, patience=3, run_dir=tmp_path, record=record)])
    trainer.fit(Steady(flat), torch.utils.data.DataLoader(batches, batch_size=None))
    assert [a.metric for a in record.alarms] == (["loss"] if flat else [])  # the embeddings stay spread
    if flat:
        assert record.alarms[0].step == 2 and "trivial solution" in record.alarms[0].message
        assert health(tmp_path)["alarms"][0]["metric"] == "loss"
