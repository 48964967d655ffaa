"""metrics.csv that survives resumes: Lightning's CSV logger, appending instead of truncating."""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


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
