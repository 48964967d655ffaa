"""Memory banks shared by methods that contrast with (or look up) features of past batches.

``FeatureQueue`` is MoCo's dictionary as a queue (He et al. 2020, "Momentum Contrast for
Unsupervised Visual Representation Learning", CVPR, §3.2): the newest keys replace the oldest.
It is written for any method that keeps a FIFO of past embeddings (MoCo's negatives, SwAV's
queue, NNCLR's support set).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributed import gather_no_grad


class FeatureQueue(nn.Module):
    """A FIFO of ``size`` L2-normalised ``dim``-d features, held in buffers (saved in checkpoints).

    Starts, as in MoCo, with random unit vectors. ``enqueue(keys)`` writes the newest keys over
    the oldest entries, wrapping around the end of the buffer (``size`` need not be a multiple
    of the batch). With ``gather=True`` (the default) the keys of every process are gathered
    first, without gradient, so under DDP every process holds the same queue and the global
    batch enters it in rank order; ``gather=False`` keeps a per-process queue. The storage order
    is a ring: ``features`` is the whole bank, ``ptr`` the slot the next key goes to.
    """

    bank: Tensor
    ptr: Tensor

    def __init__(self, size: int, dim: int, gather: bool = True) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"FeatureQueue needs size >= 1 and dim >= 1, got size={size}, dim={dim}")
        self.size, self.dim, self.gather = size, dim, gather
        self.register_buffer("bank", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def features(self) -> Tensor:
        """All ``[size, dim]`` entries (the negatives), detached, in storage (not age) order. A view of the
        buffer: a later ``enqueue`` changes it; clone it to keep a snapshot."""
        return self.bank.detach()

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Normalise ``keys`` [N, dim], gather them from every process, and write them over the oldest entries."""
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"FeatureQueue.enqueue expects keys [N, {self.dim}], got {tuple(keys.shape)}")
        keys = F.normalize(keys.detach().float(), dim=1)
        if self.gather:
            keys = gather_no_grad(keys)
        n = keys.shape[0]
        newest = keys[-self.size :]  # more keys than slots: only the newest `size` survive, in their ring slots
        slots = (self.ptr + (n - newest.shape[0]) + torch.arange(newest.shape[0], device=self.ptr.device)) % self.size
        self.bank.index_copy_(0, slots, newest.to(self.bank.dtype))
        self.ptr.add_(n).remainder_(self.size)  # tensor ops only: no host sync on an accelerator

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}, gather={self.gather}"
