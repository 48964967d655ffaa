"""The pretraining engine through the API: run folder, metrics, resume, refusals, NaN guard,
the LR schedule and the collapse monitors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from cli_checks import checkpoint_step, metrics_rows

import selfsup
from selfsup import api
from selfsup.errors import SelfSupError
from selfsup.train.health import embedding_std, rankme
from selfsup.schedules import warmup_cosine

BATCH = 16
N_IMAGES = 48  # the image_folder fixture
STEPS_PER_EPOCH = N_IMAGES // BATCH
FAST = {"encoder": "tiny_cnn", "batch_size": BATCH, "image_size": 16, "progress_bar": False}
LOG_EVERY_STEP = {"trainer.health_every": 1, "trainer.log_every": 1}


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, write_images) -> tuple[Path, Path]:
    """(images, run): simclr pretrained for one epoch with every step logged. Tests copy it before changing it."""
    root = tmp_path_factory.mktemp("engine")
    images = write_images(root / "images", per_class=16, seed=0)
    run = api.pretrain(images, "simclr", root / "run", epochs=1, overrides=LOG_EVERY_STEP, **FAST)
    return images, run


def test_pretrain_writes_a_complete_run_folder(one_epoch_run):
    _, run = one_epoch_run
    assert (run / "config.yaml").is_file()
    assert (run / "metrics.csv").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert not list(run.rglob("*.tmp")), "a temporary file was left behind"
    assert checkpoint_step(run / "checkpoints" / "last.ckpt") == STEPS_PER_EPOCH

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["method"]["name"] == "simclr"
    assert config["method"]["temperature"] == 0.5  # the method's defaults are resolved into the file
    assert config["encoder"]["name"] == "tiny_cnn"
    assert config["data"]["image_size"] == 16
    assert config["optim"]["lr"] == pytest.approx(2e-3 * BATCH / 256)  # default lr, scaled by the batch size

    rows = metrics_rows(run)
    for column in ("loss_step", "loss_epoch", "lr", "health/embedding_std", "health/rankme"):
        assert column in rows[0], f"metrics.csv lacks {column}: {list(rows[0])}"
    losses = [float(r["loss_step"]) for r in rows if r["loss_step"]]
    assert len(losses) == STEPS_PER_EPOCH and all(math.isfinite(x) and x > 0 for x in losses)
    stds = [float(r["health/embedding_std"]) for r in rows if r["health/embedding_std"]]
    ranks = [float(r["health/rankme"]) for r in rows if r["health/rankme"]]
    assert len(stds) == STEPS_PER_EPOCH and len(ranks) == STEPS_PER_EPOCH
    assert all(0 < s < 1 for s in stds)
    assert all(1 < r <= BATCH for r in ranks)  # a fresh network is far from collapse

    # the logged learning rate follows the warmup + cosine schedule over all steps of the run
    lrs = {int(r["step"]): float(r["lr"]) for r in rows if r["lr"]}
    warmup = int(0.05 * STEPS_PER_EPOCH)
    for step, lr in lrs.items():
        assert lr == pytest.approx(config["optim"]["lr"] * warmup_cosine(step, STEPS_PER_EPOCH, warmup), rel=1e-5)


def test_rerun_resumes_from_last_checkpoint(one_epoch_run, tmp_path):
    images, first = one_epoch_run
    run = tmp_path / "run"
    shutil.copytree(first, run)
    first_rows = metrics_rows(run)
    first_step = checkpoint_step(run / "checkpoints" / "last.ckpt")

    api.pretrain(images, "simclr", run, epochs=2, overrides=LOG_EVERY_STEP, **FAST)

    step = checkpoint_step(run / "checkpoints" / "last.ckpt")
    assert step > first_step
    assert step == 2 * STEPS_PER_EPOCH
    rows = metrics_rows(run)
    assert rows[: len(first_rows)] == first_rows, "metrics.csv lost or changed the first run's rows"
    # only the second epoch's steps were trained (a restart from scratch would log steps 0.. again)
    new_steps = sorted(int(r["step"]) for r in rows[len(first_rows):] if r["loss_step"])
    assert new_steps == list(range(STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH))
    assert not list(run.rglob("*.tmp"))


def test_run_folder_of_another_method_is_refused(one_epoch_run):
    images, run = one_epoch_run
    before = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    with pytest.raises(SelfSupError, match="made by method 'simclr', not 'byol'"):
        api.pretrain(images, "byol", run, epochs=2, **FAST)
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before  # untouched


def test_resuming_with_another_optimizer_is_refused(one_epoch_run):
    images, run = one_epoch_run
    before = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    with pytest.raises(SelfSupError, match="trained with optimizer 'adamw', not 'lars'.*optim.optimizer=adamw"):
        api.pretrain(images, "simclr", run, epochs=2, overrides={"optim.optimizer": "lars"}, **FAST)
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before  # untouched


def test_non_run_folder_is_refused(image_folder, tmp_path):
    out = tmp_path / "not_a_run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SelfSupError, match="not a selfsup run"):
        api.pretrain(image_folder, "simclr", out, epochs=1, **FAST)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_nan_loss_stops_with_advice_and_keeps_a_loadable_checkpoint(image_folder, tmp_path):
    run = tmp_path / "run"
    # an absurd SGD step (the largest optim.lr takes): step 0's loss is finite, the update blows the weights up, step 1 is NaN
    overrides = {"optim.optimizer": "sgd", "optim.lr": 1e9, "trainer.checkpoint_every": 1}
    with pytest.raises(SelfSupError) as info:
        api.pretrain(image_folder, "simclr", run, epochs=2, overrides=overrides, **FAST)
    message = str(info.value)
    assert "nan" in message.lower()
    assert "learning rate" in message and "optim.lr=" in message
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert "last good checkpoint" in message and str(checkpoint) in message

    step = checkpoint_step(checkpoint)  # loads with weights_only=True
    assert f"(step {step})" in message
    assert 1 <= step < 2 * STEPS_PER_EPOCH  # it stopped early
    encoder = selfsup.load(run)
    assert encoder.config["name"] == "tiny_cnn"
    # a checkpoint is only written while every weight is finite
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert not list(run.rglob("*.tmp"))


def test_resume_applies_a_new_learning_rate_and_does_not_replay_epochs(one_epoch_run, tmp_path):
    images, first = one_epoch_run
    run = tmp_path / "run"
    shutil.copytree(first, run)
    n_first = len(metrics_rows(run))
    old_lr = yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"]
    new_lr = old_lr * 100
    api.pretrain(images, "simclr", run, epochs=2, overrides={**LOG_EVERY_STEP, "optim.lr": new_lr}, **FAST)

    resumed = [r for r in metrics_rows(run)[n_first:] if r["lr"]]
    total = 2 * STEPS_PER_EPOCH
    warmup = int(0.05 * total)
    for row in resumed:  # lr = new base lr x the schedule's factor at that step
        step = int(row["step"])
        assert float(row["lr"]) == pytest.approx(new_lr * warmup_cosine(step, total, warmup), rel=1e-4)
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == pytest.approx(new_lr)


def test_resumed_run_draws_new_batches(one_epoch_run, tmp_path):
    """With lr 0 nothing learns, so equal losses would mean the first epoch's batches were replayed."""
    images, first = one_epoch_run
    run = tmp_path / "run"
    api.pretrain(images, "simclr", run, epochs=1, overrides={**LOG_EVERY_STEP, "optim.lr": 0.0}, **FAST)
    n_first = len(metrics_rows(run))
    api.pretrain(images, "simclr", run, epochs=2, overrides={**LOG_EVERY_STEP, "optim.lr": 0.0}, **FAST)
    losses = [float(r["loss_step"]) for r in metrics_rows(run) if r["loss_step"]]
    assert len(losses) == 2 * STEPS_PER_EPOCH
    assert losses[:STEPS_PER_EPOCH] != losses[STEPS_PER_EPOCH:]
    assert n_first < len(metrics_rows(run))


def test_health_monitors_detect_collapse():
    torch.manual_seed(0)
    dim = 32
    collapsed = torch.randn(1, dim).repeat(64, 1)
    spread = torch.randn(64, dim)
    assert embedding_std(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    assert rankme(collapsed).item() == pytest.approx(1.0, abs=1e-3)
    # random directions: per-dimension std of unit vectors is about 1/sqrt(D); effective rank near D
    assert embedding_std(spread).item() == pytest.approx(1 / math.sqrt(dim), rel=0.2)
    assert rankme(spread).item() > 0.75 * dim
    # a rank-2 set sits in between
    basis = torch.randn(2, dim)
    rank2 = torch.randn(64, 2) @ basis
    assert 1.5 < rankme(rank2).item() <= 2.0 + 1e-3


def test_max_steps_stops_training_and_sets_the_schedule(image_folder, tmp_path):
    run = api.pretrain(image_folder, "simclr", tmp_path / "run", epochs=50, max_steps=4,
                       overrides={**LOG_EVERY_STEP, "optim.warmup": 0.0}, **FAST)
    assert checkpoint_step(run / "checkpoints" / "last.ckpt") == 4
    lrs = [float(r["lr"]) for r in metrics_rows(run) if r["lr"]]
    base = yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"]
    # the cosine runs over the 4 steps, not over 50 epochs
    assert lrs == pytest.approx([base * warmup_cosine(s, 4, 0) for s in range(4)], rel=1e-5)


def test_a_time_budget_drives_the_schedules(image_folder, tmp_path):
    """With --max-minutes ending training long before the epochs would, the lr still decays towards 0 and the
    methods' schedules (here BYOL's EMA momentum) reach the end: progress is measured by time."""
    run = api.pretrain(image_folder, "byol", tmp_path / "run", epochs=10_000, max_minutes=0.08,
                       overrides={**LOG_EVERY_STEP, "optim.warmup": 0.0}, **FAST)
    rows = [r for r in metrics_rows(run) if r["lr"]]
    base = yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"]
    steps = checkpoint_step(run / "checkpoints" / "last.ckpt")
    assert 3 <= steps < 10_000 * STEPS_PER_EPOCH // 100  # stopped by the clock
    assert float(rows[-1]["lr"]) < 0.3 * base  # by steps alone it would still be ~base
    momenta = [float(r["momentum"]) for r in rows if r.get("momentum")]
    assert momenta[-1] > momenta[0] and momenta[-1] > 0.995  # tau_base 0.99 -> 1 over the time budget
