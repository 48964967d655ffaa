"""The `selfsup` command end to end on tiny real image folders: pretrain, evaluate, methods,
embed, export, and the one-line errors (exit code 2, no traceback)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import selfsup
from selfsup.modalities.image.readers import find_images, load_unlabeled
from selfsup.evaluation import extract_features
from selfsup.pretext.image_eval import eval_transform

from cli_checks import assert_one_line_error, assert_run_trained, run_cli
from method_checks import assert_not_collapsed

SIZE = 16
N_TRAIN = 48
PRETRAIN = ["--epochs", "1", "--batch-size", "16", "--image-size", str(SIZE), "--no-progress"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, write_images):
    """A labeled train/test pair and a simclr run pretrained on the train images by the CLI."""
    root = tmp_path_factory.mktemp("cli")
    train = write_images(root / "train", per_class=16, seed=1)
    test = write_images(root / "test", per_class=6, seed=2)
    run = root / "run"
    code, out, err = run_cli(["pretrain", train, "--method", "simclr", "--out", run, *PRETRAIN])
    assert code == 0, err
    assert f"run folder: {run}" in out
    return {"root": root, "train": train, "test": test, "run": run}


def test_pretrain_creates_a_run(workspace):
    run = workspace["run"]
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == N_TRAIN // 16
    assert_run_trained(run)  # finite losses, weights moved from the run's own start
    images = load_unlabeled(workspace["train"], SIZE, progress=False).images
    assert_not_collapsed(extract_features(selfsup.load(run), images, eval_transform(SIZE)), "the run's encoder")


def test_evaluate_writes_json_and_plot(workspace):
    run, out_json = workspace["run"], workspace["root"] / "eval" / "results.json"
    code, out, err = run_cli([
        "evaluate", run, "--train", workspace["train"], "--test", workspace["test"],
        "--protocol", "knn,linear,finetune", "--label-fractions", "0.1,1.0", "--baseline", "scratch",
        "--json", out_json, "--finetune-steps", "5",
    ])
    assert code == 0, err
    payload = json.loads(out_json.read_text())
    assert set(payload) == {"results"}
    results = payload["results"]
    keys = {"protocol", "label_fraction", "n_labels", "encoder", "metric", "value"}
    assert all(set(item) == keys for item in results)
    cells = [(r["protocol"], r["label_fraction"], r["encoder"]) for r in results]
    expected = {(p, f, e) for p in ("knn", "linear", "finetune") for f in (0.1, 1.0) for e in ("pretrained", "scratch")}
    assert sorted(cells) == sorted(expected)  # exactly one row each
    for r in results:
        assert r["metric"] == "accuracy" and 0.0 <= r["value"] <= 1.0
        # class-balanced subsets: 10 % of 16 per class rounds to 2, so 3 x 2 labels; 100 % is all 48
        assert r["n_labels"] == (6 if r["label_fraction"] == 0.1 else N_TRAIN)
    # the three-class stripes/blob task is easy: kNN on all labels beats chance (1/3) by far
    knn_full = [r["value"] for r in results if r["protocol"] == "knn" and r["label_fraction"] == 1.0]
    assert min(knn_full) > 0.5

    plot = run / "plots" / "label_efficiency.png"
    assert plot.is_file()
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > 100
    assert "pretrained" in out and "scratch" in out  # the table


def test_methods_json_lists_the_builtin_methods():
    code, out, err = run_cli(["methods", "--json"])
    assert code == 0, err
    infos = json.loads(out)
    by_name = {i["name"]: i for i in infos}
    assert {"simclr", "byol", "rotation", "mae"} <= set(by_name)
    assert all(set(i) == {"name", "family", "modalities", "paper"} for i in infos)
    assert by_name["simclr"]["family"] == "contrastive"
    assert by_name["mae"]["family"] == "generative"
    assert by_name["byol"]["modalities"] == ["image"]
    assert "Chen" in by_name["simclr"]["paper"]

    code, out, _ = run_cli(["methods", "--modality", "text", "--json"])
    assert code == 0
    assert "simclr" not in {i["name"] for i in json.loads(out)}

    code, out, _ = run_cli(["methods"])
    assert code == 0 and "rotation" in out and "transformation" in out


def test_embed_to_npy_matches_the_run_encoder(workspace, tmp_path):
    target = tmp_path / "emb" / "x.npy"
    code, out, err = run_cli(["embed", workspace["run"], workspace["train"], "--out", target])
    assert code == 0, err
    array = np.load(target)
    encoder = selfsup.load(workspace["run"])
    assert array.shape == (N_TRAIN, encoder.dim) and array.dtype == np.float32
    assert np.isfinite(array).all()
    images = load_unlabeled(workspace["train"], SIZE, progress=False).images
    expected = extract_features(encoder, images, eval_transform(SIZE))
    assert torch.allclose(torch.from_numpy(array), expected, atol=1e-5)  # rows in sorted path order


def test_embed_to_parquet_has_paths(workspace, tmp_path):
    target = tmp_path / "x.parquet"
    code, _, err = run_cli(["embed", workspace["run"], workspace["train"], "--out", target])
    assert code == 0, err
    table = pq.read_table(target)
    assert "path" in table.column_names and table.num_rows == N_TRAIN
    assert table.column("path").to_pylist() == [str(p) for p in find_images(workspace["train"])]
    first = np.asarray(table.column("embedding")[0].as_py(), dtype=np.float32)
    assert first.shape == (selfsup.load(workspace["run"]).dim,)


def test_export_safetensors_round_trip(workspace, tmp_path):
    export_dir = tmp_path / "export"
    code, out, err = run_cli(["export", workspace["run"], "--format", "safetensors", "--out", export_dir])
    assert code == 0, err
    assert (export_dir / "model.safetensors").is_file() and (export_dir / "selfsup.json").is_file()
    assert not list(export_dir.glob("*.tmp"))
    meta = json.loads((export_dir / "selfsup.json").read_text())
    assert meta["method"] == "simclr" and meta["input_size"] == SIZE and meta["encoder"]["name"] == "tiny_cnn"

    from_run, from_export = selfsup.load(workspace["run"]), selfsup.load(export_dir)
    images = load_unlabeled(workspace["test"], SIZE, progress=False).images
    a = extract_features(from_run, images, eval_transform(SIZE))
    b = extract_features(from_export, images, eval_transform(SIZE))
    assert torch.allclose(a, b, atol=1e-6)
    # and it is the trained encoder, not a fresh one
    torch.manual_seed(0)
    fresh = selfsup.encoders.build_encoder(from_run.config)
    assert not torch.allclose(a, extract_features(fresh, images, eval_transform(SIZE)), atol=1e-3)


def test_unknown_method_suggests_the_closest(workspace, tmp_path, suggests):
    out = tmp_path / "r"
    code, _, err = run_cli(["pretrain", workspace["train"], "--method", "simclrr", "--out", out, *PRETRAIN])
    line = assert_one_line_error(code, err, "unknown method 'simclrr'")
    assert suggests(line, "simclr"), line
    assert not out.exists()


def test_missing_data_folder(tmp_path):
    out = tmp_path / "r"
    code, _, err = run_cli(["pretrain", tmp_path / "no_such_dir", "--out", out, *PRETRAIN])
    assert_one_line_error(code, err, "no_such_dir", "no such file or folder")
    assert not out.exists()


def test_misspelled_setting_suggests_the_right_key(workspace, tmp_path, suggests):
    code, _, err = run_cli(["pretrain", workspace["train"], "--out", tmp_path / "r", "--set", "optim.lrr=1", *PRETRAIN])
    line = assert_one_line_error(code, err, "optim.lrr")
    assert suggests(line, "optim.lr"), line


def test_method_that_does_not_fit_the_modality(workspace, tmp_path):
    code, _, err = run_cli(["pretrain", workspace["train"], "--method", "simclr", "--out", tmp_path / "r",
                            "--set", "data.modality=text", *PRETRAIN])
    assert_one_line_error(code, err, "'simclr' does not work on text data")


def test_pretrain_on_a_run_of_another_method(workspace):
    run = workspace["run"]
    before = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    code, _, err = run_cli(["pretrain", workspace["train"], "--method", "byol", "--out", run, *PRETRAIN])
    assert_one_line_error(code, err, str(run), "made by method 'simclr', not 'byol'")
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before


def test_resuming_with_fewer_epochs_than_trained_is_one_line(workspace, tmp_path):
    run = tmp_path / "run"
    args = ["pretrain", workspace["train"], "--method", "simclr", "--out", run, *PRETRAIN]
    assert run_cli([*args, "--epochs", "2"])[0] == 0
    code, _, err = run_cli([*args, "--epochs", "1"])
    assert_one_line_error(code, err, str(run), "trained 2 epochs already", "--epochs above 2")


def test_evaluate_on_a_folder_that_is_not_a_run(workspace, tmp_path):
    code, _, err = run_cli(["evaluate", workspace["train"], "--train", workspace["train"], "--test", workspace["test"]])
    assert_one_line_error(code, err, "not a selfsup run folder")
    code, _, err = run_cli(["evaluate", tmp_path / "missing", "--train", workspace["train"], "--test", workspace["test"]])
    assert_one_line_error(code, err, "not a run folder or an export folder")


def test_api_names_stay_callable_after_every_submodule_is_imported():
    """A submodule named like an API function (selfsup/evaluate/, selfsup/export.py) would replace
    the function on the package as soon as it is imported."""
    import importlib
    import pkgutil

    import selfsup

    for module in pkgutil.walk_packages(selfsup.__path__, "selfsup."):
        importlib.import_module(module.name)
    for name in ("pretrain", "evaluate", "embed", "export", "load"):
        assert callable(getattr(selfsup, name)), name
