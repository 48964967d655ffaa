"""A simulated process group for DDP tests: threads standing in for processes, whose collectives
really exchange tensors (forward and backward) between the threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch


class _FakeAllReduce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, group, x):
        ctx.group = group
        return torch.stack(group.exchange(x)).sum(0)

    @staticmethod
    def backward(ctx, grad):
        return None, torch.stack(ctx.group.exchange(grad)).sum(0)


class _FakeAllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, group, x):
        ctx.group, ctx.rows = group, slice(group.rank() * x.shape[0], (group.rank() + 1) * x.shape[0])
        return torch.cat(group.exchange(x))

    @staticmethod
    def backward(ctx, grad):  # like torch.distributed.nn: sum the gradients of every process, keep our rows
        return None, torch.stack(ctx.group.exchange(grad)).sum(0)[ctx.rows]


class FakeProcessGroup:
    """``world`` threads standing in for DDP processes; every collective waits for all of them.

    Patched over the ``selfsup.distributed`` helpers a module imported (:meth:`patch`), it lets a test
    run code on each process's shard (:meth:`run`), forward and backward, as DDP would.
    """

    def __init__(self, world: int = 2) -> None:
        self.world = world
        self._barrier = threading.Barrier(world, timeout=30)
        self._slots: list[torch.Tensor | None] = [None] * world
        self._local = threading.local()

    def world_size(self) -> int:
        return self.world

    def rank(self) -> int:
        return self._local.rank

    def exchange(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``x`` (detached copies), in rank order."""
        self._slots[self.rank()] = x.detach().clone()
        self._barrier.wait()
        out = list(self._slots)
        self._barrier.wait()  # nobody overwrites a slot before everyone has read them all
        return out

    def all_reduce_sum(self, x: torch.Tensor) -> torch.Tensor:
        return _FakeAllReduce.apply(self, x)

    def gather_with_grad(self, x: torch.Tensor) -> torch.Tensor:
        return _FakeAllGather.apply(self, x)

    def gather_no_grad(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.exchange(x))

    def patch(self, monkeypatch, module) -> None:
        """Replace whichever of the ``selfsup.distributed`` helpers ``module`` uses by this group's."""
        for name in ("world_size", "rank", "all_reduce_sum", "gather_with_grad", "gather_no_grad"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(self, name))

    def run(self, fn: Callable[..., Any], shards: list[tuple]) -> list:
        """``fn(*shards[r])`` on rank r, all ranks at once; returns the results in rank order."""
        results: list = [None] * self.world
        errors: list[BaseException] = []

        def target(r: int) -> None:
            self._local.rank = r
            try:
                results[r] = fn(*shards[r])
            except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
                errors.append(error)
                self._barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results
