"""Which samples each DDP process and each of its loader workers reads in one epoch.

The shards are put in an order drawn from ``(seed, epoch)`` (the same in every process), their samples laid
end to end, and that sequence cut into ``world`` equal contiguous parts, one per process; a process's part is
cut into batches and the batches into ``workers`` contiguous runs, one per loader worker. So every sample is read
exactly once per epoch by exactly one (process, worker), every process yields the same number of batches of the
same sizes (collectives such as SimCLR's all-gather need equal shapes), and a worker reads whole shards except
at most one partial shard at each end of its run. What cannot be shared equally is left out of the epoch: the
``total mod world`` samples at the end of the sequence, and one more per process when the last batch would hold
a single sample (a batch needs two: views, BatchNorm). Which ones changes with the epoch's shard order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass



@dataclass(frozen=True)
class Piece:
    """Samples ``start`` .. ``stop`` (exclusive) of shard ``shard`` (an index into the shard list)."""

    shard: int
    start: int
    stop: int


def shard_order(count: int, seed: int, epoch: int) -> list[int]:
    """The shard order of ``epoch``: a permutation drawn from ``(seed, epoch)``, the same in every process."""
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def per_process(total: int, world: int, batch_size: int) -> int:
    """Samples each of ``world`` processes reads per epoch (see the module doc for the ones left out)."""
    share = total // world
    return share - 1 if share % batch_size == 1 and share > 1 else share


def pieces(counts: Sequence[int], order: Sequence[int], begin: int, end: int) -> list[Piece]:
    """Positions ``begin`` .. ``end`` of the shards' samples laid end to end in ``order``, as pieces of shards."""
    out, position = [], 0
    for shard in order:
        low, high = max(begin, position), min(end, position + counts[shard])
        if low < high:
            out.append(Piece(shard, low - position, high - position))
        position += counts[shard]
        if position >= end:
            break
    return out


def worker_pieces(counts: Sequence[int], epoch: int, seed: int, world: int, rank: int, workers: int, worker: int,
                  batch_size: int) -> list[Piece]:
    """The pieces of shards worker ``worker`` (of ``workers``; 0 of 1 without workers) of process ``rank`` (of
    ``world``) reads in ``epoch``: whole batches of the process's part, the last worker's ending in the part's
    last (possibly smaller) batch."""
    share = per_process(sum(counts), world, batch_size)
    batches = -(-share // batch_size)
    first, last = worker * batches // workers, (worker + 1) * batches // workers
    begin = rank * share + first * batch_size
    end = rank * share + min(share, last * batch_size)
    return pieces(counts, shard_order(len(counts), seed, epoch), begin, end) if begin < end else []
