"""The `selfsup` command on audio, end to end on tiny generated recordings (8 kHz, so every read resamples to
16 kHz; some stereo, one FLAC): pretrain with every audio method (and resume), the memory and stream caches
with a corrupt file, evaluate on class folders and on a path,label table, embed, export (safetensors and
Hugging Face), and the one-line errors."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
import yaml

import selfsup
from selfsup.modalities.audio.readers import find_audio_files, unlabeled_waves
from selfsup.evaluation import extract_features
from selfsup.modalities.audio.modality import WaveBatch

from cli_checks import assert_one_line_error, assert_run_trained, global_step, run_cli

FILE_RATE = 8000  # the files' rate: every read resamples to RATE
RATE = 16000
CLASSES = ("high", "low")
SMALL = ["--set", "encoder.hidden_size=32", "--set", "encoder.num_heads=2", "--set", "encoder.conv_dim=16"]
AUDIO = ["--modality", "audio", "--sample-rate", str(RATE), "--clip-seconds", "2.0", "--batch-size", "8",
         "--no-progress", *SMALL]
N_TRAIN = 20  # 10 per class
N_TEST = 12  # 6 per class


def tone(rng: np.random.Generator, kind: str, stereo: bool) -> np.ndarray:
    """0.2-0.6 s at FILE_RATE: a tone of 150-400 Hz ("low") or 2-3.5 kHz ("high") plus noise."""
    n = int(rng.uniform(0.2, 0.6) * FILE_RATE)
    t = np.arange(n) / FILE_RATE
    freq = rng.uniform(150, 400) if kind == "low" else rng.uniform(2000, 3500)
    wave = 0.5 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 0.05, n)
    if stereo:  # the second channel a little quieter: the mix-down averages them
        wave = np.stack([wave, 0.8 * wave], axis=1)
    return wave.astype(np.float32)


def write_classes(root: Path, per_class: int, seed: int) -> Path:
    """``root/<class>/NNN.wav``: every third clip stereo, the first 'low' clip a FLAC, every fourth one
    level deeper."""
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        for i in range(per_class):
            folder = root / kind / ("deeper" if i % 4 == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            suffix = ".flac" if (kind == "low" and i == 0) else ".wav"
            sf.write(folder / f"{kind}_{i:02d}{suffix}", tone(rng, kind, stereo=i % 3 == 1), FILE_RATE)
    return root


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    return path


def embeddings_of(encoder, waves: torch.Tensor) -> torch.Tensor:
    """The encoder's embeddings of NaN-padded clips [N, L], as evaluate and embed compute them."""
    encoder.eval()
    return extract_features(encoder, waves, WaveBatch(), batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Labeled train (2 x 10) / test (2 x 6) class folders and a wav2vec2 run (the default method) pretrained
    4 steps on the train clips."""
    root = tmp_path_factory.mktemp("audiocli")
    train = write_classes(root / "train", per_class=10, seed=1)
    test = write_classes(root / "test", per_class=6, seed=2)
    run = root / "run"
    code, out, err = run_cli(["pretrain", train, "--out", run, "--max-steps", "4", *AUDIO])
    assert code == 0, err
    assert f"run folder: {run}" in out
    return {"root": root, "train": train, "test": test, "run": run}


def test_data_is_what_the_tests_say(workspace):
    files = find_audio_files(workspace["train"])
    assert len(files) == N_TRAIN and sum(f.suffix == ".flac" for f in files) == 1
    assert sf.info(str(files[0])).samplerate == FILE_RATE
    assert any(sf.info(str(f)).channels == 2 for f in files)
    waves, paths = unlabeled_waves(workspace["train"], RATE, None, progress=False)
    real = (~torch.isnan(waves)).sum(1)
    assert paths == files and real.tolist() == [2 * sf.info(str(f)).frames for f in files]  # 8 -> 16 kHz


def test_pretrain_writes_an_audio_run(workspace):
    run = workspace["run"]
    assert (run / "metrics.csv").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["modality"] == "audio" and config["method"]["name"] == "wav2vec2"
    assert config["encoder"]["name"] == "wav2vec2_tiny" and config["encoder"]["sample_rate"] == RATE
    assert config["encoder"]["hidden_size"] == 32 and config["encoder"]["conv_dim"] == 16
    assert (config["data"]["sample_rate"], config["data"]["clip_seconds"]) == (RATE, 2.0)
    assert global_step(run) == 4
    encoder = selfsup.load(run)
    assert encoder.sample_rate == RATE and encoder.dim == 32
    assert_run_trained(run)


def read_metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_running_again_with_more_steps_resumes(workspace, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(workspace["run"], run)
    before = selfsup.load(run).state_dict()
    rows_before = read_metrics(run)
    with caplog.at_level(logging.INFO, logger="selfsup"):
        code, _, err = run_cli(["pretrain", workspace["train"], "--out", run, "--max-steps", "6", *AUDIO])
    assert code == 0, err
    assert any("resuming" in r.getMessage() for r in caplog.records)
    assert global_step(run) == 6
    # continued from step 4: the first run's rows are kept and the new ones carry on (a restart would log
    # epoch 0 and step 1 again)
    rows = read_metrics(run)
    assert rows[: len(rows_before)] == rows_before and len(rows) > len(rows_before)
    steps, epochs = [int(r["step"]) for r in rows], [int(r["epoch"]) for r in rows]
    assert steps == sorted(set(steps)) and epochs == sorted(set(epochs)) and steps[-1] == 5
    after = selfsup.load(run).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 6


@pytest.mark.parametrize("method", ["wav2vec2", "hubert", "data2vec", "speed", "simclr"])
def test_every_audio_method_pretrains(workspace, tmp_path, method):
    run = tmp_path / method
    extra = ["--set", "method.num_clusters=8", "--set", "method.kmeans_clips=50"] if method == "hubert" else []
    code, _, err = run_cli(["pretrain", workspace["train"], "--method", method, "--out", run, "--max-steps", "3",
                            *AUDIO, *extra])
    assert code == 0, err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["method"]["name"], config["encoder"]["name"]) == (method, "wav2vec2_tiny")
    assert global_step(run) == 3
    assert_run_trained(run)
    if method == "hubert":
        assert config["method"]["num_clusters"] == 8
        centroids = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        fitted = [v for k, v in centroids.items() if k.endswith("centroids")]
        assert fitted and fitted[0].shape[0] == 8 and fitted[0].abs().sum() > 0  # k-means ran before training


def test_stream_cache_skips_a_corrupt_file_with_a_warning(workspace, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(workspace["train"], data)
    bad = write_corrupt(data / "low" / "broken.wav")
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        code, _, err = run_cli(["pretrain", data, "--out", run, "--max-steps", "3", "--cache", "stream", *AUDIO,
                                "--batch-size", "7"])
    assert code == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["cache"] == "stream"
    assert global_step(run) == 3
    # 21 files in 3 whole batches of 7: one epoch draws every file, the corrupt one too (and replaces it)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(bad) in w for w in warnings), warnings


def test_memory_cache_skips_a_corrupt_file_and_strict_stops(workspace, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(workspace["train"], data)
    bad = write_corrupt(data / "high" / "broken.wav")
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="selfsup"):
        code, _, err = run_cli(["pretrain", data, "--out", run, "--max-steps", "2", "--cache", "memory", *AUDIO])
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(bad) in w for w in warnings), warnings
    assert global_step(run) == 2

    strict_run = tmp_path / "strict"
    code, _, err = run_cli(["pretrain", data, "--out", strict_run, "--max-steps", "2", "--cache", "memory",
                            "--strict", *AUDIO])
    assert_one_line_error(code, err, str(bad), "unreadable audio")
    assert not (strict_run / "checkpoints").exists()

    code, _, err = run_cli(["pretrain", data, "--out", tmp_path / "strict_stream", "--max-steps", "3", "--cache",
                            "stream", "--strict", *AUDIO, "--batch-size", "7"])  # 3 whole batches: every file drawn
    assert_one_line_error(code, err, str(bad), "unreadable audio")


def _check_eval_rows(results: list[dict], n_train: int) -> None:
    keys = {"protocol", "label_fraction", "n_labels", "encoder", "metric", "value"}
    assert all(set(r) == keys for r in results)
    cells = sorted((r["protocol"], r["encoder"]) for r in results)
    assert cells == sorted((p, e) for p in ("knn", "linear", "finetune") for e in ("pretrained", "scratch"))
    for r in results:
        assert r["metric"] == "accuracy" and 0.0 <= r["value"] <= 1.0
        assert r["label_fraction"] == 1.0 and r["n_labels"] == n_train


EVAL = ["--protocol", "knn,linear,finetune", "--label-fractions", "1.0", "--finetune-steps", "2",
        "--baseline", "scratch"]


@pytest.fixture(scope="module")
def folder_eval(workspace) -> tuple[list[dict], str]:
    """evaluate on the train/test class folders: (eval.json's rows, the printed table)."""
    out_json = workspace["root"] / "eval" / "folders.json"
    code, out, err = run_cli(["evaluate", workspace["run"], "--train", workspace["train"], "--test", workspace["test"],
                              *EVAL, "--json", out_json])
    assert code == 0, err
    return json.loads(out_json.read_text())["results"], out


def test_evaluate_on_class_folders(folder_eval):
    results, out = folder_eval
    _check_eval_rows(results, N_TRAIN)
    # low vs high tones: a linear probe on the embeddings tells them apart (labels paired with the right clips)
    linear = [r["value"] for r in results if r["protocol"] == "linear" and r["encoder"] == "pretrained"]
    assert linear[0] >= 0.75
    assert "pretrained" in out and "scratch" in out and "finetune" in out  # the table


def _write_table(path: Path, root: Path) -> list[tuple[str, str]]:
    """path,label rows (paths relative to the table's folder) for every clip under ``root/<class>``."""
    rows = [(str(f.relative_to(path.parent)), f.relative_to(root).parts[0]) for f in find_audio_files(root)]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return rows


def test_evaluate_on_path_label_tables(workspace, folder_eval, tmp_path):
    root = workspace["root"]
    train_rows = _write_table(root / "train_table.csv", workspace["train"])
    _write_table(root / "test_table.csv", workspace["test"])
    assert len(train_rows) == N_TRAIN and not Path(train_rows[0][0]).is_absolute()
    out_json = tmp_path / "eval.json"
    code, _, err = run_cli(["evaluate", workspace["run"], "--train", root / "train_table.csv",
                            "--test", root / "test_table.csv", *EVAL, "--json", out_json])
    assert code == 0, err
    results = json.loads(out_json.read_text())["results"]
    _check_eval_rows(results, N_TRAIN)
    # the same clips with the same labels as the class folders: the same scores
    by_cell = {(r["protocol"], r["encoder"]): r["value"] for r in folder_eval[0]}
    assert {(r["protocol"], r["encoder"]): r["value"] for r in results} == pytest.approx(by_cell)


def test_a_test_label_missing_from_train_is_one_line_error(workspace, tmp_path):
    test = tmp_path / "test"
    shutil.copytree(workspace["test"], test)
    (test / "low").rename(test / "middle")
    code, _, err = run_cli(["evaluate", workspace["run"], "--train", workspace["train"], "--test", test,
                            "--protocol", "knn", "--label-fractions", "1.0", "--baseline", "none"])
    assert_one_line_error(code, err, "middle", str(test))

    table = tmp_path / "test.csv"  # the same clips as path,label rows: 6 'high' rows, then 'middle'
    rows = _write_table(table, test)
    assert [label for _, label in rows] == ["high"] * 6 + ["middle"] * 6
    code, _, err = run_cli(["evaluate", workspace["run"], "--train", workspace["train"], "--test", table,
                            "--protocol", "knn", "--label-fractions", "1.0", "--baseline", "none"])
    assert_one_line_error(code, err, f"{table}:8:", "'middle'")  # line 1 is the header


def test_embed_writes_npy_and_parquet(workspace, tmp_path):
    target = tmp_path / "e.npy"
    code, _, err = run_cli(["embed", workspace["run"], workspace["test"], "--out", target])
    assert code == 0, err
    array = np.load(target)
    encoder = selfsup.load(workspace["run"])
    assert array.shape == (N_TEST, encoder.dim) and array.dtype == np.float32 and np.isfinite(array).all()
    waves, paths = unlabeled_waves(workspace["test"], RATE, None, progress=False)
    assert paths == find_audio_files(workspace["test"])
    assert np.allclose(array, embeddings_of(encoder, waves).numpy(), atol=1e-5)  # row i is file i, sorted

    table_path = tmp_path / "e.parquet"
    code, _, err = run_cli(["embed", workspace["run"], workspace["test"], "--out", table_path])
    assert code == 0, err
    table = pq.read_table(table_path)
    assert "path" in table.column_names and table.num_rows == N_TEST
    assert table.column("path").to_pylist() == [str(p) for p in paths]
    assert np.allclose(np.asarray(table.column("embedding")[3].as_py(), dtype=np.float32), array[3], atol=1e-6)


def test_export_safetensors_loads_back_the_same_encoder(workspace, tmp_path):
    folder = tmp_path / "export"
    code, _, err = run_cli(["export", workspace["run"], "--format", "safetensors", "--out", folder])
    assert code == 0, err
    assert (folder / "model.safetensors").is_file()
    waves, _ = unlabeled_waves(workspace["test"], RATE, None, progress=False)
    from_run = embeddings_of(selfsup.load(workspace["run"]), waves)
    assert torch.allclose(embeddings_of(selfsup.load(folder), waves), from_run, atol=1e-6)
    torch.manual_seed(0)  # and it is the trained encoder, not a fresh one
    fresh = selfsup.encoders.build_encoder(selfsup.load(folder).config)
    assert not torch.allclose(embeddings_of(fresh, waves), from_run, atol=1e-3)


def test_export_huggingface_loads_with_transformers_and_matches(workspace, tmp_path, monkeypatch):
    from transformers import AutoFeatureExtractor, AutoModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "hf"
    code, _, err = run_cli(["export", workspace["run"], "--format", "huggingface", "--out", folder])
    assert code == 0, err
    extractor = AutoFeatureExtractor.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    assert extractor.sampling_rate == RATE

    waves, paths = unlabeled_waves(workspace["test"], RATE, None, progress=False)
    ours = embeddings_of(selfsup.load(workspace["run"]), waves)
    for i in (0, 5, 11):  # one clip at a time: every frame is real, the embedding is their mean
        clip = waves[i][~torch.isnan(waves[i])].numpy()
        inputs = extractor(clip, sampling_rate=RATE, return_tensors="pt")
        with torch.no_grad():
            states = model(**inputs).last_hidden_state
        assert torch.allclose(states.mean(1)[0], ours[i], atol=1e-4), paths[i]
    # a padded batch, as a transformers user would run it: the mean over each clip's real frames
    clips = [w[~torch.isnan(w)].numpy() for w in waves]
    inputs = extractor(clips, sampling_rate=RATE, padding=True, return_attention_mask=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**inputs).last_hidden_state
    lengths = inputs["attention_mask"].sum(1)
    frames = (lengths - 400) // 320 + 1  # 25 ms windows every 20 ms
    mask = (torch.arange(states.shape[1])[None] < frames[:, None]).unsqueeze(-1).float()
    assert torch.allclose((states * mask).sum(1) / mask.sum(1), ours, atol=1e-4)
    assert torch.allclose(embeddings_of(selfsup.load(folder), waves), ours, atol=1e-5)


def test_empty_folder_and_folder_without_audio_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(["pretrain", empty, "--out", tmp_path / "r1", "--max-steps", "1", *AUDIO])
    assert_one_line_error(code, err, str(empty), "no audio files")
    assert not (tmp_path / "r1").exists()

    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "notes.txt").write_text("not audio\n")
    (texts / "image.png").write_bytes(b"\x89PNG")
    code, _, err = run_cli(["pretrain", texts, "--out", tmp_path / "r2", "--max-steps", "1", *AUDIO])
    assert_one_line_error(code, err, str(texts), "no audio files")


def test_text_method_on_audio_is_one_line_error(workspace, tmp_path):
    code, _, err = run_cli(["pretrain", workspace["train"], "--method", "mlm", "--out", tmp_path / "r",
                            "--max-steps", "1", *AUDIO])
    line = assert_one_line_error(code, err, "'mlm' does not work on audio data")
    assert "wav2vec2" in line  # it names the methods that do
    assert not (tmp_path / "r").exists()


def test_methods_lists_the_audio_methods():
    code, out, err = run_cli(["methods", "--modality", "audio", "--json"])
    assert code == 0, err
    assert sorted(i["name"] for i in json.loads(out)) == ["data2vec", "distill", "hubert", "simclr", "speed", "wav2vec2"]
    code, out, _ = run_cli(["methods", "--modality", "audio"])
    assert code == 0 and {line.split()[0] for line in out.splitlines() if line.strip()} == {
        "data2vec", "distill", "hubert", "simclr", "speed", "wav2vec2"}
