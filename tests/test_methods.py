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
from selfsup.types import LossOutput, Modality

SIZE = 16


def fixed_batch(n: int = 12, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """uint8 [n, 3, size, size]: a tinted top-to-bottom gradient plus a bright square near the top
    left. Images differ (tint, square position, noise) and have a clear 'up', so every pretext task
    (instance discrimination, rotation, reconstruction) has something to learn."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, size).view(1, 1, size, 1)
    tint = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.4
    images = tint * (1 - rows).expand(n, 3, size, size) * 0.6
    for i in range(n):
        r, c = torch.randint(0, size // 2 - 3, (2,), generator=g).tolist()
        images[i, :, r : r + 4, c : c + 4] = 1.0
    images = images + 0.05 * torch.randn(images.shape, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


# name, encoder, hparams (narrower crops where 16 px crops would destroy the content), margin
CASES = [
    ("simclr", "tiny_cnn", {"crop_min_scale": 0.5}, 0.1),
    ("byol", "tiny_cnn", {"crop_min_scale": 0.5}, 1.0),
    ("rotation", "tiny_cnn", {"min_crop_scale": 0.8}, 0.5),
    ("mae", "vit_micro", {}, 0.3),
]


@pytest.mark.parametrize(("name", "encoder_name", "hparams", "margin"), CASES, ids=[c[0] for c in CASES])
def test_method_loss_falls_on_a_fixed_batch(name, encoder_name, hparams, margin):
    torch.manual_seed(0)
    encoder = build_encoder({"name": encoder_name, "image_size": SIZE})
    method = get_method(name, Modality.IMAGE).cls(encoder, SIZE, **hparams)
    pretext = method.pretext(Modality.IMAGE)
    images = fixed_batch()
    # the same views before and after training measure the change without augmentation noise
    probe = pretext(images, torch.Generator().manual_seed(1234))
    with torch.no_grad():
        before = method.loss(probe).loss.item()

    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    steps, losses = 10, []
    for step in range(steps):
        out = method.loss(pretext(images, generator))  # views re-sampled every step
        assert isinstance(out, LossOutput)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        assert out.embeddings is not None and out.embeddings.shape == (images.shape[0], encoder.dim)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_step_end((step + 1) / steps)
        losses.append(out.loss.item())
    with torch.no_grad():
        after = method.loss(probe).loss.item()

    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first, f"{name}: training loss did not fall: {losses}"
    assert after < before - margin, f"{name}: loss on fixed views {before:.3f} -> {after:.3f} (want a drop > {margin})"


def test_byol_target_is_an_ema_of_the_online_network_without_gradients():
    torch.manual_seed(0)
    method = BYOL(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE, tau_base=0.9)
    online = list(method.encoder.parameters()) + list(method.projector.parameters())
    target = list(method.target_encoder.parameters()) + list(method.target_projector.parameters())
    assert len(online) == len(target)
    assert all(not p.requires_grad for p in target)

    def distance() -> float:
        return sum(float((t - o).detach().pow(2).sum()) for t, o in zip(target, online)) ** 0.5

    assert distance() == 0.0  # the teacher starts as a copy of the student

    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=8), torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    out = method.loss(batch)
    optimizer.zero_grad()
    out.loss.backward()
    assert all(p.grad is None for p in target), "the BYOL target must receive no gradient"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.encoder.parameters())
    optimizer.step()

    gap = distance()
    assert gap > 0  # the online network moved, the target did not
    snapshot = [t.detach().clone() for t in target]
    method.on_step_end(0.0)  # momentum = tau_base = 0.9 at the start of training
    assert method.momentum == pytest.approx(0.9)
    moved = sum(float((t - s).abs().sum()) for t, s in zip(target, snapshot))
    assert moved > 0, "on_step_end did not change the target"
    # target <- 0.9 target + 0.1 online: the gap shrinks by exactly the momentum, and stays open
    assert distance() == pytest.approx(0.9 * gap, rel=1e-3)
    assert distance() > 0

    method.on_step_end(1.0)  # end of training: momentum 1, the target stays where it is
    assert method.momentum == pytest.approx(1.0)
    assert distance() == pytest.approx(0.9 * gap, rel=1e-3)


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
    assert "supports: image" in message
    fitting = [i.name for i in list_methods("text")]
    assert f"Methods for text: {', '.join(fitting) or 'none yet'}" in message
