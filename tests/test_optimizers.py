"""Optimiser choice and defaults per method, parameter groups (decay, lr multipliers), and LARS steps."""

from __future__ import annotations

import pytest
import timm.optim
import torch

from selfsup.config import OptimConfig
from selfsup.encoders import build_encoder
from selfsup.errors import SelfSupError
from selfsup.methods.byol import BYOL
from selfsup.methods.simclr import SimCLR
from selfsup.train.optimizers import build_optimizer, choose_optimizer, default_lr_and_decay, param_groups

from method_checks import SIZE


def _byol() -> BYOL:
    torch.manual_seed(0)
    return BYOL(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, proj_hidden_dim=32, proj_dim=16)


def test_each_method_gets_its_recipes_optimizer_unless_the_user_names_one(suggests):
    assert choose_optimizer(BYOL, None) == "lars" and choose_optimizer(SimCLR, None) == "adamw"
    assert choose_optimizer(BYOL, "AdamW") == "adamw"
    with pytest.raises(SelfSupError, match="optim.optimizer='lamb' is not supported"):
        choose_optimizer(SimCLR, "lamb")
    with pytest.raises(SelfSupError) as info:
        choose_optimizer(SimCLR, "adam")
    assert suggests(str(info.value), "adamw"), str(info.value)


def test_default_lr_scales_with_the_batch_and_follows_the_chosen_optimizer():
    lr, wd = default_lr_and_decay(BYOL, OptimConfig(optimizer="lars"), 512)
    assert lr == pytest.approx(2 * BYOL.optim_defaults["lr"]) and wd == BYOL.optim_defaults["weight_decay"]
    # AdamW on BYOL must not inherit LARS's lr of order 1
    lr, wd = default_lr_and_decay(BYOL, OptimConfig(optimizer="adamw"), 256)
    assert lr < 0.01
    lr, wd = default_lr_and_decay(BYOL, OptimConfig(optimizer="lars", lr=0.5, weight_decay=0.0), 512)
    assert (lr, wd) == (0.5, 0.0)


def test_groups_cover_each_trainable_parameter_once_with_decay_and_lr_scale():
    method = _byol()
    groups = param_groups(method, weight_decay=0.1)
    grouped = [p for g in groups for p in g["params"]]
    trainable = [p for p in method.parameters() if p.requires_grad]
    assert len(grouped) == len(trainable) and {id(p) for p in grouped} == {id(p) for p in trainable}
    assert not any(id(p) in {id(q) for q in grouped} for p in method.target_encoder.parameters())
    first = groups[0]
    assert first["lr_scale"] == 1.0 and first["decay"] and first["weight_decay"] == 0.1
    predictor = {id(p) for p in method.predictor.parameters()}
    for group in groups:
        assert group["decay"] == all(p.ndim > 1 for p in group["params"])
        assert group["weight_decay"] == (0.1 if group["decay"] else 0.0)
        in_predictor = {id(p) in predictor for p in group["params"]}
        assert len(in_predictor) == 1  # a group is all predictor or none of it
        assert group["lr_scale"] == (BYOL.lr_multipliers["predictor"] if in_predictor.pop() else 1.0)


def test_lars_adapts_weight_matrices_but_not_biases_and_norms():
    method = _byol()
    optimizer = build_optimizer("lars", param_groups(method, weight_decay=0.0), lr=1.0, momentum=0.0)
    assert isinstance(optimizer, timm.optim.Lars)
    params = [p for p in method.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.full_like(p, 1000.0)  # a huge gradient: only LARS's trust ratio keeps the step small
    before = [p.detach().clone() for p in params]
    optimizer.step()
    predictor = {id(p) for p in method.predictor.parameters()}
    for p, old in zip(params, before):
        step = (p.detach() - old).norm() / old.norm().clamp_min(1e-12)
        scale = BYOL.lr_multipliers["predictor"] if id(p) in predictor else 1.0
        if p.ndim > 1:  # relative step = lr x lr_scale x trust coefficient 1e-3, whatever the gradient's size
            assert step.item() == pytest.approx(1e-3 * scale, rel=1e-3)
        else:  # plain SGD step of lr x gradient
            assert (old - p.detach()).abs().max().item() == pytest.approx(1000.0 * scale, rel=1e-4)


def test_a_pretrained_encoder_takes_smaller_steps_than_the_new_heads():
    """--init: the encoder's groups get 0.1 x lr by default (optim.init_lr_scale overrides), BYOL's predictor keeps
    its 10x, the projection head its 1x; an encoder at random initialisation is not scaled."""
    from selfsup.train.pretrained import PRETRAINED_LR_SCALE, encoder_lr_scale

    assert encoder_lr_scale(OptimConfig(), {"name": "hf_text", "source": "/m"}) == PRETRAINED_LR_SCALE
    assert encoder_lr_scale(OptimConfig(), {"name": "tiny_cnn", "init_from": "/run"}) == PRETRAINED_LR_SCALE
    assert encoder_lr_scale(OptimConfig(), {"name": "hf_text", "source": "/m", "pretrained": False}) == 1.0
    assert encoder_lr_scale(OptimConfig(), {"name": "tiny_cnn"}) == 1.0
    assert encoder_lr_scale(OptimConfig(init_lr_scale=0.5), {"name": "tiny_cnn", "init_from": "/run"}) == 0.5
    assert encoder_lr_scale(OptimConfig(init_lr_scale=0.5), {"name": "tiny_cnn"}) == 1.0

    method = _byol()
    groups = param_groups(method, 1e-4, encoder_scale=0.1)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert {scale[id(p)] for p in method.encoder.parameters()} == {0.1}
    assert {scale[id(p)] for p in method.predictor.parameters()} == {10.0}
    assert {scale[id(p)] for p in method.projector.parameters()} == {1.0}
    optimizer = build_optimizer("adamw", groups, 1e-3, 0.9)
    encoder = {id(p) for p in method.encoder.parameters()}
    encoder_lrs = [g["lr"] for g in optimizer.param_groups if any(id(p) in encoder for p in g["params"])]
    assert encoder_lrs and all(lr == pytest.approx(1e-4) for lr in encoder_lrs)
