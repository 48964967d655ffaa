"""Each method really learns its pretext task; BYOL's EMA teacher; method / registry errors."""

from __future__ import annotations

import pytest
import torch

from selfsup.encoders import build_encoder
from selfsup.errors import SelfSupError
from selfsup.methods.byol import BYOL
from selfsup.methods.mae import MAE
from selfsup.methods.simclr import SimCLR
from selfsup.registry import get_method, list_methods

from selfsup.losses import negative_cosine
from selfsup.types import Modality

from method_checks import (
    SIZE,
    assert_beats_random_init,
    assert_ema_step,
    assert_method_learns,
    assert_not_collapsed,
    fixed_batch,
    image_task,
    param_distance,
    rankme,
    similarity_accuracy,
    spread,
)

# name, encoder, hparams (narrower crops where 16 px crops would destroy the content), margin, probe gain.
# MAE: pixel reconstruction does not make mean-pooled ViT features better for the similarity probe in
# seconds. Measured on the toy task (vit_micro, seeds 0-1): 0.63-0.72 at random init, 0.46-0.54 after 10
# steps, 0.32-0.37 after 40 (the MAE paper, too, finds its features weak without fine-tuning). Its test
# asserts what is measurable: the reconstruction loss on held-out images falls and nothing collapses.
CASES = [
    ("simclr", "tiny_cnn", {"crop_min_scale": 0.5}, 0.1, 0.15),
    ("byol", "tiny_cnn", {"crop_min_scale": 0.5}, 1.0, 0.15),
    ("rotation", "tiny_cnn", {"min_crop_scale": 0.8}, 0.5, 0.15),
    ("mae", "vit_micro", {}, 0.3, None),
]


@pytest.mark.parametrize(("name", "encoder_name", "hparams", "margin", "probe_gain"), CASES, ids=[c[0] for c in CASES])
def test_method_learns_without_collapse_and_beats_random_init(name, encoder_name, hparams, margin, probe_gain):
    assert_method_learns(name, encoder_name, hparams, margin, probe_gain=probe_gain)


def test_collapse_detector_fires_on_collapsed_embeddings():
    g = torch.Generator().manual_seed(0)
    healthy = torch.randn(40, 32, generator=g)
    s, r = assert_not_collapsed(healthy)
    assert s > 0.8 and r > 20  # isotropic: spread ~1, RankMe near min(N, D)
    constant = torch.randn(1, 32, generator=g).expand(40, 32)
    assert spread(constant) < 1e-6 and rankme(constant) < 1.01
    with pytest.raises(AssertionError, match="collapsed, spread"):
        assert_not_collapsed(constant)
    # a constant vector plus tiny noise is still one direction
    with pytest.raises(AssertionError, match="collapsed"):
        assert_not_collapsed(constant + 1e-4 * torch.randn(40, 32, generator=g))
    # a line through the origin (rank one, both signs): spread passes, RankMe catches it
    line = torch.randn(40, 1, generator=g) * torch.randn(1, 32, generator=g)
    assert spread(line) > 0.5
    with pytest.raises(AssertionError, match="collapsed, RankMe"):
        assert_not_collapsed(line)
    with pytest.raises(AssertionError, match="non-finite"):
        assert_not_collapsed(torch.full((4, 3), float("nan")))


def test_collapse_detector_and_probe_fire_on_a_collapsed_encoder():
    """A real tiny_cnn with every weight zeroed maps every image to one vector: the checks the method
    tests use must fail on it, while the same encoder at random init passes the collapse check."""
    torch.manual_seed(0)
    encoder = build_encoder({"name": "tiny_cnn", "image_size": SIZE})
    task = image_task()
    assert_not_collapsed(task.features(encoder)[1])
    random_init = task.accuracy(encoder)
    with torch.no_grad():
        for p in encoder.parameters():
            p.zero_()
    collapsed = task.features(encoder)[1]
    with pytest.raises(AssertionError, match="collapsed"):
        assert_not_collapsed(collapsed)
    assert task.accuracy(encoder) == pytest.approx(1 / 3)  # every test image gets the same class
    with pytest.raises(AssertionError, match="random init"):
        assert_beats_random_init("collapsed", random_init, task.accuracy(encoder), 0.15)


def test_similarity_probe_is_the_mean_cosine_to_each_class():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.1], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 1])
    test = torch.tensor([[1.0, 0.2], [-1.0, 0.1], [0.0, 2.0]])
    # class means of the unit vectors: c0 ~ (1.0, 0.017), c1 = (-0.5, 0.5)
    assert similarity_accuracy(train, labels, test, torch.tensor([0, 1, 1])) == 1.0
    assert similarity_accuracy(train, labels, test, torch.tensor([1, 1, 1])) == pytest.approx(2 / 3)


def test_byol_pairs_each_views_prediction_with_the_other_views_target():
    """BYOL's loss is q(v1) vs target(v2) plus q(v2) vs target(v1). Pairing a view with its own target
    gives a different number, and shuffling view2 across the batch changes the cross-view loss (a same-view
    loss is a batch mean that no such shuffle changes; BatchNorm's batch statistics do not change either)."""
    torch.manual_seed(0)
    method = BYOL(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, proj_hidden_dim=64, proj_dim=32)
    with torch.no_grad():  # let online and target differ, as they do after the first steps
        for p in method.target_encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=8), torch.Generator().manual_seed(0))
    captured = {}
    method.predictor.register_forward_hook(lambda m, i, out: captured.__setitem__("p", out.detach()))
    method.target_projector.register_forward_hook(lambda m, i, out: captured.__setitem__("t", out.detach()))
    with torch.no_grad():
        loss = method.loss(batch).loss
        p1, p2 = captured["p"].chunk(2)
        t1, t2 = captured["t"].chunk(2)
        cross = negative_cosine(p1, t2) + negative_cosine(p2, t1)
        same = negative_cosine(p1, t1) + negative_cosine(p2, t2)
        torch.testing.assert_close(loss, cross)
        assert abs(float(loss - same)) > 0.05, (float(loss), float(same))

        shuffled = method.loss({"view1": batch["view1"], "view2": batch["view2"][torch.arange(7, -1, -1)]}).loss
        assert abs(float(shuffled - loss)) > 0.05, (float(loss), float(shuffled))
        swapped = method.loss({"view1": batch["view2"], "view2": batch["view1"]}).loss
        torch.testing.assert_close(swapped, loss, rtol=1e-4, atol=1e-5)  # symmetric in the two views


def test_byol_target_is_an_ema_of_the_online_network_without_gradients():
    torch.manual_seed(0)
    method = BYOL(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, tau_base=0.9)
    online = list(method.encoder.parameters()) + list(method.projector.parameters())
    target = list(method.target_encoder.parameters()) + list(method.target_projector.parameters())
    _, gap = assert_ema_step(method, online, target, momentum=0.9)  # momentum = tau_base at the start
    method.on_step_end(1.0)  # end of training: momentum 1, the target stays where it is
    assert method.momentum == pytest.approx(1.0)
    assert param_distance(target, online) == pytest.approx(0.9 * gap, rel=1e-3)


def test_mae_refuses_a_cnn_encoder():
    with pytest.raises(SelfSupError, match="vit"):
        MAE(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE)


def test_method_hparam_typo_suggests_the_right_name(suggests):
    encoder = build_encoder({"name": "tiny_cnn", "image_size": SIZE})
    with pytest.raises(SelfSupError, match="temprature") as info:
        SimCLR(encoder, SIZE, temprature=0.1)
    assert suggests(str(info.value), "temperature"), str(info.value)
    assert SimCLR(encoder, SIZE, temperature=0.1).hp.temperature == 0.1


def test_registry_lists_and_rejects_with_suggestions(suggests):
    names = {info.name for info in list_methods("image")}
    assert {"simclr", "byol", "rotation", "mae"} <= names
    assert get_method("byol").cls is BYOL

    with pytest.raises(SelfSupError, match="unknown method 'simclrr'") as info:
        get_method("simclrr")
    assert suggests(str(info.value), "simclr"), str(info.value)

    with pytest.raises(SelfSupError) as info:
        get_method("simclr", "text")
    message = str(info.value)
    assert "does not work on text data" in message
    assert "supports: audio, image" in message
    fitting = [i.name for i in list_methods("text")]
    assert f"Methods for text: {', '.join(fitting) or 'none yet'}" in message
