"""``--logger``: TensorBoard, MLflow and W&B beside metrics.csv, offline in the run folder, resumed into the same
tracker run; a missing extra or a misspelt name is one line."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selfsup import api, cli
from selfsup.errors import SelfSupError

BATCH = 16
STEPS_PER_EPOCH = 48 // BATCH  # the image_folder fixture: 48 images
FAST = {"encoder": "tiny_cnn", "batch_size": BATCH, "image_size": 16, "progress_bar": False}
LOG_EVERY_STEP = {"trainer.health_every": 1, "trainer.log_every": 1}
TRACKED = ("loss_step", "health/rankme")  # a metric Lightning logs, and one the health callback logs itself


LOCAL_HOSTS = {None, "localhost", "127.0.0.1", "::1", ""}


@pytest.fixture
def offline(monkeypatch):
    """Any network connection or name lookup, from any thread, fails the test; Unix sockets stay open (W&B talks
    to its own local process). A refused attempt in a background thread (telemetry) is caught at teardown."""
    attempts: list[str] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def local_only(self, address):
        if self.family != getattr(socket, "AF_UNIX", None):
            attempts.append(f"connect {address}")
            raise AssertionError(f"network connection attempted: {address}")
        return connect(self, address)

    def lookup(host, *args, **kwargs):
        if host not in LOCAL_HOSTS:
            attempts.append(f"lookup {host}")
            raise AssertionError(f"name lookup attempted: {host}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(socket.socket, "connect_ex", local_only)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    names = ("WANDB_MODE", "WANDB_ERROR_REPORTING", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():  # what the loggers set stays inside the test
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    assert not attempts, f"network used: {attempts}"


def csv_metrics(run: Path) -> dict[str, dict[int, float]]:
    """metrics.csv as {metric: {step: value}}."""
    found: dict[str, dict[int, float]] = {name: {} for name in TRACKED}
    with open(run / "metrics.csv", newline="") as file:
        for row in csv.DictReader(file):
            for name in TRACKED:
                if row.get(name):
                    found[name][int(row["step"])] = float(row[name])
    return found


def tensorboard_metrics(run: Path) -> tuple[dict[str, dict[int, float]], dict]:
    """Every event file under RUN/tensorboard read by TensorBoard's own reader, and the logged settings."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = run / "tensorboard"
    events = EventAccumulator(str(folder))
    events.Reload()
    found = {name: {e.step: e.value for e in events.Scalars(name)} for name in TRACKED}
    return found, yaml.safe_load((folder / "hparams.yaml").read_text())


def mlflow_metrics(run: Path) -> tuple[dict[str, dict[int, float]], dict]:
    """The one MLflow run in RUN/mlruns, read through MLflow's client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file:{(run / 'mlruns').resolve()}")
    experiment = client.get_experiment_by_name("selfsup")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, f"expected one MLflow run, found {len(runs)}"
    found = {name: {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id, name)} for name in TRACKED}
    assert runs[0].info.status == "FINISHED"
    return found, {"method": {"name": runs[0].data.params["method/name"]}}


def wandb_records(path: Path):
    """The protobuf records of a W&B offline run file (``run-ID.wandb``: a ':W&B' header, then LevelDB-log
    blocks of 32 KiB whose records are whole (1) or split into first (2), middle (3) and last (4) parts)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:  # a block's tail too short for a record header is padding
            position += left
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def wandb_metrics(run: Path) -> tuple[dict[str, dict[int, float]], dict]:
    """Every offline W&B run under RUN/wandb (one per session, all with the same run ID), merged by step."""
    found: dict[str, dict[int, float]] = {name: {} for name in TRACKED}
    ids, settings = set(), {}
    for path in sorted((run / "wandb").glob("offline-run-*/run-*.wandb")):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.add(record.run.run_id)
            elif kind == "config":
                settings.update({item.key or ".".join(item.nested_key): json.loads(item.value_json)
                                 for item in record.config.update})
            elif kind == "history":
                row = {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                for name in TRACKED:
                    if name in row:
                        found[name][int(row["trainer/global_step"])] = row[name]
    assert len(ids) == 1, f"expected one W&B run ID across the sessions, found {ids}"
    return found, settings


READERS = {"tensorboard": (tensorboard_metrics, "tensorboard"), "mlflow": (mlflow_metrics, "mlflow"),
           "wandb": (wandb_metrics, "wandb")}


@pytest.mark.parametrize("tracker", sorted(READERS))
def test_tracker_logs_what_metrics_csv_logs_and_resumes_into_the_same_run(tracker, image_folder, tmp_path, offline):
    reader, module = READERS[tracker]
    assert importlib.util.find_spec(module), f"{module} is missing: the dev extra installs selfsup[{tracker}]"
    run = tmp_path / "run"
    api.pretrain(image_folder, "simclr", run, epochs=1, logger=tracker, overrides=LOG_EVERY_STEP, **FAST)

    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["logger"] == tracker
    expected = csv_metrics(run)  # metrics.csv is still written, beside the tracker
    assert sorted(expected["loss_step"]) == list(range(STEPS_PER_EPOCH))
    found, settings = reader(run)
    for name in TRACKED:
        assert found[name] == pytest.approx(expected[name], rel=1e-6), f"{tracker}: {name} differs from metrics.csv"
    assert settings["method"]["name"] == "simclr"  # the run's settings went to the tracker too

    api.pretrain(image_folder, "simclr", run, epochs=2, logger=tracker, overrides=LOG_EVERY_STEP, **FAST)
    expected = csv_metrics(run)
    assert sorted(expected["loss_step"]) == list(range(2 * STEPS_PER_EPOCH))
    found, _ = reader(run)  # the readers check that it is one tracker run
    for name in TRACKED:
        assert found[name] == pytest.approx(expected[name], rel=1e-6), f"{tracker}: resumed {name} differs"


def test_csv_is_the_default_and_writes_no_tracker_files(image_folder, tmp_path, offline):
    run = api.pretrain(image_folder, "simclr", tmp_path / "run", max_steps=1, **FAST)
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["logger"] == "csv"
    assert (run / "metrics.csv").is_file()
    assert not {"tensorboard", "mlruns", "wandb", "hparams.yaml"} & {p.name for p in run.iterdir()}


@pytest.mark.parametrize("tracker", ["tensorboard", "mlflow", "wandb"])
def test_missing_extra_is_one_line_naming_the_install(tracker, image_folder, tmp_path, monkeypatch, capsys):
    for module in ("tensorboard", "tensorboardX") if tracker == "tensorboard" else (tracker,):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    run = tmp_path / "run"
    with pytest.raises(SelfSupError, match=rf"pip install 'selfsup\[{tracker}\]'"):
        api.pretrain(image_folder, "simclr", run, max_steps=1, logger=tracker, **FAST)
    assert not run.exists(), "the run folder was touched before the check"

    code = cli.main(["pretrain", str(image_folder), "--out", str(run), "--logger", tracker, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("selfsup: error: --logger")


def test_unknown_logger_is_refused_with_a_suggestion(image_folder, tmp_path, suggests):
    with pytest.raises(SelfSupError) as error:
        api.pretrain(image_folder, "simclr", tmp_path / "run", max_steps=1, logger="tensorbord", **FAST)
    assert "trainer.logger" in str(error.value) and suggests(str(error.value), "tensorboard")
    assert not (tmp_path / "run").exists()


def test_mlflow_starts_without_its_usage_telemetry(tmp_path):
    """MLflow 3 starts a telemetry client when imported, except under CI or pytest: a clean environment shows
    what a user's run does."""
    assert importlib.util.find_spec("mlflow"), "mlflow is missing: the dev extra installs selfsup[mlflow]"
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_CURRENT_TEST", "DO_NOT_TRACK")
             and not k.startswith("MLFLOW_")}
    clean["PYTHONPATH"] = os.pathsep.join(sys.path)
    probe = ("from selfsup.trackers import check_tracker; check_tracker('mlflow'); "
             "from mlflow.telemetry import get_telemetry_client; print(get_telemetry_client())")
    shown = subprocess.run([sys.executable, "-c", probe], env=clean, capture_output=True, text=True, timeout=120,
                           cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "None", f"MLflow telemetry is on: {shown.stdout}"
