"""Nearest neighbours by cosine similarity, in blocks: memory grows with n x block, never with n².

The similarity matrix of n items is never held: queries are taken ``block`` rows at a time, each against the
base ``block`` rows at a time, and only the ``k`` most similar base rows seen so far are kept per query
(each block's own top k merged into a running top k). 50,000 x 50,000 at block 1024 holds one 1024 x 1024 block
of similarities (4 MiB) at a time plus the n x k result; the full matrix would take 9.3 GiB.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_BLOCK = 1024


@dataclass
class Neighbours:
    """``indices[i, j]``: the base row that is query ``i``'s (j+1)-th most similar; ``similarities[i, j]``: its
    cosine. Rows with fewer than k candidates are padded with index -1 and similarity -inf."""

    similarities: torch.Tensor  # float32 [n, k]
    indices: torch.Tensor  # int64 [n, k]


def normalise(vectors: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (float32; a zero row stays zero)."""
    return F.normalize(vectors.float(), dim=1)


def nearest(queries: torch.Tensor, base: torch.Tensor | None, k: int, block: int = DEFAULT_BLOCK) -> Neighbours:
    """The ``k`` rows of ``base`` most similar (cosine) to each row of ``queries``; ``base=None`` searches
    ``queries`` among themselves, a row never being its own neighbour. Rows need not be normalised."""
    if k < 1 or block < 1:
        raise ValueError(f"k and block must be >= 1, got {k} and {block}")
    queries = normalise(queries)
    own = base is None
    base = queries if own else normalise(base)
    n, m = queries.shape[0], base.shape[0]
    best_sim = torch.full((n, k), float("-inf"))
    best_idx = torch.full((n, k), -1, dtype=torch.long)
    for q0 in range(0, n, block):
        q = queries[q0 : q0 + block]
        run_sim, run_idx = best_sim[q0 : q0 + block], best_idx[q0 : q0 + block]
        for b0 in range(0, m, block):
            sims = q @ base[b0 : b0 + block].T
            if own and b0 < q0 + q.shape[0] and q0 < b0 + sims.shape[1]:  # this block holds the queries themselves
                rows = torch.arange(q.shape[0])
                cols = rows + q0 - b0
                inside = (cols >= 0) & (cols < sims.shape[1])
                sims[rows[inside], cols[inside]] = float("-inf")
            block_top = sims.topk(min(k, sims.shape[1]), dim=1)  # the block's best k, then merged with the run's
            merged_sim = torch.cat([run_sim, block_top.values], dim=1)
            merged_idx = torch.cat([run_idx, block_top.indices + b0], dim=1)
            top = merged_sim.topk(k, dim=1)
            run_sim = top.values
            run_idx = merged_idx.gather(1, top.indices)
        best_sim[q0 : q0 + block] = run_sim
        best_idx[q0 : q0 + block] = run_idx
    best_idx[best_sim == float("-inf")] = -1
    return Neighbours(best_sim, best_idx)
