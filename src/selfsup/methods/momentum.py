"""Momentum (EMA) teachers, shared by every method with a slowly-moving target network."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy that receives no gradients: the EMA target of BYOL/MoCo/DINO."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule (Grill et al. 2020, §3.2): tau = 1 - (1 - base) * (cos(pi * progress) + 1) / 2."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter.

    Buffers (BatchNorm statistics) are not averaged: the target runs in training mode and keeps
    its own, as in the reference implementations of BYOL and MoCo.
    """
    for t_param, o_param in zip(target.parameters(), online.parameters()):
        t_param.lerp_(o_param.detach(), 1.0 - momentum)
