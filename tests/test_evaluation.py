"""Tests for selfsup.evaluation: subsets, kNN, linear probe, fine-tuning, label efficiency."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from selfsup.encoders.base import Encoder
from selfsup.evaluation import (
    EvalResult,
    class_balanced_subset,
    extract_features,
    finetune_accuracy,
    format_table,
    knn_accuracy,
    linear_probe_accuracy,
    plot_label_efficiency,
    run_label_efficiency,
    write_json,
)


class TinyMLP(Encoder):
    """Tokens = MLP output unsqueezed to [B, 1, D]."""

    def __init__(self, in_dim: int = 2, dim: int = 8) -> None:
        super().__init__()
        self.dim = dim
        self.config = {"in_dim": in_dim, "dim": dim}
        self.net = nn.Sequential(nn.Linear(in_dim, 16), nn.ReLU(), nn.Linear(16, dim))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs).unsqueeze(1)


def eval_tf(batch: torch.Tensor) -> torch.Tensor:
    return batch.float()


def train_tf(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    x = batch.float()
    return x + 0.05 * torch.randn(x.shape, generator=generator, device=x.device)


def blobs(n_per_class: int, num_classes: int = 2, dim: int = 2, sep: float = 6.0, seed: int = 0):
    """Well-separated Gaussian clusters, centres on the coordinate axes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(num_classes, dim)
    for c in range(num_classes):
        centres[c, c % dim] = sep * (1 if c < dim else -1)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = centres[labels] + 0.5 * torch.randn(labels.numel(), dim, generator=g)
    return x, labels


# --- subsets ---------------------------------------------------------------------------------


def test_class_balanced_subset_counts_and_determinism():
    labels = torch.tensor([0] * 10 + [1] * 4 + [2] * 1 + [3] * 25)
    idx = class_balanced_subset(labels, 0.2, seed=3)
    counts = torch.bincount(labels[idx], minlength=4).tolist()
    assert counts == [2, 1, 1, 5]  # round(2.0), max(1, round(0.8)), max(1, 0.2), round(5.0)
    assert torch.equal(idx, torch.sort(idx).values)
    assert idx.unique().numel() == idx.numel()
    assert torch.equal(idx, class_balanced_subset(labels, 0.2, seed=3))
    others = [class_balanced_subset(labels, 0.2, seed=s) for s in range(5)]
    assert any(not torch.equal(idx, o) for o in others)
    tiny = class_balanced_subset(labels, 0.01, seed=0)
    assert torch.bincount(labels[tiny], minlength=4).tolist() == [1, 1, 1, 1]
    assert torch.equal(class_balanced_subset(labels, 1.0, seed=0), torch.arange(labels.numel()))
    with pytest.raises(ValueError):
        class_balanced_subset(labels, 0.0, seed=0)


# --- features --------------------------------------------------------------------------------


def test_extract_features_shape_and_mode_restored():
    enc = TinyMLP()
    enc.train()
    x = torch.randn(7, 2)
    feats = extract_features(enc, x, eval_tf, batch_size=3)
    assert feats.shape == (7, 8) and feats.dtype == torch.float32
    assert enc.training
    assert torch.allclose(feats, enc.embed(x).detach(), atol=1e-6)


# --- kNN ---------------------------------------------------------------------------------------


def knn_reference(train_f, train_y, test_f, k, t, num_classes):
    train_n = train_f / train_f.norm(dim=1, keepdim=True)
    preds = []
    for q in test_f:
        q = q / q.norm()
        sims = [float(q @ row) for row in train_n]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        scores = [0.0] * num_classes
        for i in order:
            scores[int(train_y[i])] += float(torch.exp(torch.tensor(sims[i] / t)))
        preds.append(max(range(num_classes), key=lambda c: scores[c]))
    return torch.tensor(preds)


@pytest.mark.parametrize("k", [1, 5, 1000])
def test_knn_matches_reference(k):
    g = torch.Generator().manual_seed(k)
    train_f, test_f = torch.randn(40, 6, generator=g), torch.randn(23, 6, generator=g)
    train_y, test_y = torch.randint(0, 4, (40,), generator=g), torch.randint(0, 4, (23,), generator=g)
    ref = knn_reference(train_f, train_y, test_f, min(k, 40), 0.1, 4)
    expected = float((ref == test_y).float().mean())
    got = knn_accuracy(train_f, train_y, test_f, test_y, k=k, temperature=0.1, num_classes=4, chunk_size=5)
    assert got == pytest.approx(expected)


def test_knn_perfect_on_separated_clusters():
    x, y = blobs(30, num_classes=3, dim=3, sep=10.0)
    xt, yt = blobs(10, num_classes=3, dim=3, sep=10.0, seed=1)
    assert knn_accuracy(x, y, xt, yt, k=20) == 1.0


# --- linear probe ------------------------------------------------------------------------------


def test_linear_probe_separable_and_random():
    x, y = blobs(40, num_classes=4, dim=4)
    xt, yt = blobs(20, num_classes=4, dim=4, seed=1)
    assert linear_probe_accuracy(x, y, xt, yt) >= 0.95
    g = torch.Generator().manual_seed(0)
    xr, yr = torch.randn(200, 16, generator=g), torch.randint(0, 4, (200,), generator=g)
    xrt, yrt = torch.randn(400, 16, generator=g), torch.randint(0, 4, (400,), generator=g)
    assert abs(linear_probe_accuracy(xr, yr, xrt, yrt) - 0.25) < 0.1


def test_linear_probe_one_sample_per_class():
    x, y = blobs(1, num_classes=3, dim=3)
    xt, yt = blobs(10, num_classes=3, dim=3, seed=1)
    assert linear_probe_accuracy(x, y, xt, yt) >= 0.9


# --- fine-tuning ---------------------------------------------------------------------------------


def test_finetune_learns_and_leaves_encoder_untouched():
    torch.manual_seed(0)
    enc = TinyMLP()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    x, y = blobs(40, num_classes=2, sep=3.0)
    xt, yt = blobs(30, num_classes=2, sep=3.0, seed=1)
    acc = finetune_accuracy(enc, x, y, xt, yt, 2, train_tf, eval_tf, steps=60, batch_size=32, lr=1e-2)
    assert acc >= 0.9
    for k, v in enc.state_dict().items():
        assert torch.equal(v, before[k]), k
    # fewer samples than the batch: sampling with replacement still trains
    small = finetune_accuracy(enc, x[[0, 1, 40, 41]], y[[0, 1, 40, 41]], xt, yt, 2, train_tf, eval_tf,
                              steps=40, batch_size=16, lr=1e-2)
    assert small >= 0.8


# --- label efficiency ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results():
    torch.manual_seed(0)
    x, y = blobs(20, num_classes=3, dim=3)
    xt, yt = blobs(10, num_classes=3, dim=3, seed=1)
    encoders = {"pretrained": TinyMLP(3), "scratch": TinyMLP(3)}
    lines: list[str] = []
    out = run_label_efficiency(
        encoders, x, y, xt, yt, ["knn", "linear", "finetune"], [0.1, 0.5, 1.0],
        train_tf, eval_tf, knn_k=10, finetune_kwargs={"steps": 5, "batch_size": 8},
        progress=lines.append,
    )
    assert lines and all(isinstance(s, str) for s in lines)
    return out


def test_run_label_efficiency_results(results):
    assert len(results) == 2 * 3 * 3
    keys = {(r.encoder, r.protocol, r.label_fraction) for r in results}
    assert len(keys) == 18
    expected_n = {0.1: 6, 0.5: 30, 1.0: 60}  # 3 classes x max(1, round(f * 20))
    for r in results:
        assert r.n_labels == expected_n[r.label_fraction]
        assert r.metric == "accuracy"
        assert 0.0 <= r.value <= 1.0


def test_run_label_efficiency_unknown_protocol():
    x, y = blobs(2)
    with pytest.raises(ValueError, match="finetune"):
        run_label_efficiency({"scratch": TinyMLP()}, x, y, x, y, ["knn", "svm"], [1.0], train_tf, eval_tf)


def test_write_json_keys(results, tmp_path):
    path = tmp_path / "sub" / "results.json"
    write_json(results, path)
    data = json.loads(path.read_text())
    assert list(data) == ["results"] and len(data["results"]) == len(results)
    want = {"protocol", "label_fraction", "n_labels", "encoder", "metric", "value"}
    assert all(set(d) == want for d in data["results"])
    assert EvalResult(**data["results"][0]) == results[0]


def test_plot_is_png(results, tmp_path):
    path = tmp_path / "plots" / "label_efficiency.png"
    plot_label_efficiency(results, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_format_table_gain(results):
    table = format_table(results)
    header = table.splitlines()[0].split()
    assert header == ["protocol", "fraction", "n_labels", "pretrained", "scratch", "gain"]
    assert len(table.splitlines()) == 2 + 9
    r = EvalResult("knn", 0.5, 10, "pretrained", "accuracy", 0.8)
    s = EvalResult("knn", 0.5, 10, "scratch", "accuracy", 0.55)
    assert "+0.2500" in format_table([r, s])
    assert "gain" not in format_table([r])


def test_format_table_names_a_metric_other_than_accuracy():
    rows = [EvalResult("similarity", 0.0, 0, "pretrained", "spearman", 0.61),
            EvalResult("similarity", 0.0, 0, "tfidf", "spearman", 0.55)]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["protocol", "metric", "fraction", "n_labels", "pretrained", "tfidf"]
    assert lines[2].split()[:2] == ["similarity", "spearman"]
