"""Shared checks for method tests: a fixed toy batch and "this method learns its pretext task"."""

from __future__ import annotations

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
