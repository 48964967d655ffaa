"""Pretraining must learn something: SimCLR features beat the same network at its random init.

Toy task (16 px PNGs): the class is a texture orientation — horizontal stripes, vertical stripes
or a checkerboard (period 4, random phase) — and every image carries a strong nuisance: a random
overall brightness (x0.25 .. x1), a random pattern contrast and a slight random colour cast, plus
pixel noise. Random conv features are dominated by brightness; SimCLR's crops and colour jitter
make the views of one image differ in exactly those nuisances, so what survives pretraining is
the texture. (A full-range random colour was tried and rejected: colour is then a stable feature
of each image that instance discrimination keeps, and pretraining no longer helps.)

Measured while writing this test (SEED = 0..5, 36 steps): kNN accuracy of the pretrained encoder
0.88-0.99, of the random init 0.61-0.77; the gap was 0.16-0.28 on every seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

import selfsup
from selfsup import api
from selfsup.modalities.image.readers import load_labeled
from selfsup.encoders import build_encoder
from selfsup.evaluation import extract_features, knn_accuracy
from selfsup.pretext.image_eval import eval_transform

SIZE = 16
CLASSES = ("checker", "hstripes", "vstripes")
SEED = 0


def texture_image(kind: str, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    period, phase = 4, int(rng.integers(4))
    rows = ((y + phase) % period) < period / 2
    cols = ((x + phase) % period) < period / 2
    mask = {"hstripes": rows, "vstripes": cols, "checker": rows ^ cols}[kind]
    brightness = rng.uniform(0.25, 1.0) * 255  # the nuisance
    contrast = rng.uniform(0.35, 0.6)
    luminance = brightness * ((1 - contrast) + contrast * mask)
    colour_cast = 1 + rng.uniform(-0.15, 0.15, size=3)
    image = luminance[..., None] * colour_cast + rng.normal(0, 8, size=(SIZE, SIZE, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_textures(root: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(texture_image(kind, rng)).save(root / kind / f"{i:03d}.png")
    return root


def test_simclr_pretraining_beats_random_init_on_knn(tmp_path):
    train_dir = write_textures(tmp_path / "train", per_class=48, seed=SEED)
    test_dir = write_textures(tmp_path / "test", per_class=32, seed=SEED + 100)

    # 144 unlabeled images, batch 48: 3 steps per epoch, 12 epochs = 36 SimCLR steps
    run = api.pretrain(
        train_dir, "simclr", tmp_path / "run", encoder="tiny_cnn", epochs=12, batch_size=48, image_size=SIZE,
        seed=SEED, progress_bar=False,
        overrides={"optim.lr": 3e-3, "method.crop_min_scale": 0.5, "method.temperature": 0.2},
    )
    pretrained = selfsup.load(run)
    torch.manual_seed(SEED)  # the engine seeds with the run seed before building: this is its starting point
    random_init = build_encoder(pretrained.config)
    assert pretrained.config == random_init.config

    train = load_labeled(train_dir, SIZE, progress=False)
    test = load_labeled(test_dir, SIZE, classes=train.classes, progress=False)
    transform = eval_transform(SIZE)

    def knn(encoder) -> float:
        train_feats = extract_features(encoder, train.images, transform)
        test_feats = extract_features(encoder, test.images, transform)
        return knn_accuracy(train_feats, train.labels, test_feats, test.labels)

    pretrained_acc, random_acc = knn(pretrained), knn(random_init)
    assert pretrained_acc >= 0.8, f"pretrained kNN accuracy {pretrained_acc:.3f} (random init {random_acc:.3f})"
    assert pretrained_acc >= random_acc + 0.1, (
        f"pretraining did not beat random init clearly: {pretrained_acc:.3f} vs {random_acc:.3f}"
    )
