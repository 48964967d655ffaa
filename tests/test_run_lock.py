"""One writer per run folder: a second `selfsup pretrain` on a folder in use fails naming the holder, a lock
left by a killed process is taken over, the lock goes away after a run (normal or failed), and the ranks of
a DDP run share it (the two-process CLI runs of test_multiprocess_cli.py cover DDP end to end)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from selfsup.errors import SelfSupError
from selfsup.train.lock import LOCK_FILE, RunLock

from cli_checks import assert_one_line_error, global_step, run_cli

PRETRAIN = ["--epochs", "1", "--batch-size", "16", "--image-size", "16", "--no-progress"]
HOLDER = """
import sys, time
from selfsup.train.lock import RunLock
lock = RunLock(sys.argv[1]).__enter__()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path: Path):
    """``holder(run)``: a separate python process that takes ``run``'s lock and sleeps (killed at the end)."""
    started: list[subprocess.Popen] = []

    def start(run: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
        started.append(process)
        assert process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_second_run_on_a_folder_in_use_names_the_holder(image_folder, tmp_path, holder):
    run = tmp_path / "run"
    process = holder(run)
    code, _, err = run_cli(["pretrain", image_folder, "--out", run, *PRETRAIN])
    assert_one_line_error(code, err, f"{run} is being written by process {process.pid} on host",
                          "wait for it to finish or use another --out folder")
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # nothing of the refused run was written
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == process.pid  # and the holder's record is intact


def test_a_lock_left_by_a_killed_process_is_taken_over(image_folder, tmp_path, holder, caplog):
    run = tmp_path / "run"
    process = holder(run)
    process.send_signal(signal.SIGKILL)  # kill -9: no clean-up runs, the lock file stays behind
    process.wait()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == process.pid

    with caplog.at_level(logging.WARNING, logger="selfsup"):
        code, out, err = run_cli(["pretrain", image_folder, "--out", run, *PRETRAIN])
    assert code == 0, err
    assert f"taking over the lock left by process {process.pid}" in caplog.text
    assert global_step(run) == 3  # it trained: 48 images / 16
    assert not (run / LOCK_FILE).exists()  # and let go of the folder at the end


def test_the_lock_is_released_after_a_normal_and_a_failed_run(image_folder, tmp_path, write_images):
    run = tmp_path / "run"
    code, _, err = run_cli(["pretrain", image_folder, "--out", run, *PRETRAIN])
    assert code == 0, err
    assert not (run / LOCK_FILE).exists()
    with RunLock(run):  # free again
        pass

    one = write_images(tmp_path / "one", per_class=1, seed=3, classes=("blob",), nested=False)
    failed = tmp_path / "failed"
    code, _, err = run_cli(["pretrain", one, "--out", failed, *PRETRAIN])  # SelfSupError after the lock is taken
    assert_one_line_error(code, err, "only 1 images")
    assert not failed.exists()  # the folder the lock made is gone again: nothing was written
    with RunLock(failed):
        assert (failed / LOCK_FILE).is_file()
    assert not failed.exists()


def test_an_existing_folder_keeps_its_files_and_a_lock_is_held_once(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with RunLock(run):
        record = json.loads((run / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["host"] and record["started"]
        with pytest.raises(SelfSupError, match=f"is being written by process {os.getpid()}"):
            RunLock(run).__enter__()  # flock is per open file: a second open in the same process is refused too
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_processes_launched_as_other_ranks_share_the_lock(tmp_path, monkeypatch):
    run = tmp_path / "run"
    with RunLock(run):
        for name in ("LOCAL_RANK", "NODE_RANK", "RANK"):
            with monkeypatch.context() as env:
                env.setenv(name, "1")
                with RunLock(run):  # a DDP rank that Lightning / torchrun started for this run: no error
                    pass
        assert (run / LOCK_FILE).is_file()  # and leaving it did not remove the launcher's lock
        monkeypatch.setenv("LOCAL_RANK", "0")  # rank 0 of a run is the launcher itself: it locks
        with pytest.raises(SelfSupError, match="is being written by"):
            RunLock(run).__enter__()


def test_an_out_path_that_is_a_file_is_one_line(image_folder, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    code, _, err = run_cli(["pretrain", image_folder, "--out", target, *PRETRAIN])
    assert_one_line_error(code, err, str(target), "not a folder")


def test_a_file_system_without_locks_runs_unguarded_with_a_warning(tmp_path, monkeypatch, caplog):
    import errno

    from selfsup.train import lock as lock_module

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock_module.fcntl, "flock", no_locks)
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="selfsup"), RunLock(run):
        assert run.is_dir() and not (run / LOCK_FILE).exists()
    assert "cannot lock the run folder" in caplog.text
    assert not run.exists()
