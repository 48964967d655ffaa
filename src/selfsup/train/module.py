"""The one LightningModule that trains every method.

Methods own the science (pretext, heads, loss, teacher updates); this module owns the loop:
pretext on the accelerator, the optimiser (``optimizers.py``), linear warmup + cosine decay
per step, logging (loss, lr, samples/s, method metrics), the NaN guard, and the progress signal
that drives EMA schedules.
"""

from __future__ import annotations

import time

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Timer
import torch
from torch import nn

from ..config import OptimConfig
from ..errors import SelfSupError
from ..methods.base import Method
from ..schedules import warmup_cosine
from .optimizers import build_optimizer, param_groups


class NonFiniteLossError(SelfSupError):
    """The loss became NaN or infinite; training stops before the weights are touched."""


class PretrainModule(pl.LightningModule):
    def __init__(self, method: Method, modality: str, optim: OptimConfig, lr: float, weight_decay: float,
                 pretext_in_loader: bool = False, encoder_scale: float = 1.0, frozen_norm_stats: bool = False) -> None:
        super().__init__()
        self.method = method
        self.pretext = method.pretext(modality)
        self.pretext_in_loader = pretext_in_loader
        self.optim = optim
        self.lr = lr
        self.weight_decay = weight_decay
        self.encoder_scale = encoder_scale  # the encoder's lr multiple (a pretrained encoder's smaller steps)
        self.frozen_norm_stats = frozen_norm_stats  # the encoder's BatchNorm layers keep their running statistics
        self._last_time: float | None = None

    def training_step(self, batch: torch.Tensor | dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """``batch``: raw samples (uint8 images, token batches; the pretext runs here, on the whole batch on the
        device), or what the loader already pretexted per sample (``pretext_in_loader``, see
        ``train/data.py``)."""
        inputs = batch if self.pretext_in_loader else self.pretext(batch, None)
        out = self.method.loss(inputs)
        if self._any_process_failed(not bool(torch.isfinite(out.loss))):
            raise NonFiniteLossError(f"loss became {out.loss.item()} at step {self.global_step}")
        now = time.perf_counter()
        loader = self.trainer.train_dataloader
        samples = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
        if self._last_time is not None and samples:
            self.log("samples_per_s", samples / max(now - self._last_time, 1e-9), prog_bar=True, on_step=True)
        self._last_time = now
        self.log("loss", out.loss.detach(), prog_bar=True, on_step=True, on_epoch=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True)
        for name, value in out.metrics.items():
            self.log(name, value, on_step=True)
        return {"loss": out.loss, "embeddings": out.embeddings}

    def _any_process_failed(self, failed: bool) -> bool:
        """Under DDP every process must stop together (one raising alone would leave the others waiting)."""
        if self.trainer.world_size > 1:
            return bool(self.trainer.strategy.reduce_boolean_decision(failed, all=False))
        return failed

    def progress(self, step: int | None = None) -> float:
        """Fraction of the training budget spent: by steps, or by time when ``--max-minutes`` ends training first.

        Drives the lr schedule and the methods' schedules (EMA momentum, temperatures), so a run cut by its time
        budget still warms up, decays its learning rate to zero and finishes its teacher schedule.
        """
        step = self.global_step if step is None else step
        fraction = step / max(1, self.trainer.estimated_stepping_batches)
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        remaining = timer.time_remaining() if timer is not None else None
        if remaining is not None:
            elapsed = timer.time_elapsed()
            fraction = max(fraction, elapsed / max(elapsed + remaining, 1e-9))
        return min(1.0, fraction)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.method.on_step_end(self.progress())

    def on_train_start(self) -> None:
        """Give each DDP process its own augmentation stream, and apply the current lr / weight decay to a
        resumed optimiser (its saved state holds the old ones)."""
        if self.global_rank > 0:  # every process was seeded alike; identical crops on every GPU waste the batch
            torch.manual_seed(torch.initial_seed() + 1_000_003 * self.global_rank)
        optimizer = self.optimizers(use_pl_optimizer=False)
        schedule = self.lr_schedulers()
        schedule.base_lrs = [self.lr * group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        for group in optimizer.param_groups:  # groups restored from runs before lr_scale / decay: decayed first
            group["weight_decay"] = self.weight_decay if group.get("decay", group is optimizer.param_groups[0]) else 0.0
        for group, base, factor in zip(optimizer.param_groups, schedule.base_lrs, schedule.lr_lambdas):
            group["lr"] = base * factor(self.global_step)

    def on_train_epoch_start(self) -> None:
        self._last_time = None
        self._freeze_norm_stats()  # Lightning leaves modes as built (training) and restores them after validation

    def train(self, mode: bool = True) -> PretrainModule:
        super().train(mode)
        if mode:
            self._freeze_norm_stats()
        return self

    def _freeze_norm_stats(self) -> None:
        """With ``frozen_norm_stats``, the encoder's BatchNorm layers normalise with the running statistics the
        checkpoint measured and do not update them (their scale and shift still train). Measured: 60 steps of
        SimCLR at a learning rate of ~0 took EfficientNet-Lite0's linear accuracy on CIFAR-10 from 0.60 to 0.39, by
        the statistics of augmented views alone."""
        if self.frozen_norm_stats:
            for module in self.method.encoder.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.optim.optimizer, param_groups(self.method, self.weight_decay, self.encoder_scale),
                                    self.lr,
                                    self.optim.momentum)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.optim.warmup * total)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(max(step, round(self.progress(step) * total)), total, warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
