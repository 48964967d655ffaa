"""Small helpers around ``torch.distributed`` that degrade to single-process no-ops.

Every function works whether or not a process group has been initialised, so losses
and methods can call them unconditionally.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _initialized() -> bool:
    """True when ``torch.distributed`` is built in and a process group is initialised."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    """Number of processes in the default group (1 when not running distributed)."""
    return torch.distributed.get_world_size() if _initialized() else 1


def rank() -> int:
    """Rank of this process in the default group (0 when not running distributed)."""
    return torch.distributed.get_rank() if _initialized() else 0


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every process along dim 0, keeping gradients.

    The result is ``[x_rank0; x_rank1; ...]`` with shape ``[world_size * B, ...]``;
    gradients flowing into each slice are sent back to the process that produced it
    (``torch.distributed.nn.functional.all_gather`` is autograd-aware, unlike
    ``torch.distributed.all_gather``). All processes must pass tensors of the same
    shape. In a single process this returns ``x`` itself.
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)
