"""Where a run's metrics go: ``RUN_DIR/metrics.csv`` always, plus the experiment tracker ``trainer.logger`` names.

``metrics.csv`` is Lightning's CSV logger, appending instead of truncating, so a resumed run continues the same
file; other features (health, reports) read it, so it is written whatever ``--logger`` says. The trackers are
Lightning's own loggers, each writing offline into the run folder (nothing is sent anywhere):

- ``tensorboard``: ``RUN_DIR/tensorboard/events.out.tfevents.*`` (``tensorboard --logdir RUN_DIR/tensorboard``);
  a resumed run adds an event file to the same folder, which TensorBoard shows as the same run.
- ``mlflow``: a file store ``RUN_DIR/mlruns`` (experiment ``selfsup``, run named after the folder;
  ``mlflow ui --backend-store-uri RUN_DIR/mlruns``). MLflow 3 keeps its file store in maintenance mode behind
  ``MLFLOW_ALLOW_FILE_STORE=true``, and sends usage telemetry unless ``MLFLOW_DISABLE_TELEMETRY=true``: both are
  set (``selfsup.trackers``) unless the user set them. A resumed run logs into the same MLflow run; its settings are logged when
  the MLflow run starts (MLflow refuses to change a logged parameter).
- ``wandb``: Weights & Biases offline (``WANDB_MODE=offline``, no error reports), ``RUN_DIR/wandb/offline-run-*-ID``
  (``wandb sync`` uploads it later). W&B has no offline resume: a resumed run writes a new ``offline-run-*``
  folder with the same run ID, continuing its ``trainer/global_step``.

Every tracker also gets the run's settings (config.yaml) as hyper-parameters.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from .. import library_logs
from ..trackers import check_tracker

EXPERIMENT = "selfsup"  # the MLflow experiment and W&B project a run logs into


class _AppendingWriter(ExperimentWriter):
    """Keeps an existing metrics.csv (and its columns) so a resumed run continues the same file."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys = sorted(header)


class RunCSVLogger(CSVLogger):
    """Writes ``RUN_DIR/metrics.csv`` directly (no version sub-folders)."""

    def __init__(self, run_dir: str, flush_logs_every_n_steps: int = 50) -> None:
        super().__init__(save_dir=run_dir, name="", version="", flush_logs_every_n_steps=flush_logs_every_n_steps)

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class RunMLFlowLogger(MLFlowLogger):
    """Continues the run folder's MLflow run when there is one; logs the settings only when it starts it."""

    def __init__(self, run_id: str | None, **kwargs: Any) -> None:
        super().__init__(run_id=run_id, **kwargs)
        self.resumed = run_id is not None

    def log_hyperparams(self, params: Any) -> None:
        if not self.resumed:  # MLflow refuses to change a logged parameter (e.g. a resume's longer --epochs)
            super().log_hyperparams(params)


class RunWandbLogger(WandbLogger):
    """Ends its W&B run when training ends, so that a next run in the same process starts its own."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:  # W&B warns about the setting whenever it is passed
            self._wandb_init.pop("anonymous", None)

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None:
            self._experiment.finish(exit_code=0 if status == "success" else 1)
            self._experiment = None


def _tensorboard(run_dir: Path) -> Logger:
    return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False)


def _mlflow(run_dir: Path) -> Logger:
    from mlflow.tracking import MlflowClient

    store = (run_dir / "mlruns").resolve()
    uri = f"file:{store}"
    run_id = None
    if store.is_dir():  # a resumed run: its MLflow run
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                  max_results=1) if experiment is not None else []
        run_id = runs[0].info.run_id if runs else None
    return RunMLFlowLogger(run_id, experiment_name=EXPERIMENT, run_name=run_dir.resolve().name, tracking_uri=uri)


def _wandb(run_dir: Path) -> Logger:
    import wandb

    earlier = sorted((run_dir / "wandb").glob("offline-run-*-*"))  # a resumed run: the ID of its W&B run
    run_id = earlier[-1].name.rsplit("-", 1)[1] if earlier else None
    return RunWandbLogger(save_dir=str(run_dir), offline=True, project=EXPERIMENT, name=run_dir.resolve().name,
                          id=run_id, settings=wandb.Settings(console="off", disable_git=True,
                                                             silent=library_logs.QUIET))  # the CLI's quiet, unless -v


TRACKERS = {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}


def run_loggers(run_dir: Path, tracker: str, flush_every: int) -> list[Logger]:
    """The run's loggers: metrics.csv first (``trainer.logger``, whose folder Lightning uses), then the tracker
    ``tracker`` names (``"csv"``: none)."""
    loggers: list[Logger] = [RunCSVLogger(str(run_dir), flush_logs_every_n_steps=flush_every)]
    if tracker in TRACKERS:
        check_tracker(tracker)
        loggers.append(TRACKERS[tracker](run_dir))
    return loggers


def log_settings(loggers: list[Logger], settings: dict[str, Any]) -> None:
    """The run's settings (config.yaml) as every tracker's hyper-parameters (not metrics.csv: config.yaml holds
    them there)."""
    for logger in loggers:
        if not isinstance(logger, RunCSVLogger):
            logger.log_hyperparams(settings)


def log_to_all(trainer: Any, metrics: dict[str, float], step: int) -> None:
    """Log ``metrics`` at ``step`` to every logger of ``trainer`` (metrics.csv and the tracker), as ``self.log``
    does for a LightningModule's metrics."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=step)
