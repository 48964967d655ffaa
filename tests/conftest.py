"""Shared fixtures: tiny real image folders (PNG files written with PIL) for the end-to-end tests.

Three visually distinct synthetic classes at 16 px:
- ``hstripes``: horizontal stripes,
- ``vstripes``: vertical stripes,
- ``blob``: a bright square on a dark background,
each with a random colour tint and jittered phase/position so no two files are identical.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# The models under test are tiny (16 px images): intra-op threading buys nothing and, on a
# shared 2-core machine, OpenMP threads spinning against other processes made steps 3-10x
# slower. One thread keeps the suite fast and its timings steady.
torch.set_num_threads(1)


def did_you_mean(message: str, name: str) -> bool:
    """Whether an error message offers ``name`` in its 'did you mean' hint (any capitalisation/format)."""
    found = re.search(r"did you mean\b(.*)", message, flags=re.IGNORECASE)
    return bool(found) and re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", found.group(1)) is not None


CLASSES = ("hstripes", "vstripes", "blob")
SIZE = 16


def make_pattern(kind: str, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One uint8 [size, size, 3] image of class ``kind``."""
    y, x = np.mgrid[0:size, 0:size]
    period = 4
    phase = int(rng.integers(period))
    if kind == "hstripes":
        mask = ((y + phase) // (period // 2)) % 2 == 0
    elif kind == "vstripes":
        mask = ((x + phase) // (period // 2)) % 2 == 0
    elif kind == "blob":
        side = size // 2
        top, left = rng.integers(0, size - side + 1, size=2)
        mask = (y >= top) & (y < top + side) & (x >= left) & (x < left + side)
    else:  # pragma: no cover - test helper misuse
        raise ValueError(kind)
    colour = rng.uniform(120, 255, size=3)
    background = rng.uniform(0, 60, size=3)
    image = np.where(mask[..., None], colour, background)
    image = image + rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_class_folder(root: Path, per_class: int, seed: int, classes=CLASSES, nested: bool = True) -> Path:
    """``root/<class>/[deeper/]NNN.png``: every third file of a class goes two levels deeper."""
    rng = np.random.default_rng(seed)
    for kind in classes:
        for i in range(per_class):
            folder = root / kind
            if nested and i % 3 == 2:
                folder = folder / "deeper" / "still"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(make_pattern(kind, rng)).save(folder / f"{kind}_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """48 PNGs (16 per class, 3 classes) in class subfolders, some nested two levels deeper."""
    return write_class_folder(tmp_path / "images", per_class=16, seed=0)


@pytest.fixture
def labeled_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A labeled train folder (3 x 16 images) and test folder (3 x 6 images), same class names."""
    train = write_class_folder(tmp_path / "train", per_class=16, seed=1)
    test = write_class_folder(tmp_path / "test", per_class=6, seed=2)
    return train, test


@pytest.fixture(scope="session")
def write_images():
    """The folder writer itself, for module-scoped fixtures: ``write_images(root, per_class, seed)``."""
    return write_class_folder


@pytest.fixture(scope="session")
def suggests():
    """``suggests(message, name)``: whether an error message's 'did you mean' hint offers ``name``."""
    return did_you_mean


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test, and Hugging Face runs offline (``--init`` and ``distill``
    tests: checkpoints resolve from local folders and the local cache only). Not autouse: the multi-process tests
    connect over localhost."""
    import socket

    def refuse(self, address):
        raise AssertionError(f"network connection attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def cache_model(folder, repo_id: str, hub, monkeypatch) -> None:
    """Put the model ``folder`` into a Hugging Face cache at ``hub`` as ``repo_id`` (the layout ``hf download``
    writes: ``models--ORG--NAME/snapshots/REV`` + ``refs/main``) and point huggingface_hub at that cache."""
    import shutil

    import huggingface_hub.constants

    repo = hub / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))


def damaged_copies(folder, tmp_path):
    """Two broken copies of the checkpoint ``folder``: ``reshaped`` (its config.json edited after saving:
    intermediate_size 48, so saved weights no longer fit) and ``unweighted`` (model.safetensors removed)."""
    import json
    import shutil

    reshaped, unweighted = tmp_path / "reshaped", tmp_path / "unweighted"
    shutil.copytree(folder, reshaped)
    config = json.loads((reshaped / "config.json").read_text())
    (reshaped / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))
    shutil.copytree(folder, unweighted)
    (unweighted / "model.safetensors").unlink()
    return reshaped, unweighted
