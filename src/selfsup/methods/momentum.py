"""Momentum (EMA) teachers, shared by every method with a slowly-moving target network, and
DINO's centering of the teacher's outputs (an EMA of their batch mean). The momentum schedules
are in ``selfsup.schedules``."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..distributed import all_reduce_sum, world_size


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy that receives no gradients: the EMA target of BYOL/MoCo/DINO."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter.

    Buffers (BatchNorm statistics) are not averaged: the target runs in training mode and keeps
    its own, as in the reference implementations of BYOL and MoCo.
    """
    for t_param, o_param in zip(target.parameters(), online.parameters()):
        t_param.lerp_(o_param.detach(), 1.0 - momentum)


class Centering(nn.Module):
    """The EMA center of a teacher's outputs (Caron et al. 2021, "Emerging Properties in
    Self-Supervised Vision Transformers", Eq. 4 and ``DINOLoss.update_center``)::

        center <- momentum * center + (1 - momentum) * mean over the batch of teacher_output

    Subtracting it from the teacher's logits stops one dimension from dominating; the batch mean
    is taken over the global batch (the sum is all-reduced over processes under DDP). The center
    is a buffer [1, dim], so it is saved with the model; it starts at zero.
    """

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"centering momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))

    @torch.no_grad()
    def update(self, teacher_output: torch.Tensor) -> None:
        """Fold the batch mean of ``teacher_output`` [N, dim] into the center."""
        total = all_reduce_sum(teacher_output.detach().float().sum(dim=0, keepdim=True))
        batch_mean = total / (teacher_output.shape[0] * world_size())
        self.center.lerp_(batch_mean.to(self.center.dtype), 1.0 - self.momentum)
