"""Leave-one-out next-item ranking metrics: full-ranking rank of the target, HR@k and NDCG@k.

Protocol: Kang & McAuley 2018 (SASRec, §IV-A) / Sun et al. 2019 (BERT4Rec) hold out each user's last
item; we rank it against *all* items, not a sample of negatives, following Krichene & Rendle 2020,
"On Sampled Metrics for Item Recommendation" (sampled metrics are inconsistent with the full ranking).
Items the user has already seen are removed from the ranking (the held-out target never is). Ties are
broken pessimistically: every other item scoring >= the target counts as ranked above it, so a constant
scorer gets the worst rank, not a lucky one. NDCG with one relevant item: Järvelin & Kekäläinen 2002.

Item ids are 1..I; column 0 of every score matrix is padding and never ranked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import SelfSupError

log = logging.getLogger("selfsup")

ItemList = Tensor | np.ndarray | Sequence[int]


def _as_long(items: ItemList, device: torch.device) -> Tensor:
    tensor = items if isinstance(items, Tensor) else torch.as_tensor(np.asarray(items))
    return tensor.reshape(-1).long().to(device)


def rank_of_target(scores: Tensor, targets: Tensor, exclude: Sequence[ItemList] | None = None) -> Tensor:
    """0-based full-ranking rank [U] of ``targets[u]`` among items 1..I of ``scores[u]`` ([U, I+1]).

    rank = number of other rankable items with score >= the target's (pessimistic ties). Items in
    ``exclude[u]`` (seen items) are not rankable; the target itself is always ranked, even if listed
    there. NaN scores count as -inf (worst).
    """
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise SelfSupError(f"rank_of_target: scores must be [users, num_items + 1], got shape {tuple(scores.shape)}")
    n_users, width = scores.shape
    device = scores.device
    targets = _as_long(targets, device)
    if targets.numel() != n_users:
        raise SelfSupError(f"rank_of_target: {targets.numel()} targets for {n_users} score rows; pass one target per user")
    if n_users and (targets.min() < 1 or targets.max() >= width):
        raise SelfSupError(f"rank_of_target: targets must be item ids 1..{width - 1} (0 is padding); fix the targets")
    s = torch.nan_to_num(scores.float(), nan=-math.inf)
    rankable = torch.ones(n_users, width, dtype=torch.bool, device=device)
    rankable[:, 0] = False
    if exclude is not None:
        if len(exclude) != n_users:
            raise SelfSupError(f"rank_of_target: {len(exclude)} exclusion lists for {n_users} users; pass one per user")
        cols = [_as_long(e, device) for e in exclude]
        counts = torch.tensor([c.numel() for c in cols], device=device)
        if int(counts.sum()):
            flat = torch.cat(cols)
            if flat.min() < 0 or flat.max() >= width:
                raise SelfSupError(f"rank_of_target: excluded items must be ids 0..{width - 1}; fix the exclusion lists")
            rows = torch.repeat_interleave(torch.arange(n_users, device=device), counts)
            rankable[rows, flat] = False
    rows = torch.arange(n_users, device=device)
    rankable[rows, targets] = True  # the target is never excluded
    target_score = s[rows, targets].unsqueeze(1)
    return ((s >= target_score) & rankable).sum(dim=1) - 1


def _check(ranks: Tensor, k: int) -> Tensor:
    if int(k) < 1:
        raise SelfSupError(f"k must be >= 1, got {k}")
    ranks = torch.as_tensor(ranks).reshape(-1)
    if ranks.numel() == 0:
        raise SelfSupError("ranking metrics need at least one user with a target; check the leave-one-out split")
    return ranks


def hit_rate_at_k(ranks: Tensor, k: int = 10) -> float:
    """HR@k: fraction of users whose target ranks in the top ``k`` (rank < k)."""
    ranks = _check(ranks, k)
    return float((ranks < k).double().mean())


def ndcg_at_k(ranks: Tensor, k: int = 10) -> float:
    """NDCG@k with one relevant item (Järvelin & Kekäläinen 2002): mean of 1/log2(rank + 2) if rank < k else 0."""
    ranks = _check(ranks, k).double()
    gain = torch.where(ranks < k, 1.0 / torch.log2(ranks + 2.0), torch.zeros_like(ranks))
    return float(gain.mean())


def popularity_scores(train_histories: Sequence[ItemList], num_items: int) -> Tensor:
    """Popularity baseline scores [I+1]: interaction counts over the training histories (column 0 = -inf).

    Padding zeros in the histories are ignored; the baseline gives every user these same scores.
    """
    counts = torch.zeros(num_items + 1, dtype=torch.float64)
    items = [_as_long(h, torch.device("cpu")) for h in train_histories]
    if items:
        flat = torch.cat(items)
        if flat.numel():
            if flat.min() < 0 or flat.max() > num_items:
                raise SelfSupError(
                    f"popularity_scores: history item ids must be 0..{num_items} (num_items={num_items}); "
                    "pass the item map's size as num_items"
                )
            counts += torch.bincount(flat, minlength=num_items + 1).double()
    scores = counts.float()
    scores[0] = -math.inf
    return scores


def ranking_metrics(
    score_fn: Callable[[list[int]], Tensor],
    users: Sequence[int],
    targets: Sequence[int] | Tensor,
    exclude: Sequence[ItemList] | None,
    num_items: int,
    ks: Sequence[int] = (10,),
    chunk: int = 1024,
) -> dict[str, float]:
    """Full-ranking ``{"hr@k", "ndcg@k"}`` for each k in ``ks`` over ``users``.

    ``targets[i]`` and ``exclude[i]`` belong to ``users[i]``; ``score_fn(user_indices)`` returns the
    [len(user_indices), num_items + 1] scores of one chunk of at most ``chunk`` users.
    """
    users = [int(u) for u in users]
    targets = _as_long(targets, torch.device("cpu"))
    if not users:
        raise SelfSupError("ranking_metrics: no users to evaluate; check the leave-one-out split (users need >= 3 items)")
    if targets.numel() != len(users) or (exclude is not None and len(exclude) != len(users)):
        raise SelfSupError("ranking_metrics: users, targets and exclude must have one entry per user each")
    if chunk < 1:
        raise SelfSupError(f"ranking_metrics: chunk must be >= 1, got {chunk}")
    ranks = []
    for start in range(0, len(users), chunk):
        stop = min(start + chunk, len(users))
        scores = score_fn(users[start:stop])
        if tuple(scores.shape) != (stop - start, num_items + 1):
            raise SelfSupError(
                f"ranking_metrics: score_fn returned shape {tuple(scores.shape)}, expected "
                f"({stop - start}, {num_items + 1}) = [users, num_items + 1] with column 0 for padding"
            )
        sub_exclude = None if exclude is None else exclude[start:stop]
        ranks.append(rank_of_target(scores, targets[start:stop], sub_exclude).cpu())
    all_ranks = torch.cat(ranks)
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate_at_k(all_ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(all_ranks, k)
    log.debug("ranking metrics over %d users: %s", len(users), out)
    return out
