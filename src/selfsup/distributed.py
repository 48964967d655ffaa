"""Small helpers around ``torch.distributed`` that degrade to single-process no-ops.

Every function works whether or not a process group has been initialised, so losses
and methods can call them unconditionally.
"""

from __future__ import annotations

import os
import warnings

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

    with warnings.catch_warnings():  # the suggested successor lives in a private module (_functional_collectives)
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x.contiguous()), dim=0)


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum ``x`` over every process, keeping gradients; ``x`` itself in a single process.

    Autograd-aware (``torch.distributed.nn.functional.all_reduce``): the backward pass sums the
    incoming gradients over the processes too. When every process computes the same loss from the
    sum (Barlow Twins' cross-correlation), each one thus receives ``world_size`` times the gradient
    of that loss, and DDP's averaging of parameter gradients turns it into exactly the gradient of
    the global loss. All processes must pass tensors of the same shape.
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():  # as in gather_with_grad
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every process along dim 0, detached: ``[x_rank0; x_rank1; ...]``.

    For tensors that need no gradient (momentum keys, memory-bank entries); a plain
    ``torch.distributed.all_gather``, cheaper than :func:`gather_with_grad`. All processes must
    pass tensors of the same shape. In a single process this returns ``x.detach()``.
    """
    if world_size() == 1:
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(world_size())]
    torch.distributed.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def launched_as_other_rank() -> bool:
    """Whether a distributed launcher started this process as a rank other than the first of its run."""
    return any(os.environ.get(name, "").strip() not in ("", "0") for name in RANK_VARIABLES)
