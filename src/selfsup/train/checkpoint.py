"""Checkpoints that a crash cannot break: written to a temporary name, then renamed.

``RUN_DIR/checkpoints/last.ckpt`` is written every ``every_n_steps`` optimiser steps and at the end
of every epoch and of training; ``best.ckpt`` whenever the epoch's mean loss is the lowest so far.
Reading is weights-only (nothing in a file can run code) and a damaged or foreign file is a one-line
error naming it; a run whose last.ckpt cannot be read falls back to its best.ckpt, with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..checkpoint_files import (  # noqa: F401  (re-exported: the engine reads checkpoints here)
    BEST_FILE,
    LAST_FILE,
    UnreadableCheckpoint,
    check_resume,
    check_weights,
    load_checkpoint,
    load_run_checkpoint,
)
from .health import HealthRecord

log = logging.getLogger("selfsup")
HEALTHY_FILE = "healthy.ckpt"  # the last checkpoint written while healthy, kept once a run goes on unhealthy



class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint I/O, saving to ``<path>.tmp`` and renaming over ``<path>``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class RunCheckpoint(pl.Callback):
    """Saves last.ckpt / best.ckpt into ``directory`` (only ever after a finite loss). With a ``health`` record
    (:mod:`.health`), a checkpoint written while the run is unhealthy never replaces the last healthy one: under
    ``on_collapse: stop`` last.ckpt is then not written; under ``warn`` the healthy last.ckpt is first kept as
    ``healthy.ckpt``; best.ckpt is written only while healthy."""

    def __init__(self, directory: Path, every_n_steps: int, health: HealthRecord | None = None) -> None:
        self.directory = Path(directory)
        self.every_n_steps = max(1, every_n_steps)
        self.health = health
        # whether last.ckpt was written while healthy (a resumed run: as its health.json said when it ended)
        self._last_healthy = health is None or Path(health.healthy_checkpoint or LAST_FILE).name == LAST_FILE
        self.best_loss = math.inf
        self._loss_sum: torch.Tensor | None = None  # stays on the device: no sync per step
        self._loss_count = 0

    @property
    def last_path(self) -> Path:
        return self.directory / LAST_FILE

    def _save(self, trainer: pl.Trainer, name: str) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in trainer.lightning_module.parameters()):
            from .module import NonFiniteLossError

            raise NonFiniteLossError(f"weights became NaN or infinite at step {trainer.global_step}")
        healthy = self.health is None or self.health.healthy
        if name == BEST_FILE and not healthy:
            return
        if name == LAST_FILE and not healthy:
            if self.health.stop:  # the run stops at its alarm: last.ckpt stays the healthy one
                return
            if self._last_healthy and self.last_path.exists() and trainer.is_global_zero:
                kept = self.directory / HEALTHY_FILE
                kept.unlink(missing_ok=True)
                try:  # a second name for the same file: no copy of a large checkpoint
                    os.link(self.last_path, kept)
                except OSError:
                    shutil.copy2(self.last_path, kept)
                self.health.healthy_checkpoint = self._in_run(kept)
        trainer.save_checkpoint(self.directory / name, weights_only=False)  # with optimiser + loop state
        if name == LAST_FILE:
            self._last_healthy = healthy
            if healthy and self.health is not None:
                self.health.healthy_checkpoint = self._in_run(self.last_path)
                self.health.healthy_step = trainer.global_step

    def _in_run(self, path: Path) -> str:
        """``path`` as health.json names it: relative to the run folder (``checkpoints/last.ckpt``)."""
        return f"{self.directory.name}/{path.name}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        loss = loss.detach()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._loss_count += 1
        if trainer.global_step % self.every_n_steps == 0:
            self._save(trainer, LAST_FILE)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._loss_count:
            # every DDP process must take the same decision: saving runs collective barriers, and a process
            # that skips one while another enters it leaves them waiting on each other
            mean = float(trainer.strategy.reduce(self._loss_sum / self._loss_count, reduce_op="mean"))
            self._loss_sum, self._loss_count = None, 0
            if mean < self.best_loss:
                self.best_loss = mean
                self._save(trainer, BEST_FILE)
        if not _training_ends(trainer):  # else on_train_end writes it: one 100+ MB write fewer per run
            self._save(trainer, LAST_FILE)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, LAST_FILE)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):  # Ctrl-C: keep the progress made so far
            self._save(trainer, LAST_FILE)

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_loss = state_dict.get("best_loss", math.inf)


def _training_ends(trainer: pl.Trainer) -> bool:
    """Whether this epoch's end is the end of training (its step or epoch limit is reached)."""
    steps_done = trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps
    epochs_done = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
    return steps_done or epochs_done


