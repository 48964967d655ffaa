"""Collapse monitors, logged at a fixed step interval.

- ``embedding_std``: mean per-dimension standard deviation of L2-normalised embeddings
  (Chen & He 2021, SimSiam §4.1): about 1/sqrt(D) for spread-out embeddings, 0 under collapse.
- ``rankme``: effective rank exp(H(p)), p the normalised singular values of the embedding matrix
  (Garrido et al. 2023, "RankMe: Assessing the Downstream Performance of Pretrained
  Self-Supervised Representations by Their Rank"); 1 under complete collapse.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from .logger import log_to_all


def embedding_std(embeddings: torch.Tensor) -> torch.Tensor:
    z = F.normalize(embeddings.float(), dim=1)
    return z.std(dim=0).mean()


def rankme(embeddings: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    s = torch.linalg.svdvals(embeddings.float())
    p = s / (s.sum() + eps) + eps
    return torch.exp(-(p * p.log()).sum())


class HealthMonitor(pl.Callback):
    """Logs ``health/embedding_std`` and ``health/rankme`` every ``every_n_steps`` steps."""

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = max(1, every_n_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        embeddings = outputs.get("embeddings") if isinstance(outputs, dict) else None
        if embeddings is None or embeddings.shape[0] < 2 or trainer.global_step % self.every_n_steps:
            return
        if not trainer.loggers:
            return
        metrics = {"health/embedding_std": embedding_std(embeddings).item(), "health/rankme": rankme(embeddings).item()}
        log_to_all(trainer, metrics, step=trainer.global_step - 1)  # the step of the batch, like the loss rows
