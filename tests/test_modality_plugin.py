"""A fifth modality is one package plus its registration: a "vector" modality (rows of numbers in a .csv),
defined here, outside selfsup, with its own encoder, trains with the generic `simclr` it opts into, and
evaluates, embeds and exports through the same commands as the built-in modalities. Nothing in selfsup
names it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from cli_checks import global_step, run_cli
from selfsup.config import setting
from selfsup.encoders.base import Encoder
from selfsup.errors import SelfSupError
from selfsup.evaluation.downstream import Labeled
from selfsup.config import DataConfig
from selfsup.modalities import ModalityInfo, get_modality, modality_names, register_modality, unregister_modality
from selfsup.modalities.base import Modality
from selfsup.registry import get_method, list_methods, register_encoder, unregister_encoder
from selfsup.train.sources import TrainData

DIM, CENTRES = 8, 3


def read_rows(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """A .csv of numeric columns; a column named label (labeled sets) is split off."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".csv":
        raise SelfSupError(f"{path}: expected a .csv of numeric columns")
    header, *rows = [line.split(",") for line in path.read_text().splitlines() if line]
    labels = [row[header.index("label")] for row in rows] if "label" in header else []
    keep = [i for i, name in enumerate(header) if name != "label"]
    return torch.tensor([[float(row[i]) for i in keep] for row in rows]), labels


class MLPEncoder(Encoder):
    def __init__(self, num_features: int = DIM, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_features, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width))
        self.dim = width
        self.config = {"name": "vector_mlp", "num_features": num_features, "width": width}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)[:, None]  # one token


class VectorModality(Modality):
    def load_train_data(self, data, run_dir, progress=True):
        rows, _ = read_rows(data.path)

        def make_loader(pretext, batch_size, trainer, world_size):
            return DataLoader(rows, batch_size=batch_size, shuffle=True, drop_last=True)

        return TrainData(len(rows), rows.shape[1], {"num_features": rows.shape[1]}, make_loader,
                         pretext_in_loader=False, unit=self.info.unit)

    def input_size(self, data):
        return int(data["num_features"])

    def two_views(self, input_size, settings):
        def views(rows, generator=None):
            noise = lambda: rows + 0.3 * torch.randn(rows.shape, generator=generator)  # noqa: E731
            return {"view1": noise(), "view2": noise()}

        return views

    def read_labeled(self, loaded, path, classes, encoding):
        rows, names = read_rows(path)
        classes = classes or sorted(set(names))
        return Labeled(rows, torch.tensor([classes.index(n) for n in names]), classes)

    def eval_transforms(self, loaded):
        identity = lambda rows, generator=None: rows  # noqa: E731
        return identity, identity

    def embed(self, loaded, data, out, batch_size, device, strict=False, encoding="utf-8", text_field="text", options=None):
        from selfsup.artifacts import write_embeddings
        from selfsup.evaluation.features import extract_features

        rows, _ = read_rows(data)
        feats = extract_features(loaded.encoder, rows, lambda x: x, batch_size=batch_size, device=device)
        return {"embeddings": write_embeddings(feats, [str(i) for i in range(len(rows))], out)}


@dataclass
class VectorSettings:
    num_features: int = setting(DIM, low=1, high=100_000, help="numbers per row")


INFO = ModalityInfo(name="vector", unit="rows", data_help="vector: a .csv of numeric columns", default_method="simclr",
                    default_encoders={"any": "vector_mlp"}, implementation=f"{__name__}:VectorModality",
                    methods=("simclr",))


@pytest.fixture(autouse=True, scope="module")
def plugin():
    """The plug-in, registered as a user's package would register it, and unloaded after these tests."""
    register_encoder("vector_mlp", "a 2-layer MLP for rows of numbers (test plug-in)")(MLPEncoder)
    register_modality(INFO, VectorSettings)
    yield
    unregister_modality("vector")
    unregister_encoder("vector_mlp")
    assert "vector" not in modality_names() and "num_features" not in DataConfig.__dataclass_fields__


def write_rows(path: Path, n: int, seed: int, labeled: bool) -> Path:
    """Rows around one of three far-apart centres; the centre is the label."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, (CENTRES, DIM))
    which = rng.integers(0, CENTRES, n)
    rows = centres[which] + rng.normal(0, 0.5, (n, DIM))
    header = [f"x{i}" for i in range(DIM)] + (["label"] if labeled else [])
    lines = [",".join(header)] + [",".join([*(f"{v:.4f}" for v in row), *([f"c{k}"] if labeled else [])])
                                  for row, k in zip(rows, which)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_registry_lists_the_plugin_and_simclr_for_it():
    assert get_modality("vector").info is INFO
    assert DataConfig(modality="vector").num_features == DIM  # its data settings joined the data section
    assert "simclr" in [m.name for m in list_methods("vector")]
    assert get_method("simclr", "vector").name == "simclr"
    with pytest.raises(SelfSupError, match="does not work on vector data"):
        get_method("mae", "vector")


def test_a_plugin_modality_pretrains_evaluates_embeds_and_exports(tmp_path):
    data = write_rows(tmp_path / "rows.csv", 256, seed=0, labeled=False)
    train, test = write_rows(tmp_path / "train.csv", 60, 1, True), write_rows(tmp_path / "test.csv", 60, 2, True)
    run = tmp_path / "run"
    code, _, err = run_cli(["pretrain", data, "--modality", "vector", "--out", run, "--max-steps", "30",
                            "--batch-size", "64", "--no-progress", "--set", "optim.lr=0.01"])
    assert code == 0, err
    assert global_step(run) == 30
    code, _, err = run_cli(["evaluate", run, "--train", train, "--test", test, "--protocol", "knn,linear",
                            "--label-fractions", "1.0", "--json", tmp_path / "eval.json"])
    assert code == 0, err
    rows = json.loads((tmp_path / "eval.json").read_text())["results"]
    linear = {r["encoder"]: r["value"] for r in rows if r["protocol"] == "linear"}
    assert linear["pretrained"] > 0.9  # three well-separated clusters

    code, out, err = run_cli(["embed", run, test, "--out", tmp_path / "emb.npy"])
    assert code == 0, err
    embeddings = np.load(tmp_path / "emb.npy")
    assert embeddings.shape == (60, 32) and embeddings.std(0).mean() > 1e-3
    code, _, err = run_cli(["export", run, "--out", tmp_path / "export"])
    assert code == 0, err
    code, _, err = run_cli(["embed", tmp_path / "export", test, "--out", tmp_path / "again.npy"])
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "again.npy"), embeddings, rtol=1e-5, atol=1e-6)


def test_a_method_the_modality_lacks_gets_one_line(tmp_path):
    with pytest.raises(SelfSupError, match="vector data does not offer masked inputs"):
        get_modality("vector").masked_inputs(None, DIM, None)
