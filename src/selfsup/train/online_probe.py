"""The online probe (``--probe LABELED``): kNN and linear accuracy on a labelled set, logged while training.

solo-learn's online linear evaluation (da Costa et al. 2022) trains a classifier on the detached features of
the labelled training batches; selfsup's training data has no labels, so the classifiers are fitted afresh
on a fixed half of a separate labelled set at each check and scored on the other half
(:mod:`selfsup.probe`). Logged as ``probe/knn`` and ``probe/linear`` in metrics.csv every
``trainer.probe_every`` steps and once more when training ends.
"""

from __future__ import annotations

import lightning.pytorch as pl

from ..probe import ProbeSet, probe_scores
from .logger import log_to_all


class OnlineProbe(pl.Callback):
    """Scores the method's encoder on ``probe`` every ``every_n_steps`` optimiser steps (global rank 0 only; the
    features are detached and every module's train/eval mode is restored)."""

    def __init__(self, probe: ProbeSet, every_n_steps: int) -> None:
        self.probe = probe
        self.every_n_steps = max(1, every_n_steps)
        self._last_step: int | None = None

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step - 1  # the step of the batch just trained, like the loss rows
        if not trainer.loggers or not trainer.is_global_zero or step == self._last_step:
            return
        scores = probe_scores(pl_module.method.encoder, self.probe, pl_module.device)
        log_to_all(trainer, {f"probe/{name}": value for name, value in scores.items()}, step=step)
        self._last_step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step > 0:
            self._log(trainer, pl_module)
