"""The two training data paths (train/data.py): the in-memory cache with batched on-device augmentation, and
streaming with per-sample augmentation in loader workers. They share the augmentation operations, so they must
give the same distribution of views; the streamed batches must be laid out as the batched pretext lays them out."""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_checks import assert_run_trained
from conftest import make_pattern

from selfsup import api
from selfsup.config import DataConfig, RunConfig, TrainerConfig
from selfsup.modalities.image.readers import ImageFileDataset, ImageTensorDataset, open_unlabeled
from selfsup.errors import SelfSupError
from selfsup.pretext.transforms import rotate_all
from selfsup.pretext.image_augment import AugmentParams, ImageAugment
from selfsup.pretext.image_ops import IMAGENET_MEAN, IMAGENET_STD
from selfsup.pretext.image_recipes import simclr_augment
from selfsup.train import data as pipeline
from selfsup.modalities.image.training import (
    cache_bytes,
    choose_cache,
    load_image_data,
    load_train_data,
    pretext_dataset,
    stack_copy_major,
    train_loader,
)
from selfsup.train.data import available_memory
from selfsup.train.run import build_method, resolve
from selfsup.types import Modality

N = 2000  # augmentation draws per path
AUG_SIZE = 32
Z = 4.5  # tolerance in standard errors: a false alarm has probability ~1e-5 per check
KS_ALPHA = 1e-4
RATES = ("flip", "jitter", "grayscale", "blur", "solarize")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
BATCH = 8
SIZE = 16
FAST = {"encoder": "tiny_cnn", "batch_size": BATCH, "image_size": SIZE, "progress_bar": False}


# --------------------------------------------------------------------------- distribution comparison


def param_values(p: AugmentParams) -> dict[str, torch.Tensor]:
    """Per-sample values of every random draw of an ImageAugment call."""
    w, h = p.boxes[:, 2] - p.boxes[:, 0], p.boxes[:, 3] - p.boxes[:, 1]
    values = {
        "crop_scale": p.area_frac,
        "crop_log_aspect": torch.log(w / h),
        "crop_centre_x": (p.boxes[:, 0] + p.boxes[:, 2]) / 2,
        "crop_centre_y": (p.boxes[:, 1] + p.boxes[:, 3]) / 2,
        "brightness": p.brightness,
        "contrast": p.contrast,
        "saturation": p.saturation,
        "hue": p.hue,
    }
    values.update({name: getattr(p, name).double() for name in RATES})
    return values


def pixel_values(views: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-view pixel statistics of normalised float views [n, 3, S, S]: brightness, contrast, colourfulness."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    rgb = views * std + mean
    return {
        "pixel_mean": rgb.mean(dim=(1, 2, 3)),
        "pixel_contrast": rgb.mean(dim=1).flatten(1).std(dim=1),
        "pixel_colour": rgb.std(dim=1).mean(dim=(1, 2)),
    }


def ecdf(sample: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    return torch.searchsorted(sample.sort().values, at, right=True).double() / len(sample)


def mismatches(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Statistics on which two samples of draws disagree beyond their sampling error.

    Means (and rates) against Z standard errors; for continuous values also the CDFs at a's quantiles, each
    against Z binomial standard errors, and the two-sample Kolmogorov-Smirnov distance against its
    ``KS_ALPHA`` critical value.
    """
    found = []
    for name in a:
        x, y = a[name].double(), b[name].double()
        n, m = len(x), len(y)
        se = math.sqrt(x.var().item() / n + y.var().item() / m)
        if abs(x.mean().item() - y.mean().item()) > Z * se + 1e-12:
            found.append(f"{name} mean")
        if name in RATES:
            continue
        at = torch.quantile(x, torch.tensor(QUANTILES, dtype=x.dtype))
        fa, fb = ecdf(x, at), ecdf(y, at)
        if ((fa - fb).abs() > Z * torch.sqrt(fa * (1 - fa) * (1 / n + 1 / m)) + 1e-12).any():
            found.append(f"{name} quantiles")
        pooled = torch.cat([x, y])
        ks = (ecdf(x, pooled) - ecdf(y, pooled)).abs().max().item()
        if ks > math.sqrt(-math.log(KS_ALPHA / 2) / 2) * math.sqrt((n + m) / (n * m)):
            found.append(f"{name} distribution")
    return found


def source_images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` distinct pattern images [n, 3, AUG_SIZE, AUG_SIZE] (stripes and blobs in random colours)."""
    rng = np.random.default_rng(seed)
    kinds = ("hstripes", "vstripes", "blob")
    images = np.stack([make_pattern(kinds[i % 3], rng, size=AUG_SIZE) for i in range(n)])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def two_paths() -> dict[str, dict[str, torch.Tensor]]:
    """simclr_augment(32) on the same N images: as one batch, and as N batches of one (the streaming path)."""
    images = source_images(N)
    augment = simclr_augment(AUG_SIZE)
    torch.manual_seed(0)
    batched_views = augment(images)
    batched = {**param_values(augment.last_params), **pixel_values(batched_views)}
    torch.manual_seed(1)
    views, params = [], []
    for i in range(N):
        views.append(augment(images[i : i + 1]))
        params.append(param_values(augment.last_params))
    per_sample = {name: torch.cat([p[name] for p in params]) for name in params[0]}
    per_sample.update(pixel_values(torch.cat(views)))
    return {"batched": batched, "per_sample": per_sample, "images": images}


def test_batched_and_per_sample_augmentation_have_the_same_distribution(two_paths):
    batched, per_sample = two_paths["batched"], two_paths["per_sample"]
    assert mismatches(batched, per_sample) == []
    # the configuration is what is being sampled (a sanity check on the statistics themselves)
    assert per_sample["flip"].mean().item() == pytest.approx(0.5, abs=0.05)
    assert per_sample["jitter"].mean().item() == pytest.approx(0.8, abs=0.05)
    assert per_sample["grayscale"].mean().item() == pytest.approx(0.2, abs=0.05)
    assert per_sample["blur"].sum() == 0 and per_sample["solarize"].sum() == 0  # no blur at 32 px
    assert 0.07 <= per_sample["crop_scale"].min() and per_sample["crop_scale"].max() <= 1.0  # w, h are rounded


@pytest.mark.parametrize(("change", "detected"), [
    ({"crop_scale": (0.2, 1.0)}, "crop_scale"),
    ({"crop_ratio": (0.6, 1.6)}, "crop_log_aspect"),
    ({"flip_p": 0.35}, "flip"),
    ({"jitter_p": 0.65}, "jitter"),
    ({"brightness": 0.55}, "brightness"),
    ({"saturation": 0.55}, "saturation"),
    ({"hue": 0.15}, "hue"),
    ({"grayscale_p": 0.32}, "grayscale"),
])
def test_a_different_configuration_is_detected(two_paths, change, detected):
    """The comparison can fail: draws from a slightly different configuration disagree on that statistic."""
    changed = ImageAugment(replace(simclr_augment(AUG_SIZE).config, **change))
    torch.manual_seed(2)
    drawn = param_values(changed.sample_params(N, image_size=AUG_SIZE))
    found = mismatches({name: two_paths["per_sample"][name] for name in drawn}, drawn)
    assert any(f.startswith(detected) for f in found), found


def test_pixel_statistics_detect_a_stronger_colour_jitter(two_paths):
    torch.manual_seed(3)
    stronger = pixel_values(simclr_augment(AUG_SIZE, strength=1.0)(two_paths["images"]))
    found = mismatches({k: v for k, v in two_paths["batched"].items() if k.startswith("pixel")}, stronger)
    assert found, "a jitter twice as strong went unnoticed"


# --------------------------------------------------------------------------- collate layout


def test_copy_major_collate_reproduces_the_batched_layout():
    images = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)

    def pretext(x: torch.Tensor, generator=None) -> dict[str, torch.Tensor]:
        rotated, labels = rotate_all(x)
        return {"images": rotated, "labels": labels, "original": x}

    per_sample = stack_copy_major([pretext(images[i : i + 1]) for i in range(5)])
    batched = pretext(images)
    assert per_sample.keys() == batched.keys()
    for key in batched:
        assert torch.equal(per_sample[key], batched[key]), key
    assert per_sample["labels"].tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    with pytest.raises(ValueError, match="leading copy dimension"):
        stack_copy_major([{"scalar": torch.tensor(1.0)}])


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def folder(tmp_path_factory, write_images) -> Path:
    """24 PNGs (3 steps of 8)."""
    return write_images(tmp_path_factory.mktemp("pipeline") / "images", per_class=8, seed=0)


def read_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_pretraining_writes_a_checkpoint_and_finite_losses(folder, tmp_path, workers):
    run = api.pretrain(folder, "simclr", tmp_path / "run", cache="stream", epochs=1, num_workers=workers,
                       overrides={"trainer.log_every": 1}, **FAST)
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 24 // BATCH
    rows = read_rows(run)
    losses = [float(r["loss_step"]) for r in rows if r["loss_step"]]
    assert len(losses) == 24 // BATCH and all(math.isfinite(x) and x > 0 for x in losses)
    assert [float(r["samples_per_s"]) > 0 for r in rows if r.get("samples_per_s")] == [True] * (24 // BATCH - 1)
    assert_run_trained(run)  # and the encoder's weights left the run's start


def method_and_data(folder: Path, name: str, encoder: str):
    config = resolve(RunConfig(data=DataConfig(path=str(folder), image_size=SIZE), method={"name": name},
                               encoder={"name": encoder}))
    sized = load_image_data(replace(config.data, cache="stream"))  # opens the files without decoding them
    return build_method(config, sized), config.data


@pytest.mark.parametrize(("name", "encoder"), [("simclr", "tiny_cnn"), ("rotation", "tiny_cnn"), ("mae", "vit_micro")])
def test_memory_and_stream_batches_have_the_same_layout(folder, name, encoder):
    method, data = method_and_data(folder, name, encoder)
    memory = load_train_data(replace(data, cache="memory"), progress=False)
    stream = load_train_data(replace(data, cache="stream"))
    assert isinstance(memory, ImageTensorDataset) and isinstance(stream, ImageFileDataset)
    assert all(torch.equal(memory[i], stream[i]) for i in range(len(stream)))  # the same decoded image

    pretext = method.pretext(Modality.IMAGE)
    trainer = TrainerConfig(num_workers=0)
    from_memory = pretext(next(iter(train_loader(memory, pretext, BATCH, trainer))), None)
    from_stream = next(iter(train_loader(stream, pretext, BATCH, trainer)))
    assert isinstance(from_stream, dict) and from_stream.keys() == from_memory.keys()
    for key in from_memory:
        assert from_stream[key].shape == from_memory[key].shape, key
        assert from_stream[key].dtype == from_memory[key].dtype, key
    if name == "rotation":
        expected = [k for k in range(4) for _ in range(BATCH)]  # [0]*B + [1]*B + [2]*B + [3]*B
        assert from_memory["labels"].tolist() == expected and from_stream["labels"].tolist() == expected
        views = from_stream["images"]
        for k in range(4):  # row k*B + i is sample i rotated by k quarter turns
            assert torch.equal(views[k * BATCH : (k + 1) * BATCH], torch.rot90(views[:BATCH], k, dims=(-2, -1)))
    method.loss(from_stream).loss.backward()  # the method trains on the streamed layout


# --------------------------------------------------------------------------- unreadable files


@pytest.fixture(scope="module")
def folder_with_corrupt_file(tmp_path_factory, write_images) -> tuple[Path, Path]:
    """23 good PNGs + one corrupt file, sorted last (24 files: every index is visited in an epoch of 3 x 8)."""
    root = write_images(tmp_path_factory.mktemp("corrupt") / "images", per_class=8, seed=1)
    (root / "blob" / "blob_000.png").unlink()
    broken = root / "zz_broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return root, broken


def test_stream_skips_a_corrupt_file_with_a_warning_and_a_count(folder_with_corrupt_file, caplog):
    root, broken = folder_with_corrupt_file
    method, data = method_and_data(root, "simclr", "tiny_cnn")
    stream = load_train_data(replace(data, cache="stream"))
    loader = train_loader(stream, method.pretext(Modality.IMAGE), BATCH, TrainerConfig(num_workers=2))
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        for epoch in range(2):
            batches = list(loader)
            # skipped, not replaced: the batch that drew it is one image short, every other image is seen once
            assert sorted(b["view1"].shape[0] for b in batches) == [BATCH - 1, BATCH, BATCH]
            assert all(torch.isfinite(b["view1"]).all() for b in batches)
    assert list(loader.skipped) == [str(broken)]
    warnings = [r.getMessage() for r in caplog.records]
    assert sum(w.startswith(f"skipping unreadable image {broken} (cannot decode") for w in warnings) == 1  # once
    assert warnings.count("skipped 1 unreadable image(s) of 24") == 1  # counted after the epoch that met it


def test_stream_strict_stops_with_one_line_naming_the_file(folder_with_corrupt_file, tmp_path):
    root, broken = folder_with_corrupt_file
    with pytest.raises(SelfSupError) as info:
        api.pretrain(root, "simclr", tmp_path / "run", cache="stream", strict=True, epochs=1, **FAST)
    message = str(info.value)
    assert str(broken) in message and "--strict" in message and "\n" not in message


def test_open_unlabeled_checks_files_before_training(tmp_path):
    bad = [tmp_path / f"bad{i}.png" for i in range(3)]
    for path in bad:
        path.write_bytes(b"not an image")
    with pytest.raises(SelfSupError, match="none of the 3 image files could be decoded"):
        open_unlabeled(bad, SIZE)
    with pytest.raises(SelfSupError, match="bad0.png.*--strict"):
        open_unlabeled(bad, SIZE, strict=True)


def test_unreadable_files_are_skipped_and_named(tmp_path):
    """A worker cannot drop an index: a corrupt file yields no sample and names itself and why."""
    good = tmp_path / "good.png"
    from PIL import Image

    Image.fromarray(make_pattern("blob", np.random.default_rng(0))).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    images = open_unlabeled([bad, good], SIZE)
    dataset = pretext_dataset(images, lambda x, g: {"x": x})
    assert dataset[0] == (None, [(str(bad), "cannot decode image (UnidentifiedImageError)")])
    sample, skipped = dataset[1]
    assert torch.equal(sample["x"][0], images[1]) and skipped == []


# --------------------------------------------------------------------------- the cache decision


def test_auto_caches_a_small_folder_in_memory_and_streams_when_memory_is_short(folder, monkeypatch, caplog):
    n = 24
    assert available_memory() > 0
    assert choose_cache("auto", n, SIZE) == "memory"
    assert choose_cache("auto", n, SIZE, memory_budget=cache_bytes(n, SIZE) + 1) == "memory"
    assert choose_cache("auto", n, SIZE, memory_budget=cache_bytes(n, SIZE)) == "stream"
    assert choose_cache("memory", n, SIZE, memory_budget=1) == "memory"  # an explicit choice is kept
    assert choose_cache("stream", n, SIZE) == "stream"

    data = DataConfig(path=str(folder), image_size=SIZE, cache="auto")
    assert isinstance(load_train_data(data, progress=False), ImageTensorDataset)
    with caplog.at_level(logging.INFO, logger="selfsup"):
        assert isinstance(load_train_data(data, memory_budget=1000), ImageFileDataset)
    assert any("streaming" in r.getMessage() and "24 images" in r.getMessage() for r in caplog.records)

    monkeypatch.setattr(pipeline, "available_memory", lambda: 4 * cache_bytes(n, SIZE))  # budget: 25 % of it
    assert choose_cache("auto", n, SIZE) == "stream"
    monkeypatch.setattr(pipeline, "available_memory", lambda: 5 * cache_bytes(n, SIZE))
    assert choose_cache("auto", n, SIZE) == "memory"


def test_an_unknown_cache_mode_is_a_one_line_error(folder, tmp_path):
    with pytest.raises(SelfSupError) as info:
        api.pretrain(folder, "simclr", tmp_path / "run", cache="ram", epochs=1, **FAST)
    message = str(info.value)
    assert "data.cache must be one of auto, memory, stream; got 'ram'" in message and "\n" not in message
    assert not (tmp_path / "run").exists()
