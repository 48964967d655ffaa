"""SimSiam, Barlow Twins and VICReg: losses against loop references, their DDP behaviour on a
simulated two-process group, and the three methods."""

from __future__ import annotations

import math

import pytest
import torch

import selfsup.losses.redundancy as redundancy_mod
from selfsup.distributed import all_reduce_sum
from selfsup.encoders import build_encoder
from selfsup.losses import barlow_twins, negative_cosine, vicreg, vicreg_terms
from selfsup.methods.barlow_twins import BarlowTwins
from selfsup.methods.simsiam import SimSiam
from selfsup.methods.vicreg import VICReg
from selfsup.types import Modality

from fake_dist import FakeProcessGroup
from method_checks import SIZE, assert_method_learns, fixed_batch


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- slow references


def _ref_standardize(z: torch.Tensor, eps: float) -> list[list[float]]:
    """Per-dimension (mean, biased var) standardisation, element by element."""
    n, d = z.shape
    out = [[0.0] * d for _ in range(n)]
    for j in range(d):
        col = [float(z[b, j]) for b in range(n)]
        mean = sum(col) / n
        var = sum((x - mean) ** 2 for x in col) / n
        for b in range(n):
            out[b][j] = (col[b] - mean) / math.sqrt(var + eps)
    return out


def _ref_barlow_twins(z1, z2, lam, eps=1e-5) -> float:
    n, d = z1.shape
    a, b = _ref_standardize(z1, eps), _ref_standardize(z2, eps)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[k][i] * b[k][j] for k in range(n)) / n
            loss += (1 - c_ij) ** 2 if i == j else lam * c_ij**2
    return loss


def _ref_vicreg_terms(z1, z2, gamma=1.0, eps=1e-4) -> tuple[float, float, float]:
    n, d = z1.shape
    invariance = sum(float(z1[b, j] - z2[b, j]) ** 2 for b in range(n) for j in range(d)) / (n * d)

    def stats(z):
        means = [sum(float(z[b, j]) for b in range(n)) / n for j in range(d)]
        cov = [[sum((float(z[b, i]) - means[i]) * (float(z[b, j]) - means[j]) for b in range(n)) / (n - 1)
                for j in range(d)] for i in range(d)]
        var_term = sum(max(0.0, gamma - math.sqrt(cov[j][j] + eps)) for j in range(d)) / d
        cov_term = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
        return var_term, cov_term

    (v1, c1), (v2, c2) = stats(z1), stats(z2)
    return invariance, (v1 + v2) / 2, c1 + c2


def _close(actual: torch.Tensor, expected: float, tol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=tol, atol=tol)


# ---------------------------------------------------------------- DDP on a simulated process group


def _loss_and_grads(loss_fn, z1: torch.Tensor, z2: torch.Tensor):
    z1, z2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = loss_fn(z1, z2)
    loss.backward()
    return loss.detach(), z1.grad, z2.grad


def _ddp_equals_one_process_on_the_whole_batch(monkeypatch, loss_fn, z1, z2, world: int = 2):
    """Each fake process gets a shard; DDP averages parameter gradients over processes, so the
    gradient a process sends back for its rows, divided by ``world``, must equal the one-process
    gradient of the whole-batch loss for those rows. Returns the per-rank losses and the full loss."""
    full, g1, g2 = _loss_and_grads(loss_fn, z1, z2)
    group = FakeProcessGroup(world)
    group.patch(monkeypatch, redundancy_mod)
    shards = list(zip(z1.chunk(world), z2.chunk(world)))
    results = group.run(lambda a, b: _loss_and_grads(loss_fn, a, b), shards)
    for (_, r1, r2), e1, e2 in zip(results, g1.chunk(world), g2.chunk(world)):
        torch.testing.assert_close(r1 / world, e1, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(r2 / world, e2, rtol=1e-4, atol=1e-6)
    return [loss for loss, _, _ in results], full


def test_all_reduce_sum_is_the_identity_in_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    y = all_reduce_sum(x)
    assert y is x


# ---------------------------------------------------------------- SimSiam's D


def test_negative_cosine_simsiam_form_matches_loop_reference_and_stops_gradient():
    g = _gen(1)
    p, z = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g) * 3
    expected = -sum(float((p[b] @ z[b]) / (p[b].norm() * z[b].norm())) for b in range(5)) / 5
    p.requires_grad_(True)
    loss = negative_cosine(p, z, squared_distance=False)
    _close(loss, expected)
    # the two forms are the same objective up to an affine map: BYOL = 2 + 2 D
    torch.testing.assert_close(negative_cosine(p, z), 2 + 2 * loss)
    _close(negative_cosine(p, 4 * p, squared_distance=False), -1.0)
    loss.backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


# ---------------------------------------------------------------- Barlow Twins


@pytest.mark.parametrize("lam", [5e-3, 0.5])
def test_barlow_twins_matches_loop_reference(lam):
    g = _gen(2)
    z1 = torch.randn(6, 5, generator=g) * 3 + 1
    z2 = torch.randn(6, 5, generator=g) + z1
    _close(barlow_twins(z1, z2, lambda_offdiag=lam), _ref_barlow_twins(z1, z2, lam))


def test_barlow_twins_identical_decorrelated_views_cost_nothing_and_scale_does_not_matter():
    # zero-mean, mutually orthogonal columns: the cross-correlation of a view with itself is the identity
    z = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    assert barlow_twins(z, z) < 1e-8
    # per-dimension standardisation: an affine change of any dimension changes nothing
    g = _gen(3)
    z1, z2 = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    scaled = z2 * torch.tensor([10.0, 0.1, 3.0, 1.0]) + 5
    torch.testing.assert_close(barlow_twins(z1, scaled), barlow_twins(z1, z2), rtol=1e-4, atol=1e-4)
    # correlated dimensions are penalised off the diagonal only
    redundant = torch.cat([z1[:, :1]] * 4, dim=1)
    assert barlow_twins(redundant, redundant, lambda_offdiag=0.0) < 1e-3
    assert barlow_twins(redundant, redundant, lambda_offdiag=1.0) > 11.9  # 12 off-diagonal entries of ~1


def test_barlow_twins_under_ddp_is_the_global_batch_loss(monkeypatch):
    """Global statistics and a summed C over the global batch (the official code), with gradients."""
    g = _gen(4)
    z1 = torch.randn(8, 5, generator=g) * 2 + 1
    z2 = z1 + 0.5 * torch.randn(8, 5, generator=g)
    local_losses, full = _ddp_equals_one_process_on_the_whole_batch(monkeypatch, barlow_twins, z1, z2)
    for loss in local_losses:
        torch.testing.assert_close(loss, full)
    _close(full, _ref_barlow_twins(z1, z2, 5e-3))

    # gather=False: each process standardises and correlates its own shard only
    group = FakeProcessGroup(2)
    group.patch(monkeypatch, redundancy_mod)
    shards = list(zip(z1.chunk(2), z2.chunk(2)))
    local = group.run(lambda a, b: barlow_twins(a, b, gather=False), shards)
    for loss, (a, b) in zip(local, shards):
        _close(loss, _ref_barlow_twins(a, b, 5e-3))
    assert not torch.isclose(local[0], full)


# ---------------------------------------------------------------- VICReg


def test_vicreg_terms_match_loop_reference_and_weights():
    g = _gen(5)
    z1 = torch.randn(7, 4, generator=g) * torch.tensor([0.3, 2.0, 0.5, 1.5])
    z2 = z1 + 0.3 * torch.randn(7, 4, generator=g)
    terms = vicreg_terms(z1, z2)
    for actual, expected in zip(terms, _ref_vicreg_terms(z1, z2)):
        _close(actual, expected)
    assert terms.variance > 0 and terms.covariance > 0  # some dimensions have std < 1
    inv, var, cov = _ref_vicreg_terms(z1, z2, gamma=2.0, eps=1e-2)
    _close(vicreg(z1, z2, invariance_weight=3.0, variance_weight=5.0, covariance_weight=7.0, gamma=2.0, eps=1e-2),
           3 * inv + 5 * var + 7 * cov)
    _close(vicreg(z1, z2), 25 * terms.invariance.item() + 25 * terms.variance.item() + terms.covariance.item())


def test_vicreg_variance_term_zero_when_spread_positive_when_collapsed():
    g = _gen(6)
    spread = torch.randn(64, 8, generator=g)
    spread = (spread - spread.mean(0)) / spread.std(0) * 1.5  # every dimension has std 1.5 >= gamma
    assert vicreg_terms(spread, spread).variance == 0
    collapsed = torch.ones(64, 8) * 3.0  # every sample the same embedding
    _close(vicreg_terms(collapsed, collapsed).variance, 1.0 - math.sqrt(1e-4))
    # the gradient of the hinge pushes a collapsed batch apart (non-zero, finite thanks to eps)
    nearly = (collapsed + 1e-3 * torch.randn(64, 8, generator=g)).requires_grad_(True)
    vicreg_terms(nearly, nearly.detach()).variance.backward()
    assert torch.isfinite(nearly.grad).all() and nearly.grad.abs().sum() > 0


def test_vicreg_under_ddp_gathers_for_variance_and_covariance(monkeypatch):
    g = _gen(7)
    z1 = torch.randn(8, 5, generator=g) * torch.tensor([0.2, 0.5, 1.0, 2.0, 0.1])
    z1[:, 1] += z1[:, 0] * 3  # correlated dimensions: a non-zero covariance term
    z2 = z1 + 0.4 * torch.randn(8, 5, generator=g)
    full = vicreg_terms(z1, z2)
    local_losses, full_loss = _ddp_equals_one_process_on_the_whole_batch(monkeypatch, vicreg, z1, z2)

    group = FakeProcessGroup(2)
    group.patch(monkeypatch, redundancy_mod)
    shards = list(zip(z1.chunk(2), z2.chunk(2)))
    local_terms = group.run(vicreg_terms, shards)
    for terms in local_terms:  # variance and covariance: exactly the whole batch's
        torch.testing.assert_close(terms.variance, full.variance)
        torch.testing.assert_close(terms.covariance, full.covariance)
    # invariance is local; its mean over the processes is the global one
    torch.testing.assert_close(sum(t.invariance for t in local_terms) / 2, full.invariance)
    torch.testing.assert_close(sum(local_losses) / 2, full_loss)
    # gather=False: the variance and covariance of each shard alone
    shard_only = group.run(lambda a, b: vicreg_terms(a, b, gather=False), shards)
    for terms, (a, b) in zip(shard_only, shards):
        for actual, expected in zip(terms, _ref_vicreg_terms(a, b)):
            _close(actual, expected)


# ---------------------------------------------------------------- the methods

# Barlow Twins: with 12 images, C has rank <= 11, so a 2048-d projector is all off-diagonal noise;
# a 32-d one shows the learning clearly. SimSiam's negative cosine starts near 0 and its predictor
# must first learn to follow the projector, so it gets 20 steps.
CASES = [
    ("simsiam", "tiny_cnn", {"crop_min_scale": 0.5}, 0.1, 20),
    ("barlow_twins", "tiny_cnn", {"crop_min_scale": 0.5, "proj_hidden_dim": 512, "proj_dim": 32}, 10.0, 10),
    ("vicreg", "tiny_cnn", {"crop_min_scale": 0.5, "proj_hidden_dim": 1024, "proj_dim": 1024}, 2.0, 10),
]


@pytest.mark.parametrize(("name", "encoder_name", "hparams", "margin", "steps"), CASES, ids=[c[0] for c in CASES])
def test_method_loss_falls_on_a_fixed_batch(name, encoder_name, hparams, margin, steps):
    assert_method_learns(name, encoder_name, hparams, margin, steps=steps)


def _batch(method, seed: int = 0) -> dict[str, torch.Tensor]:
    return method.pretext(Modality.IMAGE)(fixed_batch(n=8), torch.Generator().manual_seed(seed))


def test_simsiam_stops_the_gradient_through_the_target_projection():
    """dL/dz must be exactly what reaches z through the predictor: nothing through sg(z)."""
    torch.manual_seed(0)
    method = SimSiam(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE,
                     proj_hidden_dim=64, proj_dim=32, pred_hidden_dim=8)
    assert method.predictor[0].out_features == 8 and method.projector[-1].num_features == 32  # bottleneck; BN output
    captured = {}
    method.projector.register_forward_hook(lambda m, i, out: captured.__setitem__("z", out))
    method.predictor.register_forward_hook(lambda m, i, out: captured.__setitem__("p", out))
    out = method.loss(_batch(method))
    z, p = captured["z"], captured["p"]
    grad_z, grad_p = torch.autograd.grad(out.loss, [z, p], retain_graph=True)
    through_predictor = torch.autograd.grad(p, z, grad_outputs=grad_p, retain_graph=True)[0]
    torch.testing.assert_close(grad_z, through_predictor, rtol=1e-5, atol=1e-8)
    assert grad_z.abs().sum() > 0
    # and without the stop-gradient, the same loss would send more: the check can fail
    z1, z2 = z.chunk(2)
    p1, p2 = p.chunk(2)
    cos = torch.nn.functional.cosine_similarity
    no_sg = -(cos(p1, z2).mean() + cos(p2, z1).mean()) / 2
    torch.testing.assert_close(no_sg, out.loss)
    assert not torch.allclose(torch.autograd.grad(no_sg, z)[0], grad_z, rtol=1e-3, atol=1e-6)
    assert 0 < out.metrics["z_std"] <= 1


def test_barlow_twins_is_symmetric_and_sends_gradients_through_both_views():
    torch.manual_seed(0)
    method = BarlowTwins(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE,
                         proj_hidden_dim=64, proj_dim=16)
    batch = {k: v.requires_grad_(True) for k, v in _batch(method).items()}
    out = method.loss(batch)
    swapped = method.loss({"view1": batch["view2"], "view2": batch["view1"]})
    torch.testing.assert_close(swapped.loss, out.loss, rtol=1e-4, atol=1e-4)  # C -> C^T
    out.loss.backward()
    assert batch["view1"].grad.abs().sum() > 0 and batch["view2"].grad.abs().sum() > 0  # no stop-gradient
    assert out.embeddings.shape == (8, method.encoder.dim) and not out.embeddings.requires_grad


def test_vicreg_logs_its_three_terms_and_combines_them_with_its_weights():
    torch.manual_seed(0)
    method = VICReg(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE,
                    proj_hidden_dim=64, proj_dim=16, invariance_weight=2.0, variance_weight=3.0,
                    covariance_weight=4.0)
    out = method.loss(_batch(method))
    m = out.metrics
    assert set(m) == {"invariance", "variance", "covariance"}
    assert all(not v.requires_grad and v.ndim == 0 for v in m.values())
    torch.testing.assert_close(out.loss.detach(), 2 * m["invariance"] + 3 * m["variance"] + 4 * m["covariance"])
    assert m["invariance"] > 0 and m["covariance"] > 0
