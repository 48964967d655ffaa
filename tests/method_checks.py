"""Shared checks for method tests: a fixed toy batch, "this method learns its pretext task", and
"its EMA teacher follows the student"."""

from __future__ import annotations

import pytest
import torch

from selfsup.encoders import build_encoder
from selfsup.registry import get_method
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


def assert_method_learns(name: str, encoder_name: str, hparams: dict, margin: float, steps: int = 10) -> list[float]:
    """Train ``name`` for ``steps`` AdamW steps on :func:`fixed_batch`; assert the training loss falls and
    the loss on one fixed set of views drops by more than ``margin``. Returns the training losses."""
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
    losses = []
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
    return losses


def param_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Euclidean distance between two parameter lists, as one flat vector."""
    return sum(float((x - y).detach().pow(2).sum()) for x, y in zip(a, b)) ** 0.5


def assert_ema_step(method: torch.nn.Module, online: list[torch.Tensor], target: list[torch.Tensor],
                    momentum: float) -> tuple[LossOutput, float]:
    """One SGD step of ``method`` on :func:`fixed_batch`, then ``on_step_end(0.0)``; assert that the EMA
    ``target`` parameters start as a copy of ``online``, get no gradient, stay put while ``online`` moves,
    and then follow it with ``momentum``: target <- m target + (1 - m) online shrinks their distance by
    exactly m. Returns the loss output and the distance before the update."""
    assert len(online) == len(target) and all(not p.requires_grad for p in target)
    assert param_distance(target, online) == 0.0  # the teacher starts as a copy of the student
    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=8), torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    out = method.loss(batch)
    optimizer.zero_grad()
    out.loss.backward()
    assert all(p.grad is None for p in target), "the EMA target must receive no gradient"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.encoder.parameters())
    optimizer.step()

    gap = param_distance(target, online)
    assert gap > 0  # the online network moved, the target did not
    method.on_step_end(0.0)
    assert method.momentum == pytest.approx(momentum)
    assert param_distance(target, online) == pytest.approx(momentum * gap, rel=1e-3)
    return out, gap
