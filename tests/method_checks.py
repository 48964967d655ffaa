"""Shared checks for method tests: a fixed toy batch, "this method learns its pretext task", "its
representation is not collapsed", "it beats its own random initialisation on a toy task", and "its EMA
teacher follows the student"."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import CLASSES, make_pattern

from selfsup.encoders import build_encoder
from selfsup.pretext.image_ops import normalize
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


# ---------------------------------------------------------------- collapse and "beats random init"

# Floors for :func:`assert_not_collapsed`. A collapsed representation (every input -> one vector) has
# spread 0 and RankMe 1; the tiny encoders of the method tests measure spread 0.08-0.6 and RankMe 2-35.
SPREAD_FLOOR = 0.03
RANKME_FLOOR = 1.5


def spread(embeddings: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalised embeddings, times sqrt(D): ~1 for embeddings spread
    evenly over the sphere, 0 when every input maps to the same direction (collapse)."""
    unit = F.normalize(embeddings.detach().double(), dim=1)
    return float(unit.std(dim=0).mean()) * math.sqrt(unit.shape[1])


def rankme(embeddings: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023, "RankMe: Assessing the Downstream Performance of Pretrained
    Self-Supervised Representations by Their Rank", Eq. 1): exp of the entropy of the singular values
    normalised to sum 1 (plus ``eps``). 1 for a rank-one (collapsed) matrix, up to min(N, D)."""
    s = torch.linalg.svdvals(embeddings.detach().double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def assert_not_collapsed(embeddings: torch.Tensor, what: str = "embeddings",
                         spread_floor: float = SPREAD_FLOOR, rankme_floor: float = RANKME_FLOOR) -> tuple[float, float]:
    """Assert that ``embeddings`` [N, D] are finite and neither collapsed to one direction (:func:`spread`
    above ``spread_floor``) nor to a line (:func:`rankme` above ``rankme_floor``). Returns both numbers."""
    assert embeddings.ndim == 2 and embeddings.shape[0] >= 2, embeddings.shape
    assert torch.isfinite(embeddings).all(), f"{what}: non-finite embeddings"
    s, r = spread(embeddings), rankme(embeddings)
    assert s > spread_floor, f"{what}: collapsed, spread {s:.4f} <= {spread_floor} (RankMe {r:.2f})"
    assert r > rankme_floor, f"{what}: collapsed, RankMe {r:.2f} <= {rankme_floor} (spread {s:.4f})"
    return s, r


def similarity_accuracy(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
                        test_labels: torch.Tensor) -> float:
    """A cheap, parameter-free probe: each test embedding goes to the class whose training embeddings it is
    most similar to on average (mean cosine similarity, i.e. the dot product with the class mean of the
    unit vectors). Returns the accuracy."""
    train, test = F.normalize(train.detach().double(), dim=1), F.normalize(test.detach().double(), dim=1)
    classes = sorted(set(train_labels.tolist()))
    prototypes = torch.stack([train[train_labels == c].mean(0) for c in classes])
    predicted = torch.tensor(classes)[(test @ prototypes.T).argmax(1)]
    return float((predicted == test_labels).double().mean())


def eval_embed(encoder: torch.nn.Module, inputs) -> torch.Tensor:
    """``encoder.embed(inputs)`` in eval mode without gradients (the encoder's mode is restored)."""
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            return encoder.embed(inputs)
    finally:
        encoder.train(was_training)


class ToyTask:
    """A labelled toy task ``(train inputs, labels, test inputs, labels)``; ``prepare`` turns its raw inputs
    into what an encoder takes. :meth:`accuracy` is :func:`similarity_accuracy`."""

    def __init__(self, train, train_labels: torch.Tensor, test, test_labels: torch.Tensor,
                 prepare: Callable[[object], object]) -> None:
        self.train, self.train_labels, self.test, self.test_labels = train, train_labels, test, test_labels
        self.prepare = prepare

    def features(self, encoder: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode embeddings of the train and test inputs (the encoder's mode is restored)."""
        return (eval_embed(encoder, self.prepare(self.train)).float(),
                eval_embed(encoder, self.prepare(self.test)).float())

    def accuracy(self, encoder: torch.nn.Module) -> float:
        train, test = self.features(encoder)
        return similarity_accuracy(train, self.train_labels, test, self.test_labels)


def assert_beats_random_init(what: str, random_init: float, trained: float, margin: float) -> None:
    """The trained encoder's probe accuracy beats the same encoder's at its random initialisation."""
    assert trained >= random_init + margin, (
        f"{what}: toy-task accuracy {trained:.3f} after training vs {random_init:.3f} at random init "
        f"(want a gain >= {margin})")


def toy_images(per_class: int, seed: int, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [3 * per_class, 3, size, size] images of the three conftest classes (horizontal stripes,
    vertical stripes, a blob; random colours) and their labels 0-2, classes interleaved."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(per_class):
        for label, kind in enumerate(CLASSES):
            images.append(make_pattern(kind, rng, size))
            labels.append(label)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


def image_task(per_class: int = 20) -> ToyTask:
    """The image toy task: 20 + 20 images per class, embedded after the training normalisation. A random
    tiny_cnn scores 0.37-0.52 (chance 0.33): its pooled features follow colour more than shape. Measured
    after 10 steps on :func:`fixed_batch` (seeds 0-1): every CNN method 0.73-0.92, a gain of 0.21-0.53."""
    train, train_labels = toy_images(per_class, seed=1)
    test, test_labels = toy_images(per_class, seed=2)
    return ToyTask(train, train_labels, test, test_labels, normalize)


def assert_method_learns(name: str, encoder_name: str, hparams: dict, margin: float, steps: int = 10,
                         probe_gain: float | None = 0.15) -> list[float]:
    """Train image method ``name`` for ``steps`` AdamW steps on :func:`fixed_batch` and assert that it learns
    and does not collapse:

    - the training loss falls, and the loss on one fixed set of views drops by more than ``margin``;
    - the encoder's embeddings of held-out toy images are not collapsed (:func:`assert_not_collapsed`);
    - probe accuracy on the toy task (:func:`image_task`) beats the same encoder at its random
      initialisation by ``probe_gain`` or more. Callers pass None only where that is not measurable in
      seconds, and say why; then the pretext loss on fixed views of 12 held-out images (another
      :func:`fixed_batch`, never trained on) must fall instead: the method beats its random init on its
      own pretext task.

    Returns the training losses."""
    torch.manual_seed(0)
    encoder = build_encoder({"name": encoder_name, "image_size": SIZE})
    method = get_method(name, Modality.IMAGE).cls(encoder, SIZE, **hparams)
    pretext = method.pretext(Modality.IMAGE)
    images = fixed_batch()
    task = image_task()
    random_init = task.accuracy(encoder)
    # the same views before and after training measure the change without augmentation noise
    probe = pretext(images, torch.Generator().manual_seed(1234))
    held_out = pretext(fixed_batch(seed=1), torch.Generator().manual_seed(4321))
    with torch.no_grad():
        before, held_out_before = method.loss(probe).loss.item(), method.loss(held_out).loss.item()

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
        after, held_out_after = method.loss(probe).loss.item(), method.loss(held_out).loss.item()

    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first, f"{name}: training loss did not fall: {losses}"
    assert after < before - margin, f"{name}: loss on fixed views {before:.3f} -> {after:.3f} (want a drop > {margin})"
    assert_not_collapsed(task.features(encoder)[1], f"{name} after {steps} steps")
    if probe_gain is not None:
        assert_beats_random_init(name, random_init, task.accuracy(encoder), probe_gain)
    else:
        assert held_out_after < held_out_before, (
            f"{name}: pretext loss on held-out images {held_out_before:.3f} -> {held_out_after:.3f} (want a drop)")
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
