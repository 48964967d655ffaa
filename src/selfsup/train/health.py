"""Collapse monitors, logged at a fixed step interval, and the alarms they raise.

- ``embedding_std``: mean per-dimension standard deviation of L2-normalised embeddings
  (Chen & He 2021, SimSiam §4.1): about 1/sqrt(D) for spread-out embeddings, 0 under collapse.
- ``rankme``: effective rank exp(H(p)), p the normalised singular values of the embedding matrix
  (Garrido et al. 2023, "RankMe: Assessing the Downstream Performance of Pretrained
  Self-Supervised Representations by Their Rank"); 1 under complete collapse.

Alarms (checked each time the metrics are logged, every ``trainer.health_every`` steps, on the batch just
trained). A check is *unhealthy* when

- ``embedding_std < STD_FLOOR / sqrt(D)`` (:data:`STD_FLOOR` = 0.1): SimSiam §4.1 (Fig. 2) shows the std of
  healthy outputs at 1/sqrt(D) and of collapsed ones at 0; a tenth of the healthy value is far below what
  the tiny encoders measure at random initialisation (tiny_cnn ≈ 0.6 / sqrt(D), vit_micro ≈ 0.5 / sqrt(D));
- ``rankme < max(RANKME_MIN, RANKME_FRACTION * min(B, D))`` (2, 1 %): RankMe is 1 for complete collapse and
  at most 2 for embeddings on a plane; Garrido et al. 2023 find downstream accuracy rising with the rank well
  above that, so the floor only catches (near-)complete dimensional collapse, not a modest rank;
- the loss is flat: over the last ``max(3, trainer.collapse_patience)`` checks its spread is below
  :data:`FLAT_TOLERANCE` × max(1, |mean|). Every method's loss sees fresh augmentations, masks or samples per
  batch, so it moves; one that does not has found a trivial solution (SimSiam without its predictor sits at
  -1, its collapse value, Chen & He 2021 §4.2; a collapsed contrastive loss at log(2B - 1)).

``trainer.collapse_patience`` consecutive unhealthy checks of one kind (a flat loss: one flat window) raise its
alarm: a warning, once per kind, naming the likely cause and the settings to change, recorded in
``RUN/health.json``. With ``trainer.on_collapse: stop`` the run stops there (the command exits with status 2 and
one line: the alarm, the step, the checkpoint kept). :class:`~selfsup.train.checkpoint.RunCheckpoint` asks
:attr:`HealthRecord.healthy` before writing: a checkpoint written while unhealthy never replaces the last
healthy one (under ``stop`` last.ckpt is not written then; under ``warn`` the healthy one is kept as
``checkpoints/healthy.ckpt`` before last.ckpt moves on), and best.ckpt is written only while healthy (a
collapsed loss is often the lowest).
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from ..errors import SelfSupError
from .logger import log_to_all

log = logging.getLogger("selfsup")

HEALTH_FILE = "health.json"
STD_FLOOR = 0.1  # × 1/sqrt(D)
RANKME_MIN = 2.0
RANKME_FRACTION = 0.01  # × min(batch, D)
LARGE_WEIGHT_DECAY = 0.1  # the papers' recipes use 1e-6 to 0.05
FLAT_TOLERANCE = 1e-4  # loss spread over the window, relative to max(1, |mean loss|)
STD, RANKME, LOSS = "health/embedding_std", "health/rankme", "loss"
CAUSES = {
    STD: "the embeddings are converging to one point (complete collapse)",
    RANKME: "the embeddings span only a few directions (dimensional collapse)",
    LOSS: "the loss sits at one value: the method found a trivial solution (e.g. every view mapped to the same "
          "output)",
}


class CollapseStopped(SelfSupError):
    """``--on-collapse stop`` stopped the run at an alarm (its message: the alarm, the step, the checkpoint kept)."""


def embedding_std(embeddings: torch.Tensor) -> torch.Tensor:
    z = F.normalize(embeddings.float(), dim=1)
    return z.std(dim=0).mean()


def rankme(embeddings: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    s = torch.linalg.svdvals(embeddings.float())
    p = s / (s.sum() + eps) + eps
    return torch.exp(-(p * p.log()).sum())


def std_floor(dim: int) -> float:
    """The embedding-std floor for ``dim``-dimensional embeddings (a tenth of the healthy 1/sqrt(D))."""
    return STD_FLOOR / math.sqrt(dim)


def rankme_floor(batch: int, dim: int) -> float:
    """The RankMe floor for a ``batch`` × ``dim`` embedding matrix."""
    return max(RANKME_MIN, RANKME_FRACTION * min(batch, dim))


def collapse_hints(method: Any, lr: float, weight_decay: float) -> str:
    """The settings to change, read from the method itself: always a lower learning rate (and weight decay, when
    large); a softmax temperature, an EMA momentum or a variance term where the method has one; its predictor where
    it has one."""
    names = list(vars(method.hp))
    hints = [f"lower optim.lr (now {lr:.3g}; e.g. --set optim.lr={lr / 10:.2g})"]
    if weight_decay >= LARGE_WEIGHT_DECAY:  # decay pulls every weight to 0, and a network of zeros is constant
        hints.append(f"lower optim.weight_decay (now {weight_decay:g})")
    hints += [f"another method.{n} (the softmax temperature)" for n in names if "temp" in n and "warmup" not in n]
    hints += [f"method.{n} closer to 1 (a slower EMA teacher)" for n in names if n in ("momentum", "tau_base",
                                                                                      "momentum_base")]
    hints += [f"a larger method.{n}" for n in names if n == "variance_weight"]
    if hasattr(method, "predictor"):
        hints.append("keep the predictor training: it is what keeps this method from collapsing (Chen & He 2021 "
                     "§4.2)")
    return "; ".join(hints)


@dataclass
class Alarm:
    step: int
    metric: str
    value: float
    floor: float
    message: str


@dataclass
class HealthRecord:
    """What ``RUN/health.json`` holds; shared by the monitor (alarms, stop) and the checkpoint callback (which
    checkpoint is the last healthy one)."""

    alarms: list[Alarm] = field(default_factory=list)
    stopped_at: int | None = None
    healthy_checkpoint: str | None = None  # relative to the run folder: checkpoints/last.ckpt or .../healthy.ckpt
    healthy_step: int | None = None  # not written: the step of healthy_checkpoint, for messages
    healthy: bool = True  # not written: whether the latest check was healthy
    stop: bool = False  # not written: trainer.on_collapse == "stop"

    def to_dict(self) -> dict[str, Any]:
        return {"alarms": [asdict(a) for a in self.alarms], "stopped_at": self.stopped_at,
                "healthy_checkpoint": self.healthy_checkpoint}

    def write(self, run_dir: Path) -> Path:
        path = Path(run_dir) / HEALTH_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, run_dir: Path) -> HealthRecord:
        """The record a run wrote before (its alarms continue on resume); an empty one if none or unreadable."""
        try:
            raw = json.loads((Path(run_dir) / HEALTH_FILE).read_text())
            return cls(alarms=[Alarm(**a) for a in raw.get("alarms", [])],
                       healthy_checkpoint=raw.get("healthy_checkpoint"))
        except (OSError, ValueError, TypeError):
            return cls()

    def summary(self, run_dir: Path) -> str:
        """One line for a stopped run: the alarm, the step, the checkpoint kept."""
        alarm = self.alarms[-1]
        kept = (f"the last healthy checkpoint is kept: {Path(run_dir) / self.healthy_checkpoint} "
                f"(step {self.healthy_step})"
                if self.healthy_checkpoint else "no healthy checkpoint was written before it")
        return f"training stopped at step {self.stopped_at} (--on-collapse stop), {kept}. {alarm.message}"


class HealthMonitor(pl.Callback):
    """Logs ``health/embedding_std`` and ``health/rankme`` every ``every_n_steps`` steps and raises the alarms
    described in the module docstring into ``record`` (written to ``run_dir/health.json``)."""

    def __init__(self, every_n_steps: int, patience: int = 3, run_dir: Path | None = None,
                 record: HealthRecord | None = None, hints: str = "") -> None:
        self.every_n_steps = max(1, every_n_steps)
        self.patience = max(1, patience)
        self.run_dir = run_dir
        self.record = record if record is not None else HealthRecord()
        self.hints = hints
        self._streak = {STD: 0, RANKME: 0, LOSS: 0}
        self._losses: deque[float] = deque(maxlen=max(3, self.patience))
        self._warned: set[str] = set()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        embeddings = outputs.get("embeddings") if isinstance(outputs, dict) else None
        if embeddings is None or embeddings.shape[0] < 2 or trainer.global_step % self.every_n_steps:
            return
        if not trainer.loggers:
            return
        step = trainer.global_step - 1  # the step of the batch, like the loss rows
        batch_size, dim = embeddings.shape
        values = {STD: embedding_std(embeddings).item(), RANKME: rankme(embeddings).item()}
        log_to_all(trainer, values, step=step)
        floors = {STD: std_floor(dim), RANKME: rankme_floor(batch_size, dim)}
        below = {name: values[name] < floors[name] for name in floors}
        loss = outputs.get("loss")
        if loss is not None:
            self._losses.append(float(loss.detach()))
            values[LOSS], floors[LOSS] = self._loss_change(), FLAT_TOLERANCE
            below[LOSS] = len(self._losses) == self._losses.maxlen and values[LOSS] < FLAT_TOLERANCE
        if trainer.world_size > 1:  # every process takes the same decisions (checkpoints, stop)
            below = {name: bool(trainer.strategy.reduce_boolean_decision(bad, all=False)) for name, bad in below.items()}
        self.record.healthy = not any(below.values())
        for name, bad in below.items():
            self._streak[name] = self._streak[name] + 1 if bad else 0
            needed = 1 if name == LOSS else self.patience  # a flat loss is already judged over a window of checks
            if self._streak[name] >= needed and name not in self._warned:
                self._alarm(trainer, step, name, values[name], floors[name])

    def _loss_change(self) -> float:
        """The loss's spread over the window, relative to max(1, |mean|)."""
        losses = list(self._losses)
        mean = sum(losses) / len(losses)
        return (max(losses) - min(losses)) / max(1.0, abs(mean))

    def _alarm(self, trainer: pl.Trainer, step: int, name: str, value: float, floor: float) -> None:
        self._warned.add(name)
        checks = f"{self.patience} check{'s' if self.patience > 1 else ''} in a row"
        if name == LOSS:
            what = (f"the loss has not moved (relative change {value:.2g} < {floor:g} over {len(self._losses)} checks, "
                    f"now {self._losses[-1]:.4g})")
        else:
            what = f"{name.split('/')[1]} {value:.3g} is below its floor {floor:.3g} for {checks}"
        message = f"collapse at step {step}: {what}; likely cause: {CAUSES[name]}" + (f". Try: {self.hints}"
                                                                                    if self.hints else "")
        self.record.alarms.append(Alarm(step, name, float(value), float(floor), message))
        if self.record.stop:
            self.record.stopped_at = step
            trainer.should_stop = True
        elif trainer.is_global_zero:
            log.warning("%s (recorded in %s; --on-collapse stop stops such a run)", message, HEALTH_FILE)
        if self.run_dir is not None and trainer.is_global_zero:
            self.record.write(self.run_dir)
