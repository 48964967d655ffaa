"""Full-ranking leave-one-out metrics: ranks, HR@k, NDCG@k, popularity baseline, chunking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfsup.errors import SelfSupError
from selfsup.evaluation.ranking import (
    hit_rate_at_k,
    ndcg_at_k,
    popularity_scores,
    rank_of_target,
    ranking_metrics,
)

# 3 users x 5 items; column 0 is padding (a huge score there must never count).
SCORES = torch.tensor(
    [
        [99.0, 0.9, 0.8, 0.7, 0.6, 0.5],
        [99.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        [99.0, 0.5, 0.5, 0.5, 0.1, 0.9],
    ]
)
TARGETS = torch.tensor([3, 5, 2])


def test_ranks_hr_ndcg_hand_computed() -> None:
    ranks = rank_of_target(SCORES, TARGETS, None)
    # u0: items 1,2 above -> 2; u1: best -> 0; u2: ties 1,3 (>=) and 5 above -> 3 (pessimistic)
    assert ranks.tolist() == [2, 0, 3]
    assert hit_rate_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert hit_rate_at_k(ranks, 3) == pytest.approx(2 / 3)
    assert ndcg_at_k(ranks, 3) == pytest.approx((1 / math.log2(4) + 1.0 + 0.0) / 3)
    assert ndcg_at_k(ranks, 4) == pytest.approx((0.5 + 1.0 + 1 / math.log2(5)) / 3)


def test_exclusion_changes_rank_but_target_stays_ranked() -> None:
    exclude = [torch.tensor([1]), np.array([5, 2]), [5, 3]]  # u1 lists its own target 5
    ranks = rank_of_target(SCORES, TARGETS, exclude)
    assert ranks.tolist() == [1, 0, 1]
    assert ndcg_at_k(ranks, 10) == pytest.approx((2 / math.log2(3) + 1.0) / 3)


def test_pessimistic_ties_constant_scorer_gets_worst_rank() -> None:
    scores = torch.zeros(2, 6)
    ranks = rank_of_target(scores, torch.tensor([4, 1]), [torch.tensor([1, 2]), torch.tensor([], dtype=torch.long)])
    assert ranks.tolist() == [5 - 1 - 2, 5 - 1]
    assert hit_rate_at_k(ranks, 1) == 0.0


def test_nan_scores_count_as_worst() -> None:
    scores = torch.tensor([[0.0, 1.0, float("nan"), 0.5]])
    assert rank_of_target(scores, torch.tensor([2])).tolist() == [2]


def _brute_rank(row: torch.Tensor, target: int, seen: set[int]) -> int:
    others = [i for i in range(1, row.numel()) if i != target and i not in seen]
    return sum(int(row[i] >= row[target]) for i in others)


def test_chunking_matches_one_chunk_and_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (7, 13), generator=gen).float()  # many ties
    targets = torch.randint(1, 13, (7,), generator=gen)
    exclude = [torch.randint(0, 13, (3,), generator=gen) for _ in range(7)]
    users = [6, 0, 3, 1, 5, 2, 4]
    calls: list[list[int]] = []

    def score_fn(idx: list[int]) -> torch.Tensor:
        calls.append(list(idx))
        return scores[idx]

    tgt = targets[users]
    exc = [exclude[u] for u in users]
    one = ranking_metrics(score_fn, users, tgt, exc, num_items=12, ks=(1, 5), chunk=1024)
    assert calls == [users]
    calls.clear()
    many = ranking_metrics(score_fn, users, tgt, exc, num_items=12, ks=(1, 5), chunk=3)
    assert [len(c) for c in calls] == [3, 3, 1]
    assert set(one) == {"hr@1", "ndcg@1", "hr@5", "ndcg@5"}
    assert one == pytest.approx(many)
    brute = torch.tensor(
        [_brute_rank(scores[u], int(targets[u]), set(exclude[u].tolist()) - {int(targets[u])}) for u in users]
    )
    assert one["hr@5"] == pytest.approx(hit_rate_at_k(brute, 5))
    assert one["ndcg@5"] == pytest.approx(ndcg_at_k(brute, 5))


def test_popularity_counts_and_baseline_hr() -> None:
    histories = [np.array([2, 2, 1]), np.array([2, 3]), np.array([1, 4]), np.array([4, 3])]
    pop = popularity_scores(histories, num_items=5)
    assert pop[0] == -math.inf
    assert pop[1:].tolist() == [2.0, 3.0, 2.0, 2.0, 0.0]
    targets = [2, 2, 3, 1]  # item 2 is the most popular; half the users' target is item 2
    metrics = ranking_metrics(
        lambda idx: pop.expand(len(idx), -1), range(4), targets, histories, num_items=5, ks=(1,), chunk=2
    )
    assert metrics["hr@1"] == pytest.approx(0.5)
    assert metrics["ndcg@1"] == pytest.approx(0.5)


def test_user_mistakes_raise_one_line_errors() -> None:
    with pytest.raises(SelfSupError, match="1..5"):
        rank_of_target(SCORES, torch.tensor([0, 1, 2]))
    with pytest.raises(SelfSupError, match="num_items"):
        popularity_scores([np.array([7])], num_items=5)
    with pytest.raises(SelfSupError, match="expected") as err:
        ranking_metrics(lambda idx: torch.zeros(len(idx), 4), [0], [1], None, num_items=5)
    assert "\n" not in str(err.value)
    with pytest.raises(SelfSupError):
        hit_rate_at_k(torch.tensor([], dtype=torch.long), 10)
