"""Multi-crop views, DINO (loss, centering, teacher-temperature schedule, teacher) and SwAV (loss,
prototypes): loop references, simulated DDP, and both methods learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import selfsup.methods.momentum as momentum_mod
import selfsup.methods.swav as swav_mod
from selfsup.encoders import build_encoder
from selfsup.heads import Prototypes
from selfsup.losses import dino_loss, swav_loss
from selfsup.methods.dino import DINO
from selfsup.methods.momentum import Centering
from selfsup.methods.multicrop_base import embed_crops
from selfsup.methods.swav import SwAV
from selfsup.pretext import dino_multicrop, local_crop_size, sinkhorn, split_crops, swav_multicrop
from selfsup.types import Family, Modality

from method_checks import SIZE, assert_method_learns, fixed_batch

# small heads and 2 local crops keep the method tests at a few seconds; 16 px crops need narrower scales
DINO_SMALL = dict(head_hidden_dim=64, bottleneck_dim=32, num_prototypes=64, num_local_crops=2,
                  global_crop_min_scale=0.5, local_crop_min_scale=0.2)
SWAV_SMALL = dict(proj_hidden_dim=64, proj_dim=32, num_prototypes=16, num_local_crops=2,
                  global_crop_min_scale=0.5, local_crop_min_scale=0.2)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, size, size), generator=_gen(seed), dtype=torch.uint8)


# ---------------------------------------------------------------- multi-crop views


def test_local_crop_size_is_half_the_input_on_the_patch_grid():
    assert [local_crop_size(s) for s in (32, 16, 64, 224, 8, 4)] == [16, 8, 32, 112, 4, 4]
    assert local_crop_size(224, multiple=16) == 112 and local_crop_size(144, multiple=16) == 64
    assert local_crop_size(96, multiple=8) == 48


@pytest.mark.parametrize("build", [dino_multicrop, swav_multicrop], ids=["dino", "swav"])
@pytest.mark.parametrize("batch", [1, 8])
def test_multicrop_keys_sizes_and_copy_major(build, batch):
    pretext = build(32, num_local=3)
    images = _images(batch)
    views = pretext(images, _gen(0))
    assert list(views) == ["global1", "global2", "local1", "local2", "local3"] == pretext.keys
    for key, view in views.items():
        side = 32 if key.startswith("global") else 16
        assert view.shape == (batch, 3, side, side) and view.dtype == torch.float32, key
    # row i of every view comes from sample i alone: changing one sample changes only its rows
    changed = images.clone()
    changed[-1] = 255 - changed[-1]
    other = pretext(changed, _gen(0))
    for key in views:
        assert not torch.allclose(views[key][-1], other[key][-1]), key
        torch.testing.assert_close(views[key][:-1], other[key][:-1])
    # the local crops are separate draws, not copies of one another
    assert not torch.allclose(views["local1"], views["local2"])


def test_multicrop_presets_follow_the_papers():
    dino = dino_multicrop(96, num_local=6)
    g1, g2 = (a.config for a in dino.global_augments)
    local = dino.local_augment.config
    blur_solarize = [(c.blur_p, c.solarize_p) for c in (g1, g2, local)]
    assert blur_solarize == [(1.0, 0.0), (0.1, 0.2), (0.5, 0.0)]
    assert g1.crop_scale == (0.4, 1.0) and local.crop_scale == (0.05, 0.4) and local.size == 48 and dino.num_local == 6
    assert (g1.brightness, g1.saturation, g1.jitter_p, g1.grayscale_p) == (0.4, 0.2, 0.8, 0.2)
    assert dino_multicrop(32).local_augment.config.blur_p == 0.0  # no blur on CIFAR-size images, as byol_augments

    swav = swav_multicrop(96, local_size=40)
    g1, g2 = (a.config for a in swav.global_augments)
    local = swav.local_augment.config
    assert g1 == g2 and g1.crop_scale == (0.14, 1.0) and local.crop_scale == (0.05, 0.14) and local.size == 40
    assert (g1.brightness, g1.hue, g1.blur_p, local.blur_p) == (0.8, 0.2, 0.5, 0.5)  # colour strength 1


def test_split_crops_orders_views_by_index_and_rejects_other_batches():
    t = {i: torch.full((1,), float(i)) for i in range(12)}
    batch = {"local10": t[10], "global2": t[2], "local2": t[2], "global1": t[1], "local1": t[1], "other": t[0]}
    globals_, locals_ = split_crops(batch)
    assert [float(v) for v in globals_] == [1, 2] and [float(v) for v in locals_] == [1, 2, 10]
    with pytest.raises(ValueError, match="global1"):
        split_crops({"view1": t[0]})


def test_embed_crops_runs_the_encoder_once_per_resolution():
    encoder = build_encoder({"name": "tiny_cnn", "image_size": SIZE}).eval()
    calls = []
    encoder.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    views = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)]
    with torch.no_grad():
        out = embed_crops(encoder, views)
        separate = torch.cat([encoder.embed(v) for v in views])
    assert calls[:2] == [(4, 3, 16, 16), (4, 3, 8, 8)]
    torch.testing.assert_close(out, separate, rtol=1e-4, atol=1e-5)  # eval mode: batching changes nothing


# ---------------------------------------------------------------- losses vs loop references


# Independent references in plain Python (lists of floats, math.exp / math.log, explicit loops over crops,
# samples and dimensions): no torch.softmax, no production helper.

Rows = list[list[float]]


def _py_softmax(row: list[float], temperature: float, center: list[float] | None = None) -> list[float]:
    """softmax((row - center) / temperature), max-shifted for stability."""
    values = [(x - (center[k] if center is not None else 0.0)) / temperature for k, x in enumerate(row)]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def _py_log_softmax(row: list[float], temperature: float) -> list[float]:
    values = [x / temperature for x in row]
    top = max(values)
    log_total = top + math.log(sum(math.exp(v - top) for v in values))
    return [v - log_total for v in values]


def _py_cross_view(targets: list[Rows], log_probs: list[Rows]) -> float:
    """Mean over crop pairs (a, b), a != b, of mean_i -sum_k targets[a][i][k] * log_probs[b][i][k]."""
    total, pairs = 0.0, 0
    for a, target in enumerate(targets):
        for b, log_p in enumerate(log_probs):
            if a == b:
                continue
            ce = 0.0
            for i in range(len(target)):
                for k in range(len(target[i])):
                    ce -= target[i][k] * log_p[i][k]
            total += ce / len(target)
            pairs += 1
    return total / pairs


def _py_dino(student: list[Rows], teacher: list[Rows], center: list[float], student_temp: float,
             teacher_temp: float) -> float:
    targets = [[_py_softmax(row, teacher_temp, center) for row in crop] for crop in teacher]
    return _py_cross_view(targets, [[_py_log_softmax(row, student_temp) for row in crop] for crop in student])


def _py_sinkhorn(scores: Rows, epsilon: float, iterations: int) -> Rows:
    """SwAV's Sinkhorn-Knopp (Caron et al. 2020, Algorithm 1 / ``distributed_sinkhorn``) with loops:
    Q[k][b] = exp(scores[b][k] / epsilon) scaled to sum 1; then ``iterations`` times each prototype's row
    to 1/K and each sample's column to 1/B; codes = B * Q, transposed to [B][K]."""
    n, k = len(scores), len(scores[0])
    top = max(max(row) for row in scores)  # a common shift: cancels in the normalisations
    q = [[math.exp((scores[b][j] - top) / epsilon) for b in range(n)] for j in range(k)]
    total = sum(sum(row) for row in q)
    q = [[x / total for x in row] for row in q]
    for _ in range(iterations):
        for j in range(k):
            row_sum = sum(q[j])
            q[j] = [x / row_sum / k for x in q[j]]
        for b in range(n):
            col_sum = sum(q[j][b] for j in range(k))
            for j in range(k):
                q[j][b] = q[j][b] / col_sum / n
    return [[n * q[j][b] for j in range(k)] for b in range(n)]


def _py_swav(scores: list[Rows], temperature: float, epsilon: float, iterations: int, coded: int = 2) -> float:
    codes = [_py_sinkhorn(crop, epsilon, iterations) for crop in scores[:coded]]
    return _py_cross_view(codes, [[_py_log_softmax(row, temperature) for row in crop] for crop in scores])


def _rows(tensors) -> list[Rows]:
    return [t.detach().double().tolist() for t in tensors]


def test_python_references_agree_with_hand_computed_values():
    # softmax([0, ln 3]) = [1/4, 3/4]; centred by [0, ln 3] it is uniform; log-softmax of [0, 0] is -ln 2
    assert _py_softmax([0.0, math.log(3)], 1.0) == pytest.approx([0.25, 0.75])
    assert _py_softmax([0.0, math.log(3)], 1.0, center=[0.0, math.log(3)]) == pytest.approx([0.5, 0.5])
    assert _py_log_softmax([0.0, 0.0], 0.1) == pytest.approx([-math.log(2)] * 2)
    # one pair of crops with uniform targets over 2 classes: cross-entropy ln 2
    assert _py_cross_view([[[0.5, 0.5]], [[0.5, 0.5]]], [[[-math.log(2)] * 2]] * 2) == pytest.approx(math.log(2))
    codes = _py_sinkhorn([[1.0, 0.0], [0.0, 1.0], [0.3, 0.2], [0.9, 0.1]], 0.5, 50)
    assert [sum(row) for row in codes] == pytest.approx([1.0] * 4)  # each sample: a distribution
    assert [sum(row[j] for row in codes) for j in range(2)] == pytest.approx([2.0, 2.0], abs=1e-3)  # equal split


@pytest.mark.parametrize(("student_temp", "teacher_temp"), [(0.1, 0.04), (0.2, 0.07)])
def test_dino_loss_matches_python_reference(student_temp, teacher_temp):
    g = _gen(1)
    student = [torch.randn(3, 5, generator=g) for _ in range(4)]  # 2 globals + 2 locals
    teacher = [torch.randn(3, 5, generator=g) for _ in range(2)]
    center = torch.randn(1, 5, generator=g)
    expected = _py_dino(_rows(student), _rows(teacher), center[0].tolist(), student_temp, teacher_temp)
    loss = dino_loss(student, teacher, center, student_temp, teacher_temp)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    # the center may also be given as [K]
    as_k = dino_loss(student, teacher, center[0], student_temp, teacher_temp)
    assert as_k.item() == pytest.approx(expected, abs=1e-5)
    # the reference can tell: without the centring the number differs
    assert abs(expected - _py_dino(_rows(student), _rows(teacher), [0.0] * 5, student_temp, teacher_temp)) > 1e-2


def test_dino_loss_gradient_reaches_only_the_student_and_skips_same_view_pairs():
    g = _gen(2)
    student = [torch.randn(3, 5, generator=g, requires_grad=True) for _ in range(3)]
    teacher = [torch.randn(3, 5, generator=g, requires_grad=True) for _ in range(2)]
    dino_loss(student, teacher, torch.zeros(5)).backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    # a student view identical to the teacher's view of the same index changes nothing (a == b skipped)
    base = dino_loss([teacher[0].detach(), teacher[1].detach()], [t.detach() for t in teacher], torch.zeros(5))
    assert float(base) == pytest.approx(_py_dino(_rows(teacher), _rows(teacher), [0.0] * 5, 0.1, 0.04), abs=1e-5)
    with pytest.raises(ValueError, match="at least as many"):
        dino_loss([student[0]], teacher, torch.zeros(5))


@pytest.mark.parametrize(("epsilon", "iterations"), [(0.05, 3), (0.1, 5)])
def test_swav_sinkhorn_and_swapped_prediction_match_python_reference(epsilon, iterations):
    g = _gen(3)
    scores = [F.normalize(torch.randn(4, 6, generator=g), dim=1).requires_grad_() for _ in range(5)]  # cosines
    for crop in scores[:2]:
        codes = sinkhorn(crop, epsilon, iterations)
        torch.testing.assert_close(codes.double(), torch.tensor(_py_sinkhorn(_rows([crop])[0], epsilon, iterations),
                                                                dtype=torch.float64), rtol=1e-4, atol=1e-5)
    expected = _py_swav(_rows(scores), 0.1, epsilon, iterations)
    loss = swav_loss(scores, [sinkhorn(s, epsilon, iterations) for s in scores[:2]], temperature=0.1)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_swav_loss_detaches_codes():
    g = _gen(3)
    scores = [torch.randn(4, 6, generator=g, requires_grad=True) for _ in range(5)]
    codes = [torch.softmax(torch.randn(4, 6, generator=g), dim=1).requires_grad_() for _ in range(2)]
    loss = swav_loss(scores, codes, temperature=0.1)
    log_probs = [[_py_log_softmax(row, 0.1) for row in crop] for crop in _rows(scores)]
    assert loss.item() == pytest.approx(_py_cross_view(_rows(codes), log_probs), abs=1e-5)
    loss.backward()
    assert all(c.grad is None for c in codes)
    assert all(s.grad.abs().sum() > 0 for s in scores)


# ---------------------------------------------------------------- centering


def test_centering_is_an_ema_of_the_batch_mean():
    centering = Centering(4, momentum=0.9)
    assert torch.equal(centering.center, torch.zeros(1, 4)) and "center" in centering.state_dict()
    a = torch.arange(12.0).view(3, 4)
    centering.update(a)
    torch.testing.assert_close(centering.center, 0.1 * a.mean(0, keepdim=True))
    b = torch.ones(2, 4)
    centering.update(b)
    torch.testing.assert_close(centering.center, 0.9 * 0.1 * a.mean(0, keepdim=True) + 0.1 * b.mean(0, keepdim=True))


def test_centering_averages_over_every_process(monkeypatch):
    """Rank 1 of 2 (batch 3 each): the all-reduced sum adds the other rank's outputs."""
    other = torch.full((3, 4), 10.0)
    local = torch.arange(12.0).view(3, 4)
    monkeypatch.setattr(momentum_mod, "world_size", lambda: 2)
    monkeypatch.setattr(momentum_mod, "all_reduce_sum", lambda x: x + other.sum(0, keepdim=True))
    centering = Centering(4, momentum=0.5)
    centering.update(local)
    torch.testing.assert_close(centering.center, 0.5 * torch.cat([local, other]).mean(0, keepdim=True))


# ---------------------------------------------------------------- DINO


def test_dino_teacher_temperature_warms_up_linearly_then_stays():
    method = DINO(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, **DINO_SMALL)
    assert method.teacher_temp == pytest.approx(0.04) and method.family is Family.SELF_DISTILLATION
    method.on_step_end(0.1)
    assert method.teacher_temp == pytest.approx(0.05)
    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=4), _gen(0))
    assert method.loss(batch).metrics["teacher_temp"].item() == pytest.approx(0.05)
    method.on_step_end(0.9)
    assert method.teacher_temp == pytest.approx(0.07)


def test_dino_teacher_gets_no_gradient_center_and_last_layer_freeze():
    torch.manual_seed(0)
    method = DINO(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, **DINO_SMALL, freeze_last_layer=0.2)
    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=6), _gen(0))
    assert batch["local1"].shape == (6, 3, 8, 8)  # half of 16 px
    teacher = list(method.teacher_encoder.parameters()) + list(method.teacher_head.parameters())
    assert all(not p.requires_grad for p in teacher)

    out = method.loss(batch)
    out.loss.backward()
    assert all(p.grad is None for p in teacher), "the DINO teacher must receive no gradient"
    assert method.encoder.model.conv1.weight.grad.abs().sum() > 0
    last = method.head[-1].weight
    assert last.grad is not None and last.grad.abs().sum() == 0, "frozen last layer: zero gradient, still in the graph"
    assert out.embeddings.shape == (6, method.encoder.dim)
    assert 0 < out.metrics["teacher_entropy"] <= torch.log(torch.tensor(64.0))

    # the center moves only in on_step_end, towards the mean of the teacher's outputs on the globals
    assert torch.equal(method.centering.center, torch.zeros(1, 64))
    with torch.no_grad():
        globals_, _ = split_crops(batch)
        teacher_out = method.teacher_head(embed_crops(method.teacher_encoder, globals_))
    method.on_step_end(0.1)
    torch.testing.assert_close(method.centering.center, 0.1 * teacher_out.mean(0, keepdim=True), rtol=1e-4, atol=1e-6)
    assert method.head[-1].frozen  # still in the first 20 %
    method.zero_grad()
    method.loss(batch).loss.backward()
    assert last.grad.abs().sum() == 0
    method.on_step_end(0.25)
    assert not method.head[-1].frozen
    method.zero_grad()
    method.loss(batch).loss.backward()
    assert last.grad.abs().sum() > 0


def test_dino_learns():
    # The DINO loss is H(teacher) + KL(teacher || student); centering and the temperature warm-up
    # raise H(teacher) on purpose early on, so on 10 steps the loss learns visibly only with a fixed
    # center and temperature. The next test checks the full recipe through the KL term.
    assert_method_learns("dino", "tiny_cnn", {**DINO_SMALL, "teacher_temp": 0.04, "center_momentum": 1.0}, 0.3)


def test_dino_full_recipe_closes_the_gap_to_the_teacher_without_collapse():
    torch.manual_seed(0)
    method = DINO(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, **DINO_SMALL)
    pretext, images = method.pretext(Modality.IMAGE), fixed_batch()
    probe = pretext(images, _gen(1234))

    def gap_and_entropy() -> tuple[float, float]:
        with torch.no_grad():
            out = method.loss(probe)
        entropy = out.metrics["teacher_entropy"].item()
        return out.loss.item() - entropy, entropy  # mean KL(teacher || student) over the view pairs

    gap_before, entropy_before = gap_and_entropy()
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    generator = _gen(0)
    for step in range(10):
        loss = method.loss(pretext(images, generator)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.on_step_end((step + 1) / 10)
    gap_after, entropy_after = gap_and_entropy()
    assert gap_after < gap_before - 0.5, (gap_before, gap_after)
    assert entropy_after > entropy_before + 0.5, (entropy_before, entropy_after)  # centering keeps it from collapsing


# ---------------------------------------------------------------- SwAV


def test_prototypes_are_cosine_scores_and_freeze_to_a_zero_gradient():
    layer = Prototypes(4, 3)
    x = torch.randn(5, 4, generator=_gen(4))
    expected = F.normalize(x, dim=1) @ F.normalize(layer.weight, dim=1).T
    torch.testing.assert_close(layer(x * 3), expected)
    layer.frozen = True
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() == 0
    layer.weight.data.mul_(5)
    layer.normalize_()
    torch.testing.assert_close(layer.weight.norm(dim=1), torch.ones(3))


def test_swav_prototypes_frozen_first_then_trained_and_kept_unit_norm():
    torch.manual_seed(0)
    method = SwAV(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, **SWAV_SMALL, freeze_prototypes=0.2)
    assert method.family is Family.CLUSTERING
    pretext = method.pretext(Modality.IMAGE)
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-2)
    prototypes = method.prototypes.weight

    def step(progress: float) -> None:
        out = method.loss(pretext(fixed_batch(n=8), _gen(0)))
        assert out.embeddings.shape == (8, method.encoder.dim)
        assert 0 < out.metrics["prototypes_used"] <= 1
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_step_end(progress)

    torch.testing.assert_close(prototypes.norm(dim=1), torch.ones(16))
    start, projector = prototypes.detach().clone(), method.projector[0].weight.detach().clone()
    step(0.1)  # frozen: weight decay may shrink them, normalisation undoes it
    torch.testing.assert_close(prototypes, start)
    assert not torch.allclose(method.projector[0].weight, projector)
    step(0.3)  # 0.1 < 0.2: this step still frozen; on_step_end(0.3) releases them
    torch.testing.assert_close(prototypes, start)
    step(0.4)
    assert not torch.allclose(prototypes, start, atol=1e-4)
    torch.testing.assert_close(prototypes.norm(dim=1), torch.ones(16))


def test_swav_codes_are_sinkhorn_of_the_two_global_crops(monkeypatch):
    """Codes come from Sinkhorn (with the method's epsilon / iterations) on the scores of the globals
    only, and every crop predicts the codes of the other crops."""
    torch.manual_seed(0)
    method = SwAV(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, **SWAV_SMALL,
                  epsilon=0.1, sinkhorn_iterations=5)
    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=8), _gen(0))
    calls = []

    def spy(scores, epsilon, iterations):
        calls.append((scores.detach().clone(), epsilon, iterations))
        return sinkhorn(scores, epsilon, iterations)

    monkeypatch.setattr(swav_mod, "sinkhorn", spy)
    loss = method.loss(batch).loss
    with torch.no_grad():  # BatchNorm in training mode: the same batch gives the same scores
        globals_, locals_ = split_crops(batch)
        h = embed_crops(method.encoder, globals_ + locals_)
        scores = method.prototypes(method.projector(h)).chunk(4)
    assert [(e, i) for _, e, i in calls] == [(0.1, 5), (0.1, 5)]
    for (seen, _, _), expected in zip(calls, scores[:2]):
        torch.testing.assert_close(seen, expected)
    codes = [sinkhorn(s, 0.1, 5) for s in scores[:2]]
    torch.testing.assert_close(loss, swav_loss(scores, codes, 0.1))


def test_swav_learns():
    assert_method_learns("swav", "tiny_cnn", SWAV_SMALL, 0.3)
