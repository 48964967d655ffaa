"""Damaged or foreign checkpoints: each gives one line naming the file and what is wrong (exit code 2, no
traceback) under `pretrain` (resume), `evaluate`, `embed` and `export`; nothing in a file ever runs; a run
whose last.ckpt cannot be read goes on from best.ckpt, with a warning."""

from __future__ import annotations

import csv
import logging
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from cli_checks import assert_one_line_error, global_step, run_cli

PRETRAIN = ["--batch-size", "16", "--image-size", "16", "--no-progress"]


class Payload:
    """Unpickled without weights_only, this would create ``marker``: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _real(run: Path) -> bytes:
    return (run / "checkpoints" / "last.ckpt").read_bytes()


def _empty(path: Path, run: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path, run: Path) -> None:
    data = _real(run)
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path, run: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _list(path: Path, run: Path) -> None:
    torch.save([1, 2, 3], path)


def _payload(path: Path, run: Path) -> None:
    torch.save({"state_dict": Payload(run.parent / "payload_ran"), "global_step": 1}, path)


def _no_state_dict(path: Path, run: Path) -> None:
    torch.save({"global_step": 3, "epoch": 1}, path)


def _foreign_zip(path: Path, run: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")


def _tampered(path: Path, run: Path) -> None:
    """Bytes of the pickled structure (data.pkl) overwritten: the archive is whole, its contents are not."""
    data = bytearray(_real(run))
    with zipfile.ZipFile(run / "checkpoints" / "last.ckpt") as archive:
        record = next(info for info in archive.infolist() if info.filename.endswith("/data.pkl"))
    start = record.header_offset + 30 + len(record.filename) + len(record.extra)  # after the local file header
    data[start + 1: start + 65] = b"\xff" * 64
    path.write_bytes(bytes(data))


def _other_model(path: Path, run: Path) -> None:
    torch.save({"state_dict": {"method.encoder.other.weight": torch.zeros(2, 2)}, "global_step": 3,
                "loops": {}, "optimizer_states": []}, path)


DAMAGE = {  # how a last.ckpt is broken -> what the error line says about it
    "empty": (_empty, "empty file, 0 bytes"),
    "truncated": (_truncated, "truncated or damaged"),
    "garbage": (_garbage, "not a PyTorch checkpoint"),
    "list": (_list, "it holds a list, not a checkpoint"),
    "payload": (_payload, "it asks to load io.open, not only tensors and plain data; refused"),
    "no_state_dict": (_no_state_dict, "it has no state_dict"),
    "foreign_zip": (_foreign_zip, "a zip archive, but not of a PyTorch checkpoint"),
    "tampered": (_tampered, "damaged: its pickled contents are invalid"),
    "other_model": (_other_model, "its weights do not fit"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, write_images) -> dict[str, Path]:
    """A 2-epoch simclr run (3 steps an epoch: last.ckpt at step 6, best.ckpt at step 3 or 6) and its images."""
    root = tmp_path_factory.mktemp("damaged")
    images = write_images(root / "images", per_class=16, seed=0)
    run = root / "run"
    code, _, err = run_cli(["pretrain", images, "--out", run, "--epochs", "2", *PRETRAIN,
                            "--set", "trainer.log_every=1"])
    assert code == 0, err
    return {"run": run, "images": images}


def _copy_run(trained: dict[str, Path], to: Path) -> Path:
    shutil.copytree(trained["run"], to)
    return to


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_each_damaged_checkpoint_is_one_line_in_every_command(trained, tmp_path, kind):
    run = _copy_run(trained, tmp_path / "run")
    damage, reason = DAMAGE[kind]
    last = run / "checkpoints" / "last.ckpt"
    damage(last, run)
    (run / "checkpoints" / "best.ckpt").unlink()
    images = trained["images"]
    commands = {
        "pretrain": ["pretrain", images, "--out", run, "--epochs", "3", *PRETRAIN],
        "evaluate": ["evaluate", run, "--train", images, "--test", images, "--protocol", "knn"],
        "embed": ["embed", run, images, "--out", tmp_path / "emb.npy"],
        "export": ["export", run, "--out", tmp_path / "export"],
    }
    for name, argv in commands.items():
        code, _, err = run_cli(argv)
        line = assert_one_line_error(code, err, f"{last}: ", reason)
        # a file that loads but fits no model here is not "unreadable": there is nothing to fall back from
        assert ("there is no best.ckpt to fall back to" in line) == (kind != "other_model"), (name, line)
    assert not (run.parent / "payload_ran").exists()  # weights-only: the pickled call never ran
    assert last.stat().st_size > 0 or kind == "empty"  # the user's file is left where it was
    assert not (tmp_path / "emb.npy").exists() and not (tmp_path / "export").exists()


def test_both_checkpoints_unreadable_says_so_and_how_to_fix(trained, tmp_path):
    run = _copy_run(trained, tmp_path / "run")
    last, best = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best.ckpt"
    _truncated(last, run)
    _empty(best, run)
    code, _, err = run_cli(["pretrain", trained["images"], "--out", run, "--epochs", "3", *PRETRAIN])
    assert_one_line_error(code, err, f"{last}: not a readable checkpoint (truncated or damaged",
                          "neither is best.ckpt (empty file, 0 bytes)", "or use a new --out folder")
    code, _, err = run_cli(["export", run, "--out", tmp_path / "export"])
    assert_one_line_error(code, err, f"{last}: ", "neither is best.ckpt", "pretrain again")
    assert last.stat().st_size > 0 and best.exists()  # nothing deleted


def _step_rows(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as file:
        return [int(row["step"]) for row in csv.DictReader(file) if row.get("loss_step")]


def test_resume_falls_back_to_best_and_continues_from_its_step(trained, tmp_path, caplog):
    run = _copy_run(trained, tmp_path / "run")
    best_step = int(torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["global_step"])
    rows_before = len(_step_rows(run))
    last = run / "checkpoints" / "last.ckpt"
    _garbage(last, run)

    with caplog.at_level(logging.WARNING, logger="selfsup"):
        code, _, err = run_cli(["pretrain", trained["images"], "--out", run, "--epochs", "10",
                                "--max-steps", str(best_step + 1), *PRETRAIN, "--set", "trainer.log_every=1"])
    assert code == 0, err
    assert f"{last} unreadable (not a PyTorch checkpoint" in caplog.text
    assert f"resuming from best.ckpt (step {best_step})" in caplog.text
    assert global_step(run) == best_step + 1  # last.ckpt is whole again: the next save replaced it
    assert len(_step_rows(run)) == rows_before + 1  # one step of training, from best's step on

    caplog.clear()
    _truncated(last, run)
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        code, out, err = run_cli(["export", run, "--out", tmp_path / "export"])
    assert code == 0, err
    assert "using best.ckpt" in caplog.text and (tmp_path / "export" / "model.safetensors").is_file()
