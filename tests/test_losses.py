"""Tests for selfsup.losses and selfsup.distributed: slow loop references + behaviour."""

from __future__ import annotations

import math

import pytest
import torch

import selfsup.losses.contrastive as losses_mod
from selfsup.distributed import gather_with_grad, rank, world_size
from selfsup.losses import info_nce, masked_patch_mse, negative_cosine, patchify, unpatchify


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


# ---------------------------------------------------------------- slow references


def _ref_info_nce(z1, z2, t, extra_negatives=None):
    """Paper's formula with explicit loops over the 2N anchors (and all candidates)."""
    n = z1.shape[0]
    views = [z1[i] for i in range(n)] + [z2[i] for i in range(n)]
    others = [] if extra_negatives is None else list(extra_negatives)
    total = torch.zeros(())
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        numerator = torch.exp(_cos(views[i], views[pos]) / t)
        denominator = torch.zeros(())
        for k in range(2 * n):
            if k != i:
                denominator = denominator + torch.exp(_cos(views[i], views[k]) / t)
        for other in others:
            denominator = denominator + torch.exp(_cos(views[i], other) / t)
        total = total - torch.log(numerator / denominator)
    return total / (2 * n)


def _ref_negative_cosine(p, z):
    return sum(2 - 2 * _cos(p[b], z[b]) for b in range(p.shape[0])) / p.shape[0]


def _ref_masked_patch_mse(pred, target, mask, normalize, eps=1e-6):
    total, count = torch.zeros(()), 0
    for b in range(pred.shape[0]):
        for n in range(pred.shape[1]):
            if not mask[b, n]:
                continue
            t = target[b, n]
            if normalize:
                mean = sum(t) / len(t)
                var = sum((x - mean) ** 2 for x in t) / len(t)
                t = (t - mean) / math.sqrt(var + eps)
            total = total + sum((pred[b, n, j] - t[j]) ** 2 for j in range(len(t))) / len(t)
            count += 1
    return total / count


# ---------------------------------------------------------------- info_nce


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_info_nce_matches_loop_reference(temperature):
    g = _gen(1)
    z1, z2 = torch.randn(5, 7, generator=g) * 3, torch.randn(5, 7, generator=g)
    expected = _ref_info_nce(z1, z2, temperature)
    torch.testing.assert_close(info_nce(z1, z2, temperature), expected, rtol=1e-5, atol=1e-5)


def test_info_nce_is_symmetric_in_views_and_stable_at_low_temperature():
    g = _gen(2)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    torch.testing.assert_close(info_nce(z1, z2), info_nce(z2, z1))
    z1.requires_grad_(True)
    loss = info_nce(z1, z2, temperature=0.01)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all()


def test_info_nce_aligned_views_lower_than_random():
    g = _gen(3)
    z1 = torch.randn(16, 32, generator=g)
    aligned = z1 + 0.05 * torch.randn(16, 32, generator=g)
    unrelated = torch.randn(16, 32, generator=g)
    assert info_nce(z1, aligned) < info_nce(z1, unrelated) - 1.0


def test_info_nce_lower_temperature_sharpens():
    g = _gen(4)
    z1 = torch.randn(16, 32, generator=g)
    z2 = z1 + 0.05 * torch.randn(16, 32, generator=g)
    # positives dominate: a sharper softmax puts even more mass on them
    assert info_nce(z1, z2, temperature=0.1) < info_nce(z1, z2, temperature=1.0)
    # cross entropy is never negative
    assert info_nce(z1, z2, temperature=0.1) >= 0


def test_info_nce_simulated_ddp_uses_other_ranks_as_negatives(monkeypatch):
    """Pretend to be rank 1 of 2: the other rank's 2N embeddings join the denominator."""
    g = _gen(5)
    n, d = 3, 5
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    other = torch.randn(2 * n, d, generator=g)  # rank 0's [z1; z2], already gathered
    other_n = torch.nn.functional.normalize(other, dim=1)

    monkeypatch.setattr(losses_mod, "world_size", lambda: 2)
    monkeypatch.setattr(losses_mod, "rank", lambda: 1)
    monkeypatch.setattr(losses_mod, "gather_with_grad", lambda x: torch.cat([other_n, x], 0))

    expected = _ref_info_nce(z1, z2, 0.5, extra_negatives=list(other))
    torch.testing.assert_close(info_nce(z1, z2, 0.5), expected, rtol=1e-5, atol=1e-5)
    # gather=False ignores the other process entirely
    torch.testing.assert_close(info_nce(z1, z2, 0.5, gather=False), _ref_info_nce(z1, z2, 0.5))


# ---------------------------------------------------------------- negative_cosine


def test_negative_cosine_matches_loop_reference():
    g = _gen(6)
    p, z = torch.randn(4, 9, generator=g), torch.randn(4, 9, generator=g) * 5
    torch.testing.assert_close(negative_cosine(p, z), _ref_negative_cosine(p, z))


def test_negative_cosine_extremes():
    p = torch.randn(3, 8, generator=_gen(7))
    torch.testing.assert_close(negative_cosine(p, 2.5 * p), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(negative_cosine(p, -0.3 * p), torch.tensor(4.0), atol=1e-6, rtol=0)


def test_negative_cosine_stops_gradient_to_target():
    g = _gen(8)
    p = torch.randn(4, 6, generator=g, requires_grad=True)
    z = torch.randn(4, 6, generator=g, requires_grad=True)
    negative_cosine(p, z).backward()
    assert z.grad is None
    assert p.grad is not None and p.grad.abs().sum() > 0


# ---------------------------------------------------------------- masked_patch_mse


@pytest.mark.parametrize("normalize", [True, False])
def test_masked_patch_mse_matches_loop_reference(normalize):
    g = _gen(9)
    pred = torch.randn(2, 5, 4, generator=g)
    target = torch.rand(2, 5, 4, generator=g) * 3 + 1
    mask = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]], dtype=torch.bool)
    expected = _ref_masked_patch_mse(pred, target, mask, normalize)
    torch.testing.assert_close(masked_patch_mse(pred, target, mask, normalize), expected)
    # an integer 0/1 mask means the same thing as a boolean one
    torch.testing.assert_close(masked_patch_mse(pred, target, mask.long(), normalize), expected)


def test_masked_patch_mse_ignores_unmasked_patches():
    g = _gen(10)
    pred = torch.randn(2, 6, 3, generator=g)
    target = torch.randn(2, 6, 3, generator=g)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, ::2] = True
    before = masked_patch_mse(pred, target, mask)
    changed = pred.clone()
    changed[~mask] = 1000.0
    torch.testing.assert_close(masked_patch_mse(changed, target, mask), before)
    changed[mask] += 1.0
    assert masked_patch_mse(changed, target, mask) != before


def test_masked_patch_mse_normalisation():
    g = _gen(11)
    raw = torch.randn(1, 3, 16, generator=g)
    target = raw * 7.0 + 20.0  # same patches, shifted and scaled
    mask = torch.ones(1, 3, dtype=torch.bool)
    standardized = (raw - raw.mean(-1, keepdim=True)) / raw.std(-1, unbiased=False, keepdim=True)
    # predicting the standardised patch is (almost) perfect only with normalisation on
    assert masked_patch_mse(standardized, target, mask, normalize_target=True) < 1e-4
    assert masked_patch_mse(standardized, target, mask, normalize_target=False) > 100
    # affine changes of the target do not change the normalised loss
    torch.testing.assert_close(
        masked_patch_mse(standardized * 0.5, target, mask),
        masked_patch_mse(standardized * 0.5, raw, mask),
        rtol=1e-4,
        atol=1e-4,
    )


def test_masked_patch_mse_no_masked_patch_gives_zero_with_grad():
    pred = torch.randn(2, 4, 3, requires_grad=True)
    loss = masked_patch_mse(pred, torch.randn(2, 4, 3), torch.zeros(2, 4, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


# ---------------------------------------------------------------- patchify / unpatchify


def test_patchify_ordering_on_hand_made_tensor():
    # 1 image, 2 channels, 4x4, patch 2: value = 100*c + 10*row + col
    c_, r_, k_ = torch.meshgrid(torch.arange(2), torch.arange(4), torch.arange(4), indexing="ij")
    images = (100 * c_ + 10 * r_ + k_).float().unsqueeze(0)
    patches = patchify(images, 2)
    assert patches.shape == (1, 4, 8)
    # patch 1 = top-right block (rows 0-1, cols 2-3), flattened (row, col, channel)
    expected_1 = [2, 102, 3, 103, 12, 112, 13, 113]
    assert patches[0, 1].tolist() == expected_1
    # patch 2 = bottom-left block (rows 2-3, cols 0-1)
    assert patches[0, 2].tolist() == [20, 120, 21, 121, 30, 130, 31, 131]


def test_patchify_unpatchify_round_trip():
    g = _gen(12)
    square = torch.randn(2, 3, 8, 8, generator=g)
    assert torch.equal(unpatchify(patchify(square, 4), 4, 3), square)
    wide = torch.randn(2, 3, 4, 12, generator=g)
    patches = patchify(wide, 2)
    assert patches.shape == (2, 12, 12)
    assert torch.equal(unpatchify(patches, 2, 3, grid_size=(2, 6)), wide)


def test_patchify_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="not divisible by patch_size=4"):
        patchify(torch.zeros(1, 3, 8, 10), 4)
    with pytest.raises(ValueError, match="square grid"):
        unpatchify(torch.zeros(1, 6, 12), 2, 3)


# ---------------------------------------------------------------- distributed


def test_distributed_helpers_single_process():
    assert world_size() == 1 and rank() == 0
    x = torch.randn(3, 4, requires_grad=True)
    y = gather_with_grad(x)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
