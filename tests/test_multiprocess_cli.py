"""`selfsup pretrain --devices 2 --strategy ddp` on CPU: Lightning launches two gloo processes that split the
data, share one run folder and stop together. (Loss-level equivalence with one process: test_ddp.py.)"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cli_checks import assert_run_trained

N_IMAGES = 48  # the image_folder fixture: 3 classes x 16
BATCH = 8


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
@pytest.mark.parametrize("method", ["simclr", "moco"])
def test_two_process_ddp_run_from_the_cli(image_folder: Path, tmp_path: Path, method: str) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "selfsup.cli", "pretrain", str(image_folder), "--method", method,
               "--out", str(run), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
               "--epochs", "2", "--batch-size", str(BATCH), "--image-size", "16", "--no-progress",
               "--set", "trainer.log_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    # DistributedSampler gives each process half the images: 48 / (2 x 8) = 3 steps per epoch
    assert checkpoint["global_step"] == 2 * N_IMAGES // (2 * BATCH)
    config = yaml.safe_load((run / "config.yaml").read_text())
    # the default lr (2e-3 for batch 256 in both methods) follows the global batch: 2 processes x 8
    assert config["optim"]["lr"] == pytest.approx(2e-3 * 2 * BATCH / 256)
    with open(run / "metrics.csv", newline="") as file:
        step_rows = [row for row in csv.DictReader(file) if row.get("loss_step")]
    assert len(step_rows) == checkpoint["global_step"]  # rank 0 alone logs, once per step
    assert done.stdout.count("run folder:") == 1  # and only rank 0 speaks
    assert_run_trained(run)  # finite losses; the weights left the start both processes share


N_TEXTS = 60


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
@pytest.mark.parametrize("cache", ["memory", "stream"])
def test_two_process_ddp_text_run_shares_one_tokenizer(tmp_path: Path, cache: str) -> None:
    """Only the first process trains the tokenizer (its id order is not reproducible across processes); the
    other waits for it. Both take the same number of steps: DistributedSampler halves the memory corpus, and
    the stream gives every process the same count of batches."""
    words = "the cat sat on a mat while dogs ran in parks near old red houses today".split()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(words[(i + j) % len(words)] for j in range(4 + i % 5))
                                for i in range(N_TEXTS)) + "\n")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "selfsup.cli", "pretrain", str(corpus), "--modality", "text",
               "--method", "mlm", "--out", str(run), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
               "--epochs", "2", "--batch-size", "6", "--vocab-size", "60", "--max-length", "16",
               "--cache", cache, "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 * (N_TEXTS // (2 * 6))  # 5 steps per epoch on each process
    config = yaml.safe_load((run / "config.yaml").read_text())
    from transformers import AutoTokenizer

    assert config["encoder"]["vocab_size"] == len(AutoTokenizer.from_pretrained(run / "tokenizer"))
    assert not (run / "tokenizer.tmp").exists()
    assert_run_trained(run)


N_CLIPS = 24


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
@pytest.mark.parametrize("method", ["hubert", "wav2vec2"])
def test_two_process_ddp_audio_run(tmp_path: Path, method: str) -> None:
    """Audio under DDP: every process fits the same HuBERT k-means (same clips, same seed) and trains only
    the parameters it uses (the frame mask vector is trained by masking methods only)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(N_CLIPS):
        t = np.arange(int(8000 * rng.uniform(0.2, 0.5))) / 8000
        sf.write(folder / f"{i:02d}.wav", 0.5 * np.sin(2 * np.pi * (200 + 40 * i) * t), 8000)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "selfsup.cli", "pretrain", str(folder), "--modality", "audio", "--method", method,
               "--out", str(run), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--epochs", "2",
               "--batch-size", "4", "--no-progress", "--set", "encoder.hidden_size=32", "--set", "encoder.num_heads=2",
               "--set", "encoder.conv_dim=16", "--set", "method.num_clusters=4" if method == "hubert" else
               "method.num_negatives=5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 * (N_CLIPS // (2 * 4))  # DistributedSampler: 3 steps per epoch each
    if method == "hubert":
        assert checkpoint["state_dict"]["method.centroids"].abs().sum() > 0
    assert_run_trained(run)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
@pytest.mark.parametrize("method", ["cl4srec", "bert4rec"])
def test_two_process_ddp_sequence_run(tmp_path: Path, method: str) -> None:
    """Sequences under DDP: one item map for both processes, CL4SRec's NT-Xent over both processes' views, and
    every parameter used in every step (BERT4Rec's [MASK] row, the tied output layer)."""
    rows = ["user,item,timestamp"]
    for user in range(20):
        rows += [f"u{user},i{(user + t) % 9},{t}" for t in range(8)]
    log = tmp_path / "log.csv"
    log.write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "selfsup.cli", "pretrain", str(log), "--modality", "sequence", "--method", method,
               "--out", str(run), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--epochs", "2",
               "--batch-size", "4", "--max-length", "8", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 * (20 // (2 * 4))  # DistributedSampler: 2 steps per epoch each
    assert (run / "item_map.json").exists() and not (run / "item_map.json.tmp").exists()
    assert_run_trained(run)
