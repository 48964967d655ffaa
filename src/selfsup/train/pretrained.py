"""How an encoder that starts from a checkpoint (``--init``) trains: smaller steps than its new heads, and its
BatchNorm running statistics kept (continued pretraining, Gururangan et al. 2020; discriminative learning rates,
Howard & Ruder 2018). Both are settings whose default depends on where the encoder started."""

from __future__ import annotations

from ..config import OptimConfig, TrainerConfig
from ..encoders import starts_from_checkpoint

PRETRAINED_LR_SCALE = 0.1
"""The encoder's learning rate multiple when it starts from a checkpoint and ``optim.init_lr_scale`` is unset."""


def encoder_lr_scale(optim: OptimConfig, encoder_config: dict) -> float:
    """``optim.init_lr_scale``, or its default: :data:`PRETRAINED_LR_SCALE` for an encoder that starts from a
    checkpoint (``--init``), 1 for one at random initialisation: the rate that trains a network from scratch
    moves a pretrained one far from its checkpoint within a few steps, while its fresh heads need that rate."""
    if optim.init_lr_scale is not None:
        return float(optim.init_lr_scale) if starts_from_checkpoint(encoder_config) else 1.0
    return PRETRAINED_LR_SCALE if starts_from_checkpoint(encoder_config) else 1.0


def frozen_norm_stats(trainer: TrainerConfig, encoder_config: dict) -> bool:
    """``trainer.frozen_norm_stats``, or its default: true for an encoder that starts from a checkpoint."""
    if trainer.frozen_norm_stats is not None:
        return bool(trainer.frozen_norm_stats)
    return starts_from_checkpoint(encoder_config)
