"""selfsup.pretext.clusters: Sinkhorn-Knopp codes (vs a loop reference, marginals, simulated DDP)
and k-means (exact recovery of separated clusters, seeds, empty clusters, chunked assignment)."""

from __future__ import annotations

import math

import pytest
import torch

import selfsup.pretext.clusters as clusters_mod
from selfsup.pretext.clusters import assign, kmeans, sinkhorn

from fake_dist import FakeProcessGroup

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ref_sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """SwAV's Algorithm with explicit loops, in float64 Python numbers: Q is K x B."""
    b, k = scores.shape
    q = [[math.exp(float(scores[i, j]) / epsilon) for i in range(b)] for j in range(k)]
    total = sum(sum(row) for row in q)
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        for j in range(k):
            row_sum = sum(q[j])
            q[j] = [v / row_sum / k for v in q[j]]
        for i in range(b):
            col_sum = sum(q[j][i] for j in range(k))
            for j in range(k):
                q[j][i] = q[j][i] / col_sum / b
    return torch.tensor([[q[j][i] * b for j in range(k)] for i in range(b)], dtype=torch.float32)


# ---------------------------------------------------------------- sinkhorn


@pytest.mark.parametrize(("batch", "prototypes", "iterations"), [(6, 4, 3), (5, 9, 1), (8, 3, 7)])
def test_sinkhorn_matches_loop_reference(batch, prototypes, iterations):
    scores = torch.rand(batch, prototypes, generator=_gen(batch)) * 2 - 1  # cosine-like scores
    expected = _ref_sinkhorn(scores, 0.05, iterations)
    torch.testing.assert_close(sinkhorn(scores, 0.05, iterations), expected, rtol=1e-4, atol=1e-6)


def test_sinkhorn_marginals_rows_sum_to_one_and_prototypes_share_equally():
    scores = torch.randn(32, 8, generator=_gen(1))
    scores[:, 0] += 3.0  # every sample prefers prototype 0: the constraint must spread them
    q = sinkhorn(scores, epsilon=0.05, iterations=3)
    assert (q >= 0).all()
    torch.testing.assert_close(q.sum(1), torch.ones(32))  # an assignment per sample
    mass = q.sum(0)  # mass per prototype: after 3 iterations already within 2x of B / K = 4
    assert mass.min() > 2.0 and mass.max() < 8.0, mass
    converged = sinkhorn(scores, epsilon=0.05, iterations=200).sum(0)
    torch.testing.assert_close(converged, torch.full((8,), 4.0), rtol=1e-3, atol=1e-3)
    # without the constraint (plain softmax) prototype 0 takes nearly everything
    assert torch.softmax(scores / 0.05, dim=1).sum(0)[0] > 28


def test_sinkhorn_is_stable_for_large_scores_and_shift_invariant():
    scores = torch.randn(6, 5, generator=_gen(2))
    q = sinkhorn(scores)
    torch.testing.assert_close(sinkhorn(scores + 1000.0), q)  # exp(1000 / 0.05) would overflow unshifted
    big = sinkhorn(scores * 50)
    assert torch.isfinite(big).all()
    torch.testing.assert_close(big.sum(1), torch.ones(6))


def test_sinkhorn_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        sinkhorn(torch.zeros(3))
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(torch.zeros(2, 2), epsilon=0.0)


def test_sinkhorn_under_simulated_ddp_equals_the_global_batch(monkeypatch):
    """Two ranks with half the batch each get exactly the codes of the whole batch in one process."""
    scores = torch.randn(10, 6, generator=_gen(3))
    scores[:5] += torch.linspace(0, 2, 6)  # the two halves differ, so local-only sums would be wrong
    expected = sinkhorn(scores, 0.05, 3)

    group = FakeProcessGroup(2)
    group.patch(monkeypatch, clusters_mod)
    halves = group.run(lambda part: sinkhorn(part, 0.05, 3), [(half,) for half in scores.chunk(2)])
    torch.testing.assert_close(torch.cat(halves), expected, rtol=1e-5, atol=1e-7)
    monkeypatch.undo()  # one process per half: each would be balanced on its own, which is different
    local_only = torch.cat([sinkhorn(scores[:5], 0.05, 3), sinkhorn(scores[5:], 0.05, 3)])
    assert not torch.allclose(local_only, expected, atol=1e-3)


# ---------------------------------------------------------------- k-means


def _blobs(k: int = 5, per: int = 40, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Well-separated Gaussian blobs (centres ~10 apart, noise 0.3), rows shuffled."""
    g = _gen(seed)
    centres = torch.randn(k, dim, generator=g) * 10
    labels = torch.arange(k).repeat_interleave(per)
    x = centres[labels] + 0.3 * torch.randn(k * per, dim, generator=g)
    order = torch.randperm(k * per, generator=g)
    return x[order], labels[order]


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two labelings define the same partition (equal up to renaming the clusters)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("device", DEVICES)
def test_kmeans_recovers_separated_clusters_for_every_seed(device):
    x, truth = _blobs()
    x = x.to(device)
    for seed in range(5):
        centroids, labels = kmeans(x, 5, seed=seed)
        assert centroids.shape == (5, 8) and labels.shape == (200,) and labels.dtype == torch.long
        assert labels.device == x.device
        assert _same_partition(labels.cpu(), truth), f"seed {seed} did not recover the clusters"
        for c in range(5):  # each centroid is the mean of its members
            torch.testing.assert_close(centroids[c], x[labels == c].mean(0), rtol=1e-4, atol=1e-4)


def test_kmeans_is_deterministic_for_a_seed_and_chunking_does_not_matter():
    x = torch.randn(300, 4, generator=_gen(4))  # no real clusters: the result depends on the seed
    c1, l1 = kmeans(x, 7, seed=3)
    c2, l2 = kmeans(x, 7, seed=3, chunk_size=11)
    torch.testing.assert_close(c1, c2)
    assert torch.equal(l1, l2)
    assert torch.equal(l1, assign(x, c1))  # labels are the nearest returned centroids
    assert torch.bincount(l1, minlength=7).min() > 0


def test_kmeans_reseeds_empty_clusters(monkeypatch):
    """A degenerate start (all centres on one point) leaves clusters empty: they are re-seeded at the
    farthest points and the true clusters are still found."""
    x, truth = _blobs(k=3, per=30, seed=5)
    monkeypatch.setattr(clusters_mod, "_kmeans_pp", lambda features, k, generator, x_sq=None: features[[0] * k].float())
    centroids, labels = kmeans(x, 3)
    assert torch.bincount(labels, minlength=3).min() > 0
    assert _same_partition(labels, truth)


def test_kmeans_plus_plus_seeds_one_centre_per_separated_cluster():
    x, truth = _blobs(k=6, per=20, seed=6)
    seeds = clusters_mod._kmeans_pp(x, 6, _gen(0))
    nearest_blob = {int(truth[(x - s).norm(dim=1).argmin()]) for s in seeds}
    assert nearest_blob == set(range(6))


def test_kmeans_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k=5"):
        kmeans(torch.randn(4, 2), 5)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        kmeans(torch.randn(4), 2)


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 1000])
def test_assign_matches_brute_force(chunk_size):
    g = _gen(7)
    x, c = torch.randn(50, 6, generator=g), torch.randn(9, 6, generator=g)
    brute = torch.tensor([min(range(9), key=lambda j: float(((x[i] - c[j]) ** 2).sum())) for i in range(50)])
    assert torch.equal(assign(x, c, chunk_size=chunk_size), brute)
    assert torch.equal(assign(x.double(), c.double(), chunk_size=chunk_size), brute)  # any float dtype
    with pytest.raises(ValueError, match="centroids"):
        assign(x, c[:, :3])
