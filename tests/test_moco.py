"""MoCo v2/v3: losses against loop references, the feature queue, learning, the momentum key encoder."""

from __future__ import annotations

import math

import pytest
import torch

import selfsup.losses.contrastive as losses_mod
import selfsup.methods.memory as memory_mod
from selfsup.encoders import build_encoder
from selfsup.errors import SelfSupError
from selfsup.losses import moco_v2_loss, moco_v3_loss
from selfsup.methods.memory import FeatureQueue
from selfsup.methods.moco import MoCo
from selfsup.types import Modality

from method_checks import SIZE, assert_ema_step, assert_method_learns, fixed_batch, param_distance


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()))


# ---------------------------------------------------------------- slow references


def _ref_moco_v2(q, k, queue, t):
    """He et al. 2020 eq. (1), one query at a time: -log exp(q.k+/t) / (exp(q.k+/t) + sum_j exp(q.queue_j/t))."""
    total = 0.0
    for i in range(q.shape[0]):
        positive = math.exp(_cos(q[i], k[i]) / t)
        negatives = sum(math.exp(_cos(q[i], queue[j]) / t) for j in range(queue.shape[0]))
        total -= math.log(positive / (positive + negatives))
    return torch.tensor(total / q.shape[0])


def _ref_moco_v3(q, keys, t, offset=0):
    """Chen et al. 2021 ctr: query i's positive is keys[offset + i], every key is a candidate; times 2t."""
    total = 0.0
    for i in range(q.shape[0]):
        scores = [math.exp(_cos(q[i], keys[j]) / t) for j in range(keys.shape[0])]
        total -= math.log(scores[offset + i] / sum(scores))
    return torch.tensor(2 * t * total / q.shape[0])


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_moco_v2_loss_matches_loop_reference(temperature):
    g = _gen(1)
    q, k, queue = torch.randn(5, 6, generator=g) * 3, torch.randn(5, 6, generator=g), torch.randn(9, 6, generator=g)
    expected = _ref_moco_v2(q, k, queue, temperature)
    torch.testing.assert_close(moco_v2_loss(q, k, queue, temperature), expected, rtol=1e-5, atol=1e-5)


def test_moco_v2_loss_only_the_query_gets_a_gradient():
    g = _gen(2)
    q = torch.randn(4, 8, generator=g, requires_grad=True)
    k = torch.randn(4, 8, generator=g, requires_grad=True)
    queue = torch.randn(16, 8, generator=g, requires_grad=True)
    moco_v2_loss(q, k, queue).backward()
    assert k.grad is None and queue.grad is None
    assert q.grad is not None and q.grad.abs().sum() > 0
    # a key aligned with its query, against a random queue, gives a lower loss than a random key
    aligned = q.detach() + 0.05 * torch.randn(4, 8, generator=g)
    assert moco_v2_loss(q, aligned, queue) < moco_v2_loss(q, k, queue) - 1.0


@pytest.mark.parametrize("temperature", [0.2, 1.0])
def test_moco_v3_loss_matches_loop_reference(temperature):
    g = _gen(3)
    q, k = torch.randn(6, 5, generator=g) * 2, torch.randn(6, 5, generator=g)
    torch.testing.assert_close(moco_v3_loss(q, k, temperature), _ref_moco_v3(q, k, temperature), rtol=1e-5, atol=1e-5)
    k_leaf = k.clone().requires_grad_(True)
    moco_v3_loss(q.requires_grad_(True), k_leaf, temperature).backward()
    assert k_leaf.grad is None and q.grad.abs().sum() > 0


def test_moco_v3_loss_simulated_ddp_gathers_keys_and_offsets_labels(monkeypatch):
    """Pretend to be rank 1 of 2: rank 0's keys come first; query i's positive is key N + i."""
    g = _gen(4)
    n, d = 3, 4
    q, k, other = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    other_n = torch.nn.functional.normalize(other, dim=1)
    monkeypatch.setattr(losses_mod, "world_size", lambda: 2)
    monkeypatch.setattr(losses_mod, "rank", lambda: 1)
    monkeypatch.setattr(losses_mod, "gather_no_grad", lambda x: torch.cat([other_n, x], 0))
    monkeypatch.setattr(losses_mod, "gather_with_grad", lambda x: pytest.fail("keys need no gradient"))

    expected = _ref_moco_v3(q, torch.cat([other, k]), 1.0, offset=n)
    torch.testing.assert_close(moco_v3_loss(q, k, 1.0), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(moco_v3_loss(q, k, 1.0, gather=False), _ref_moco_v3(q, k, 1.0), rtol=1e-5, atol=1e-5)


def test_moco_losses_reject_bad_input():
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match="same shape"):
        moco_v3_loss(x, x[:3])
    with pytest.raises(ValueError, match="queue"):
        moco_v2_loss(x, x, torch.randn(10, 7))
    with pytest.raises(ValueError, match="temperature"):
        moco_v2_loss(x, x, torch.randn(10, 8), temperature=0.0)


# ---------------------------------------------------------------- FeatureQueue


def test_feature_queue_is_a_fifo_that_wraps_around():
    torch.manual_seed(0)
    queue = FeatureQueue(size=5, dim=3)
    torch.testing.assert_close(queue.features.norm(dim=1), torch.ones(5))  # random unit vectors
    initial = queue.features.clone()
    assert {name for name, _ in queue.named_buffers()} == {"bank", "ptr"}

    a = torch.randn(3, 3, generator=_gen(5)) * 4
    queue.enqueue(a)  # slots 0..2
    unit = torch.nn.functional.normalize
    torch.testing.assert_close(queue.features[:3], unit(a, dim=1))
    torch.testing.assert_close(queue.features[3:], initial[3:])
    assert int(queue.ptr) == 3

    b = torch.randn(3, 3, generator=_gen(6))
    queue.enqueue(b)  # 5 is not a multiple of 3: slots 3, 4, then 0 (the oldest, a[0]) is overwritten
    torch.testing.assert_close(queue.features, unit(torch.stack([b[2], a[1], a[2], b[0], b[1]]), dim=1))
    assert int(queue.ptr) == 1

    c = torch.randn(7, 3, generator=_gen(7))
    queue.enqueue(c)  # more keys than slots: c[2:] survive, each in the slot the ring gives it
    expected = torch.empty(5, 3)
    for j in range(7):
        expected[(1 + j) % 5] = unit(c[j], dim=0)
    torch.testing.assert_close(queue.features, expected)
    assert int(queue.ptr) == (1 + 7) % 5

    restored = FeatureQueue(size=5, dim=3)
    restored.load_state_dict(queue.state_dict())  # buffers: saved in checkpoints
    torch.testing.assert_close(restored.features, queue.features)
    assert int(restored.ptr) == 3
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        queue.enqueue(torch.randn(2, 4))


def test_feature_queue_simulated_ddp_enqueues_every_process_keys(monkeypatch):
    unit = torch.nn.functional.normalize
    other = unit(torch.randn(2, 4, generator=_gen(8)), dim=1)  # rank 0's normalised keys, gathered before ours
    monkeypatch.setattr(memory_mod, "gather_no_grad", lambda x: torch.cat([other, x]))
    mine = torch.randn(2, 4, generator=_gen(9))
    shared, local = FeatureQueue(6, 4), FeatureQueue(6, 4, gather=False)
    shared.enqueue(mine)
    local.enqueue(mine)
    torch.testing.assert_close(shared.features[:4], unit(torch.cat([other, mine]), dim=1))
    assert int(shared.ptr) == 4
    torch.testing.assert_close(local.features[:2], unit(mine, dim=1))
    assert int(local.ptr) == 2


# ---------------------------------------------------------------- the method


# v3 contrasts at temperature 1.0 (logits in [-1, 1]) against a slowly moving key encoder, so its loss
# moves less per step than v2's at 0.2: it gets 20 steps.
@pytest.mark.parametrize(
    ("hparams", "margin", "steps"),
    [({"version": 2, "crop_min_scale": 0.5}, 0.3, 10), ({"version": 3, "crop_min_scale": 0.5}, 0.2, 20)],
    ids=["v2", "v3"],
)
def test_moco_learns(hparams, margin, steps):
    assert_method_learns("moco", "tiny_cnn", hparams, margin, steps=steps)


def _moco(**hparams) -> MoCo:
    torch.manual_seed(0)
    return MoCo(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, **hparams)


@pytest.mark.parametrize("version", [2, 3])
def test_moco_key_encoder_gets_no_gradient_and_follows_the_ema(version):
    method = _moco(version=version, momentum=0.9, queue_size=64)
    online = list(method.encoder.parameters()) + list(method.projector.parameters())
    keys = list(method.key_encoder.parameters()) + list(method.key_projector.parameters())
    assert (method.predictor is not None) == (version == 3) and (method.queue is None) == (version == 3)
    out, gap = assert_ema_step(method, online, keys, momentum=0.9)  # key <- 0.9 key + 0.1 query
    assert set(out.metrics) == {"pos_cosine", "momentum"} and -1 <= out.metrics["pos_cosine"] <= 1
    method.on_step_end(1.0)  # v2: constant momentum; v3: cosine schedule reaches 1 (keys stay put)
    expected = 0.9 if version == 2 else 1.0
    assert method.momentum == pytest.approx(expected)
    assert param_distance(keys, online) == pytest.approx(0.9 * gap * expected, rel=1e-3)


def test_moco_v2_enqueues_both_views_keys_after_the_loss_in_training_only():
    method = _moco(version=2, queue_size=64)
    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=8), _gen(0))
    before = method.queue.features.clone()
    with torch.no_grad():
        keys = method.key_projector(method.key_encoder.embed(torch.cat([batch["view1"], batch["view2"]])))
        # the loss contrasts with the queue as it was before this batch's keys went in
        q1, q2 = method.projector(method.encoder.embed(torch.cat([batch["view1"], batch["view2"]]))).chunk(2)
        k1, k2 = keys.chunk(2)
        expected = (moco_v2_loss(q1, k2, before, 0.2) + moco_v2_loss(q2, k1, before, 0.2)) / 2
    out = method.loss(batch)
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(method.queue.features[:16], torch.nn.functional.normalize(keys, dim=1))
    torch.testing.assert_close(method.queue.features[16:], before[16:])
    assert int(method.queue.ptr) == 16

    method.eval()
    method.loss(batch)
    assert int(method.queue.ptr) == 16, "evaluation must not push keys into the queue"


def test_moco_version_and_temperature_defaults():
    assert _moco().hp.temperature == 0.2
    assert _moco(version=3).hp.temperature == 1.0
    assert _moco(version=3, temperature=0.2).hp.temperature == 0.2
    with pytest.raises(SelfSupError, match="moco version must be 2 .* or 3 .* got 4"):
        _moco(version=4)
