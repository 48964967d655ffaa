"""The image modality's classical baseline ``pixels`` (logistic regression on standardised raw pixels of 8 px
images): the tiny images themselves, what it learns from (only the label subset), and the rows it adds to
eval.json, the table and the plot of ``selfsup evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from selfsup.evaluation.downstream import Labeled
from selfsup.evaluation.label_efficiency import EvalResult, curves
from selfsup.modalities import get_modality
from selfsup.modalities.image.pixels import PIXELS_SIDE, tiny_pixels

from cli_checks import assert_one_line_error, run_cli

SIZE = 16


def pixels_accuracy(train_images, train_labels, test_images, test_labels, idx) -> float:
    """The ``pixels`` score of the image modality for training indices ``idx``."""
    train = Labeled(train_images, train_labels, ["a", "b"])
    test = Labeled(test_images, test_labels, ["a", "b"])
    return get_modality("image").baseline_scores("pixels", None, train, test, seed=0)(idx)


def test_tiny_pixels_are_block_means_and_small_images_stay_as_they_are():
    images = torch.randint(0, 256, (5, 3, SIZE, SIZE), dtype=torch.uint8)
    feats = tiny_pixels(images, batch_size=2)  # several chunks
    assert PIXELS_SIDE == 8 and feats.shape == (5, 3 * 8 * 8) and feats.dtype == torch.float32
    blocks = images.float().div(255).reshape(5, 3, 8, 2, 8, 2).mean((3, 5))  # antialiased: 2 x 2 block means
    torch.testing.assert_close(feats, blocks.flatten(1))
    small = torch.randint(0, 256, (2, 3, 6, 6), dtype=torch.uint8)
    torch.testing.assert_close(tiny_pixels(small), small.float().div(255).flatten(1))  # never upscaled
    assert tiny_pixels(images[:0]).shape == (0, 3 * 8 * 8)


def test_pixels_fit_only_the_label_subset():
    """Two clean examples, one per class, and 40 more with the labels swapped: fitted on the clean pair the
    baseline is right on (nearly) every test image, fitted on everything it is wrong on (nearly) every one."""
    gen = torch.Generator().manual_seed(0)

    def images(label: torch.Tensor) -> torch.Tensor:  # class 0 dark left half, class 1 dark right half
        x = torch.randint(100, 256, (len(label), 3, SIZE, SIZE), generator=gen)
        for i, y in enumerate(label.tolist()):
            x[i, :, :, slice(0, SIZE // 2) if y == 0 else slice(SIZE // 2, SIZE)] //= 4
        return x.to(torch.uint8)

    clean = torch.tensor([0, 1])
    rest = torch.randint(0, 2, (40,), generator=gen)
    train_images = torch.cat([images(clean), images(rest)])
    train_labels = torch.cat([clean, 1 - rest])  # all but the first two mislabeled
    test_labels = torch.arange(30) % 2
    test_images = images(test_labels)
    assert pixels_accuracy(train_images, train_labels, test_images, test_labels, torch.tensor([0, 1])) >= 0.95
    assert pixels_accuracy(train_images, train_labels, test_images, test_labels, torch.arange(42)) <= 0.1


def test_pixels_with_one_label_per_class_is_a_nearest_class_mean():
    """With one image per class the standardised logistic regression decides as the nearest of the two images,
    in the space standardised with those two images alone (the rest of the train split must not count)."""
    gen = torch.Generator().manual_seed(1)
    train_images = torch.randint(0, 256, (20, 3, SIZE, SIZE), generator=gen, dtype=torch.uint8)
    train_labels = torch.arange(20) % 2
    test_images = torch.randint(0, 256, (1000, 3, SIZE, SIZE), generator=gen, dtype=torch.uint8)
    test_labels = torch.randint(0, 2, (1000,), generator=gen)
    idx = torch.tensor([6, 11])  # labels 0 and 1
    feats, test = tiny_pixels(train_images[idx]).double(), tiny_pixels(test_images).double()
    mean, std = feats.mean(0), feats.std(0, unbiased=False)
    z, zt = (feats - mean) / std, (test - mean[None]) / std[None]
    nearest = torch.cdist(zt, z).argmin(1)  # index into idx = the label (0, 1)
    ncm = float((nearest == test_labels).double().mean())
    assert 0.3 < ncm < 0.7  # noise: a score that a wrong standardisation would change
    score = pixels_accuracy(train_images, train_labels, test_images, test_labels, idx)
    assert score == pytest.approx(ncm, abs=2 / 1000)  # at most two images on the boundary


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, write_images):
    """A tiny simclr run (2 steps) and ``selfsup evaluate --baseline scratch,pixels`` on hstripes vs blob:
    (exit code, stdout, stderr, eval.json results, run folder, workspace)."""
    root = tmp_path_factory.mktemp("pixels")
    classes = ("hstripes", "blob")
    train = write_images(root / "train", per_class=16, seed=1, classes=classes)
    test = write_images(root / "test", per_class=10, seed=2, classes=classes)
    run = root / "run"
    code, _, err = run_cli(["pretrain", train, "--method", "simclr", "--out", run, "--max-steps", "2",
                            "--batch-size", "16", "--image-size", SIZE, "--no-progress"])
    assert code == 0, err
    out_json = root / "eval.json"
    code, out, err = run_cli(["evaluate", run, "--train", train, "--test", test, "--protocol", "knn,linear",
                              "--label-fractions", "0.1,1.0", "--baseline", "scratch,pixels", "--json", out_json])
    results = json.loads(out_json.read_text())["results"] if code == 0 else []
    return code, out, err, results, run, root


def test_evaluate_adds_one_linear_pixels_row_per_fraction(evaluated):
    code, out, err, results, run, _ = evaluated
    assert code == 0, err
    cells = sorted((r["protocol"], r["label_fraction"], r["encoder"]) for r in results)
    expected = [(p, f, e) for p in ("knn", "linear") for f in (0.1, 1.0) for e in ("pretrained", "scratch")]
    assert cells == sorted(expected + [("linear", f, "pixels") for f in (0.1, 1.0)])
    n_labels = {(r["label_fraction"], r["encoder"]): r["n_labels"] for r in results}
    for f in (0.1, 1.0):  # the same class-balanced subsets as the encoders: 2 x 2 and 2 x 16
        assert n_labels[f, "pixels"] == n_labels[f, "pretrained"] == (4 if f == 0.1 else 32)
    pixels = {r["label_fraction"]: r["value"] for r in results if r["encoder"] == "pixels"}
    assert pixels[1.0] >= 0.9  # stripes (half the pixels bright) against one bright square: raw pixels separate them
    header = next(line for line in out.splitlines() if line.startswith("protocol")).split()
    assert header == ["protocol", "fraction", "n_labels", "pretrained", "scratch", "pixels", "gain"]
    linear_full = next(line for line in out.splitlines() if line.startswith("linear") and line.split()[1] == "1")
    assert f"{pixels[1.0]:.4f}" in linear_full.split()  # the table's pixels column
    assert (run / "plots" / "label_efficiency.png").is_file()
    labels = [style["label"] for _, _, style in curves([EvalResult(**r) for r in results])]
    assert "linear · pixels" in labels


def test_the_plot_draws_every_encoder_with_its_own_style():
    rows = [EvalResult(protocol, f, n, encoder, "accuracy", 0.5)
            for encoder in ("pretrained", "scratch", "pixels", "tfidf", "mfcc", "init", "teacher")
            for protocol in ("knn", "linear") for f, n in ((0.1, 10), (1.0, 100))]
    lines = curves(rows)
    assert len(lines) == 14 and all(xs == [10, 100] for xs, _, _ in lines)
    styles = {style["label"].split(" · ")[1]: (str(style["linestyle"]), style["marker"]) for _, _, style in lines}
    assert len(set(styles.values())) == 7  # no two encoders look alike
    assert styles["pretrained"][0] == "-" and styles["scratch"][0] == "--"


def test_pixels_on_a_text_run_or_tfidf_on_an_image_run_is_one_line(evaluated):
    *_, run, root = evaluated
    code, _, err = run_cli(["evaluate", run, "--train", root / "train", "--test", root / "test",
                            "--baseline", "tfidf"])
    assert_one_line_error(code, err, "--baseline 'tfidf'", "image", "pixels")
