"""The `selfsup` command on text: pretrain (and resume), evaluate (labels, baselines, similarity), export to
Hugging Face / safetensors, embed, and the one-line errors for bad text files."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import selfsup
from selfsup.encoders.text import TextEncoder

from cli_checks import assert_one_line_error, assert_run_trained, global_step, run_cli

BATCH = 16
TEXT = ["--modality", "text", "--batch-size", str(BATCH), "--vocab-size", "150", "--max-length", "32", "--no-progress"]
ANIMALS = "cat dog bird horse cow sheep goat mouse fox wolf bear duck".split()
PLACES = "city river mountain garden house street forest lake village bridge market field".split()
COMMON = "the a big small old new quick slow red green happy sad saw near by with".split()


def sentence(rng: random.Random, topic: list[str]) -> str:
    words = [rng.choice(topic) for _ in range(3)] + [rng.choice(COMMON) for _ in range(rng.randint(2, 6))]
    rng.shuffle(words)
    return " ".join(words)


def write_corpus(path: Path, n: int = 200, seed: int = 0) -> list[str]:
    """``n`` lines, every tenth empty; returns the non-empty ones (the texts)."""
    rng = random.Random(seed)
    lines = ["" if i % 10 == 9 else sentence(rng, ANIMALS if i % 2 else PLACES) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [line for line in lines if line]


def write_labeled(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = [f"{label}\t{sentence(rng, topic)}" for i in range(n)
            for label, topic in [("animal", ANIMALS) if i % 2 else ("place", PLACES)]]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_pairs(path: Path, n: int, seed: int) -> None:
    """score<TAB>s1<TAB>s2 where s2 is s1 with (5 - score) of its 5 words replaced."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        first = [rng.choice(ANIMALS + PLACES + COMMON) for _ in range(5)]
        score = i % 6
        second = list(first)
        for j in rng.sample(range(5), 5 - score):
            second[j] = rng.choice(ANIMALS + PLACES + COMMON)
        rows.append(f"{score}\t{' '.join(first)}\t{' '.join(second)}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A corpus (200 lines, 180 texts), labeled train/test files, sentence pairs, and an mlm run (2 epochs)."""
    root = tmp_path_factory.mktemp("textcli")
    corpus = root / "corpus.txt"
    texts = write_corpus(corpus)
    write_labeled(root / "train.tsv", 60, seed=1)
    write_labeled(root / "test.tsv", 40, seed=2)
    write_pairs(root / "pairs.tsv", 60, seed=3)
    run = root / "run"
    code, out, err = run_cli(["pretrain", corpus, "--method", "mlm", "--out", run, "--epochs", "2", *TEXT])
    assert code == 0, err
    assert f"run folder: {run}" in out
    return {"root": root, "corpus": corpus, "texts": texts, "run": run}


def test_pretrain_writes_a_text_run(workspace):
    from transformers import AutoTokenizer

    run = workspace["run"]
    assert (run / "metrics.csv").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(run / "tokenizer"), local_files_only=True)
    assert config["data"]["modality"] == "text" and config["method"]["name"] == "mlm"
    assert config["encoder"]["name"] == "bert_tiny"
    assert config["encoder"]["vocab_size"] == len(tokenizer) <= 150
    assert config["encoder"]["mask_token_id"] == tokenizer.mask_token_id
    ids = tokenizer("the cat saw a river")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids  # trained on this corpus
    assert global_step(run) == 2 * (len(workspace["texts"]) // BATCH)  # empty lines skipped, last batch dropped
    assert_run_trained(run)


def test_running_again_with_more_epochs_resumes(workspace, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(workspace["run"], run)
    tokenizer_before = (run / "tokenizer" / "tokenizer.json").read_bytes()
    steps_before = global_step(run)
    code, _, err = run_cli(["pretrain", workspace["corpus"], "--method", "mlm", "--out", run, "--epochs", "3", *TEXT])
    assert code == 0, err
    assert global_step(run) == steps_before // 2 * 3 > steps_before
    assert (run / "tokenizer" / "tokenizer.json").read_bytes() == tokenizer_before
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["epochs"] == 3


def test_evaluate_labels_with_scratch_and_tfidf_baselines(workspace, tmp_path):
    root, out_json = workspace["root"], tmp_path / "eval.json"
    code, out, err = run_cli([
        "evaluate", workspace["run"], "--train", root / "train.tsv", "--test", root / "test.tsv",
        "--baseline", "scratch,tfidf", "--label-fractions", "0.5,1.0", "--protocol", "knn,linear", "--json", out_json,
    ])
    assert code == 0, err
    payload = json.loads(out_json.read_text())
    assert set(payload) == {"results"}
    results = payload["results"]
    assert all(set(r) == {"protocol", "label_fraction", "n_labels", "encoder", "metric", "value"} for r in results)
    cells = sorted((r["protocol"], r["label_fraction"], r["encoder"]) for r in results)
    expected = [(p, f, e) for p in ("knn", "linear") for f in (0.5, 1.0) for e in ("pretrained", "scratch")]
    expected += [("linear", f, "tfidf") for f in (0.5, 1.0)]
    assert cells == sorted(expected)  # exactly one row each; tfidf only as a linear classifier
    for r in results:
        assert r["metric"] == "accuracy" and 0.0 <= r["value"] <= 1.0
        assert r["n_labels"] == (30 if r["label_fraction"] == 0.5 else 60)  # class-balanced: 15 + 15
    tfidf = {r["label_fraction"]: r["value"] for r in results if r["encoder"] == "tfidf"}
    assert tfidf[1.0] >= 0.9  # three topic words in every text: TF-IDF separates the topics
    assert "tfidf" in out and "pretrained" in out and "scratch" in out  # the table
    assert (workspace["run"] / "plots" / "label_efficiency.png").is_file()


def test_evaluate_similarity_gives_spearman_rows(workspace, tmp_path):
    out_json = tmp_path / "sim.json"
    code, out, err = run_cli(["evaluate", workspace["run"], "--test", workspace["root"] / "pairs.tsv",
                              "--protocol", "similarity", "--baseline", "tfidf", "--json", out_json])
    assert code == 0, err
    results = json.loads(out_json.read_text())["results"]
    assert sorted(r["encoder"] for r in results) == ["pretrained", "tfidf"]
    for r in results:
        assert (r["protocol"], r["metric"], r["label_fraction"], r["n_labels"]) == ("similarity", "spearman", 0.0, 0)
        assert -1.0 <= r["value"] <= 1.0
    by_encoder = {r["encoder"]: r["value"] for r in results}
    assert by_encoder["tfidf"] > 0.6  # the score is the number of shared words
    assert by_encoder["pretrained"] > 0.2  # mean-pooled tokens: shared words give similar embeddings
    assert out.splitlines()[-1].split()[0] == "similarity" and "tfidf" in out  # the table


def test_pixels_baseline_on_a_text_run_is_one_line(workspace):
    root = workspace["root"]
    code, _, err = run_cli(["evaluate", workspace["run"], "--train", root / "train.tsv", "--test", root / "test.tsv",
                            "--baseline", "scratch,pixels"])
    assert_one_line_error(code, err, "--baseline 'pixels'", "text data", "scratch, tfidf")


def embeddings_of(encoder, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    encoder.eval()
    with torch.no_grad():
        return encoder.embed({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})


def test_export_huggingface_loads_with_transformers_and_matches(workspace, tmp_path, monkeypatch):
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "hf"
    code, out, err = run_cli(["export", workspace["run"], "--format", "huggingface", "--out", folder])
    assert code == 0, err
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    texts = workspace["texts"][:7] + ["an unseen zebra sentence", "cat"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    hf_embeddings = (states * mask).sum(1) / mask.sum(1)

    loaded = selfsup.load(workspace["run"])
    run_tokenizer = AutoTokenizer.from_pretrained(str(workspace["run"] / "tokenizer"))
    assert torch.equal(run_tokenizer(texts, padding=True, return_tensors="pt")["input_ids"], batch["input_ids"])
    ours = embeddings_of(loaded, batch)
    assert torch.allclose(hf_embeddings, ours, atol=1e-5)
    assert torch.allclose(embeddings_of(selfsup.load(folder), batch), ours, atol=1e-5)
    # the trained encoder, not a fresh one
    torch.manual_seed(0)
    assert not torch.allclose(embeddings_of(selfsup.encoders.build_encoder(loaded.config), batch), ours, atol=1e-3)

    safe = tmp_path / "safe"
    code, _, err = run_cli(["export", workspace["run"], "--format", "safetensors", "--out", safe])
    assert code == 0, err
    assert torch.allclose(embeddings_of(selfsup.load(safe), batch), ours, atol=1e-5)


def test_embed_writes_one_row_per_text(workspace, tmp_path):
    target = tmp_path / "e.npy"
    code, _, err = run_cli(["embed", workspace["run"], workspace["corpus"], "--out", target])
    assert code == 0, err
    array = np.load(target)
    encoder = selfsup.load(workspace["run"])
    assert array.shape == (len(workspace["texts"]), encoder.dim) and array.dtype == np.float32
    # row i is text i (the corpus order, empty lines skipped)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(workspace["run"] / "tokenizer"))
    batch = tokenizer(workspace["texts"][5:8], padding=True, return_tensors="pt")
    assert np.allclose(array[5:8], embeddings_of(encoder, batch).numpy(), atol=1e-5)


def test_latin1_corpus_fails_in_one_line_then_trains_with_encoding(workspace, tmp_path):
    corpus = tmp_path / "legacy.txt"
    corpus.write_bytes(b"the cat sat\nthe dog ran\n\nwe had caf\xe9 in the city\n" + "a bird flew\n".encode() * 20)
    run = tmp_path / "run"
    code, _, err = run_cli(["pretrain", corpus, "--method", "mlm", "--out", run, "--epochs", "1", *TEXT])
    line = assert_one_line_error(code, err, f"{corpus}:4:", "latin-1")
    assert "0xe9" in line
    assert not (run / "checkpoints").exists()

    # the same command with the encoding, into the same folder
    code, _, err = run_cli(["pretrain", corpus, "--method", "mlm", "--out", run, "--epochs", "1",
                            "--encoding", "latin-1", *TEXT])
    assert code == 0, err
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert global_step(run) == 23 // BATCH


def test_jsonl_without_the_text_field_names_it(tmp_path):
    data = tmp_path / "docs.jsonl"
    data.write_text("\n".join(json.dumps({"body": f"text number {i}", "id": i}) for i in range(40)) + "\n")
    code, _, err = run_cli(["pretrain", data, "--method", "mlm", "--out", tmp_path / "r", "--epochs", "1", *TEXT])
    assert_one_line_error(code, err, f"{data}:1:", "no 'text' field", "body", "data.text_field")


def test_streamed_corpus_trains_with_whole_batches_per_epoch(workspace, tmp_path):
    run = tmp_path / "stream"
    code, _, err = run_cli(["pretrain", workspace["corpus"], "--method", "simcse", "--out", run, "--epochs", "2",
                            "--cache", "stream", *TEXT])
    assert code == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["cache"] == "stream"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert global_step(run) == 2 * (len(workspace["texts"]) // BATCH)
    assert_run_trained(run)


@pytest.mark.parametrize(("method", "encoder"), [("clm", "gpt_tiny"), ("tsdae", "bert_tiny")])
def test_clm_and_tsdae_pretrain_and_evaluate(workspace, tmp_path, method, encoder):
    run = tmp_path / method
    code, _, err = run_cli(["pretrain", workspace["corpus"], "--method", method, "--encoder", encoder, "--out", run,
                            "--epochs", "1", *TEXT])
    assert code == 0, err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["method"]["name"], config["encoder"]["name"]) == (method, encoder)
    assert global_step(run) == len(workspace["texts"]) // BATCH
    assert_run_trained(run)

    out_json = tmp_path / "eval.json"
    code, out, err = run_cli(["evaluate", run, "--train", workspace["root"] / "train.tsv", "--test",
                              workspace["root"] / "test.tsv", "--protocol", "knn", "--label-fractions", "1.0",
                              "--baseline", "none", "--json", out_json])
    assert code == 0, err
    results = json.loads(out_json.read_text())["results"]
    assert [(r["protocol"], r["encoder"], r["n_labels"]) for r in results] == [("knn", "pretrained", 60)]
    assert results[0]["value"] > 0.5  # the topic words are in the vocabulary: better than a coin
    assert isinstance(selfsup.load(run), TextEncoder) and selfsup.load(run).causal == (method == "clm")
