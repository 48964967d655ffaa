"""``--init RUN_OR_EXPORT``: every modality continues from a selfsup run or export folder, with another method.

For images, text, audio and sequences a tiny run is made here, then a second run starts from it (and from its
export) with a different method that fits. The second run's starting encoder (``build_encoder`` of its stored
config, which is also ``--baseline init``) embeds exactly as the source run; training moves it on; the data
preparation the weights depend on (image size, tokenizer and max length, sample rate, item map) is carried over.
A sequence run on a newer log keeps its known items' embeddings and ids, adds the new items and reports them.
Every mistake is one line.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import transformers
import yaml

from cli_checks import assert_one_line_error, global_step, run_cli
from conftest import write_class_folder
from selfsup import api
from selfsup.encoders import build_encoder, scratch_config, starts_from_checkpoint
from selfsup.modalities.text.tokenizer import load_tokenizer, train_tokenizer

pytestmark = pytest.mark.usefixtures("no_network")  # conftest: any connection fails the test

QUIET = ["--no-progress", "--batch-size", "8"]


def config_of(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def rows_of(run: Path) -> list[dict]:
    rows = json.loads((run / "eval.json").read_text())
    return rows["results"] if isinstance(rows, dict) else rows


def embeddings(encoder, inputs) -> torch.Tensor:
    with torch.no_grad():
        return encoder.eval().embed(inputs)


def assert_starts_from(run: Path, source: Path, inputs) -> None:
    """The run's starting encoder (its stored config, rebuilt with the init weights) embeds as ``source``'s;
    the run's trained encoder does not any more."""
    trained = api.load(run)
    assert trained.config["init_from"] == str(source.resolve()) and starts_from_checkpoint(trained.config)
    start = build_encoder(trained.config)
    torch.testing.assert_close(embeddings(start, inputs), embeddings(api.load(source), inputs))
    assert not torch.allclose(embeddings(trained, inputs), embeddings(start, inputs))


# ------------------------------------------------------------------------------------------------ images
@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Unlabeled images, labeled train/test folders, a 16 px vit_micro SimCLR run and its export."""
    root = tmp_path_factory.mktemp("init_images")
    ws = {"root": root, "data": write_class_folder(root / "data", 6, seed=0),
          "train": write_class_folder(root / "train", 4, seed=1), "test": write_class_folder(root / "test", 3, seed=2)}
    ws["run"] = root / "simclr"
    code, _, err = run_cli(["pretrain", ws["data"], "--method", "simclr", "--encoder", "vit_micro", "--image-size", "16",
                            "--max-steps", "2", "--out", ws["run"], *QUIET])
    assert code == 0, err
    ws["export"] = api.export(ws["run"], root / "simclr-export")
    return ws


@pytest.mark.parametrize("source", ["run", "export"])
def test_image_run_continues_with_another_method(images, source, tmp_path):
    run = tmp_path / "mae"
    code, _, err = run_cli(["pretrain", images["data"], "--init", images[source], "--method", "mae", "--max-steps", "3",
                            "--out", run, *QUIET])
    assert code == 0, err
    config = config_of(run)
    assert config["method"]["name"] == "mae" and config["encoder"]["name"] == "vit_micro"
    assert config["data"]["image_size"] == 16  # the stored size, not the default 32
    assert global_step(run) == 3
    assert_starts_from(run, images[source], torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)))


def test_image_baseline_init_is_the_source_run(images, tmp_path):
    run = tmp_path / "byol"
    api.pretrain(images["data"], "byol", run, init=images["run"], max_steps=2, batch_size=8, progress_bar=False)
    code, out, err = run_cli(["evaluate", run, "--train", images["train"], "--test", images["test"], "--protocol",
                              "knn,linear", "--label-fractions", "1.0", "--baseline", "init,scratch"])
    assert code == 0, err
    rows = rows_of(run)
    assert {r["encoder"] for r in rows} == {"pretrained", "init", "scratch"}
    source = api.evaluate(images["run"], images["train"], images["test"], protocols=["knn", "linear"],
                          label_fractions=[1.0], baseline=None, json_path=tmp_path / "source.json")
    same = {(r.protocol, r.metric): r.value for r in source}
    assert {(r["protocol"], r["metric"]): r["value"] for r in rows if r["encoder"] == "init"} == \
        pytest.approx(same)  # "init" is the source run, unadapted
    assert "init_from" not in scratch_config(api.load(run).config)


def test_resuming_and_loading_do_not_need_the_init_folder(images, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(images["run"], source)
    run = tmp_path / "run"
    argv = ["pretrain", images["data"], "--init", source, "--method", "byol", "--out", run, *QUIET]
    assert run_cli([*argv, "--max-steps", "2"])[0] == 0
    shutil.rmtree(source)  # the folder the run started from is gone: the run's own checkpoint has every weight
    code, _, err = run_cli([*argv, "--max-steps", "3"])
    assert code == 0 and global_step(run) == 3, err  # resumes
    assert api.load(run).config["init_from"] == str(source)
    code, _, err = run_cli(["export", run, "--out", tmp_path / "export"])
    assert code == 0, err
    code, _, err = run_cli(["evaluate", run, "--train", images["train"], "--test", images["test"], "--protocol", "knn",
                            "--label-fractions", "1.0", "--baseline", "init"])
    assert_one_line_error(code, err, f"--init {source}: no such folder", "put it back")


def test_image_mistakes_are_one_line(images, tmp_path):
    out = tmp_path / "never"
    base = ["pretrain", images["data"], "--out", out, "--max-steps", "1", *QUIET]
    late = ["pretrain", images["data"], "--max-steps", "1", *QUIET]  # mistakes found when the encoder is built
    assert_one_line_error(*run_cli([*base, "--init", images["run"], "--encoder", "tiny_cnn"])[::2],
                          f"--init {images['run']} sets the architecture", "vit_micro", "leave out --encoder tiny_cnn")
    # another image size changes a ViT's position embeddings (at its patch size): one line names them
    assert_one_line_error(*run_cli([*late, "--out", tmp_path / "a", "--init", images["export"], "--image-size", "24"])[::2],
                          f"--init {images['export'].resolve()}", "other shape model.pos_embed (saved [1, 65, 96], "
                          "here [1, 145, 96])", "--image-size")
    damaged = tmp_path / "damaged"
    shutil.copytree(images["run"], damaged)
    for name in ("last.ckpt", "best.ckpt"):
        (damaged / "checkpoints" / name).write_bytes(b"PK\x03\x04 not the rest")
    assert_one_line_error(*run_cli([*late, "--out", tmp_path / "b", "--init", damaged])[::2],
                          f"--init {damaged.resolve()}", "last.ckpt: not a readable checkpoint (truncated")
    assert_one_line_error(*run_cli([*base, "--modality", "text", "--init", images["run"]])[::2],
                          "is a selfsup run of image data", "DATA is read as text data", "--modality image")
    assert_one_line_error(*run_cli(["pretrain", images["data"], "--out", images["run"], "--init", images["run"]])[::2],
                          "is the --out folder itself", "use a new --out folder")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ text
TOPICS = ("the cat sat on a warm mat near the door".split(), "dogs ran in the green park after rain".split())


def sentences(n: int, seed: int) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    return [(i % 2, " ".join(rng.choice(TOPICS[i % 2]) for _ in range(7))) for i in range(n)]


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> dict[str, Path]:
    """A corpus, labeled splits, an mlm bert_tiny run (max length 24) and its two exports."""
    root = tmp_path_factory.mktemp("init_text")
    (root / "corpus.txt").write_text("\n".join(t for _, t in sentences(64, seed=0)) + "\n")
    for name, n, seed in (("train.tsv", 16, 1), ("test.tsv", 10, 2)):
        (root / name).write_text("".join(f"{'ab'[y]}\t{t}\n" for y, t in sentences(n, seed)))
    ws = {"root": root, "data": root / "corpus.txt", "run": root / "mlm"}
    code, _, err = run_cli(["pretrain", ws["data"], "--modality", "text", "--method", "mlm", "--max-length", "24",
                            "--vocab-size", "60", "--max-steps", "2", "--out", ws["run"], *QUIET])
    assert code == 0, err
    ws["export"] = api.export(ws["run"], root / "export")
    ws["hf"] = api.export(ws["run"], root / "hf", format="huggingface")
    return ws


def token_batch(run: Path, n: int = 4) -> dict[str, torch.Tensor]:
    tok = load_tokenizer(run / "tokenizer")
    batch = tok([t for _, t in sentences(n, seed=9)], padding=True, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


@pytest.mark.parametrize("source", ["run", "export", "hf"])
def test_text_run_continues_with_simcse_and_its_tokenizer(texts, source, tmp_path):
    run = tmp_path / "simcse"
    code, _, err = run_cli(["pretrain", texts["data"], "--modality", "text", "--init", texts[source], "--method",
                            "simcse", "--max-steps", "3", "--out", run, *QUIET])
    assert code == 0, err
    config = config_of(run)
    assert config["data"]["max_length"] == 24 and config["encoder"]["max_length"] == 24  # the stored length
    assert (run / "tokenizer" / "tokenizer.json").read_text() == \
        (texts["run"] / "tokenizer" / "tokenizer.json").read_text()  # the source's tokenizer, not a new one
    assert_starts_from(run, texts[source], token_batch(run))


def test_text_run_with_zero_lr_embeds_as_its_source_and_evaluates_against_it(texts, tmp_path):
    """The whole pipeline (settings, tokenizer, init weights, checkpoint, reload) keeps the source's embeddings."""
    run = tmp_path / "run"
    api.pretrain(texts["data"], "data2vec", run, modality="text", init=texts["export"], max_steps=2, batch_size=8,
                 overrides={"optim.lr": 0.0}, progress_bar=False)
    inputs = token_batch(run)
    torch.testing.assert_close(embeddings(api.load(run), inputs), embeddings(api.load(texts["run"]), inputs))
    rows = api.evaluate(run, texts["root"] / "train.tsv", texts["root"] / "test.tsv", protocols=["linear"],
                        label_fractions=[1.0], baseline="init,scratch,tfidf")
    scores = {r.encoder: r.value for r in rows}
    assert set(scores) == {"pretrained", "init", "scratch", "tfidf"}
    assert scores["init"] == pytest.approx(scores["pretrained"])


def test_a_run_from_a_hugging_face_started_run_keeps_its_source(texts, tmp_path):
    """hf_text: ``source`` gives the architecture, ``init_from`` the run's weights on top of it."""
    tok = load_tokenizer(texts["run"] / "tokenizer")
    hf = tmp_path / "bert"
    transformers.BertModel(transformers.BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, pad_token_id=tok.pad_token_id)).save_pretrained(hf)
    tok.save_pretrained(hf)
    first, second = tmp_path / "first", tmp_path / "second"
    api.pretrain(texts["data"], "mlm", first, modality="text", init=hf, max_steps=2, batch_size=8,
                 max_length=24, progress_bar=False)
    api.pretrain(texts["data"], "simcse", second, modality="text", init=first, max_steps=2, batch_size=8,
                 progress_bar=False)
    config = api.load(second).config
    assert (config["name"], config["source"], config["init_from"]) == ("hf_text", str(hf), str(first))
    assert scratch_config(config) == {**{k: v for k, v in config.items() if k != "init_from"}, "pretrained": False}
    assert_starts_from(second, first, token_batch(second))


def test_text_mistakes_are_one_line(texts, tmp_path):
    base = ["pretrain", texts["data"], "--modality", "text", "--out", tmp_path / "never", "--max-steps", "1", *QUIET]
    assert_one_line_error(*run_cli([*base, "--init", texts["run"], "--tokenizer", "bpe"])[::2],
                          f"--init {texts['run'].resolve()} brings its own tokenizer", "leave out --tokenizer bpe")
    assert_one_line_error(*run_cli([*base, "--init", texts["export"], "--encoder", "gpt_tiny"])[::2],
                          "sets the architecture (its encoder bert_tiny)", "leave out --encoder gpt_tiny")
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------------------------------------ audio
FILE_RATE, RATE = 8000, 8000
SMALL = ["--set", "encoder.hidden_size=32", "--set", "encoder.num_heads=2", "--set", "encoder.conv_dim=16"]


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict[str, Path]:
    """Recordings and a wav2vec2 run at 8 kHz."""
    root = tmp_path_factory.mktemp("init_audio")
    rng = np.random.default_rng(0)
    for i in range(12):
        t = np.arange(int(1.0 * FILE_RATE)) / FILE_RATE
        wave = 0.5 * np.sin(2 * np.pi * rng.uniform(150, 3000) * t) + rng.normal(0, 0.05, t.size)
        sf.write(root / f"clip{i:02d}.wav", wave.astype(np.float32), FILE_RATE)
    ws = {"data": root, "run": root.parent / "wav2vec2"}
    code, _, err = run_cli(["pretrain", root, "--modality", "audio", "--sample-rate", str(RATE), "--clip-seconds", "1.0",
                            "--max-steps", "2", "--out", ws["run"], *SMALL, *QUIET])
    assert code == 0, err
    return ws


def test_audio_run_continues_with_simclr_at_its_sample_rate(audio, tmp_path):
    run = tmp_path / "simclr"
    code, _, err = run_cli(["pretrain", audio["data"], "--modality", "audio", "--init", audio["run"], "--method",
                            "simclr", "--clip-seconds", "1.0", "--max-steps", "2", "--out", run, *QUIET])
    assert code == 0, err
    assert config_of(run)["data"]["sample_rate"] == RATE  # the stored rate, not the default 16 kHz
    waves = torch.randn(3, int(1.0 * RATE), generator=torch.Generator().manual_seed(0)) * 0.1
    assert_starts_from(run, audio["run"], {"input_values": waves, "attention_mask": torch.ones_like(waves).long()})
    # wav2vec2 continues the stored encoder with a fresh quantiser (a run folder keeps the encoder only)
    code, _, err = run_cli(["pretrain", audio["data"], "--modality", "audio", "--init", audio["run"], "--method",
                            "wav2vec2", "--clip-seconds", "1.0", "--max-steps", "2", "--out", tmp_path / "w2v", *QUIET])
    assert code == 0, err
    assert_one_line_error(*run_cli(["pretrain", audio["data"], "--modality", "audio", "--init", audio["run"],
                                    "--sample-rate", "22050", "--out", tmp_path / "never", *QUIET])[::2],
                          "was trained on audio at 8000 Hz", "leave out --sample-rate 22050")


# ------------------------------------------------------------------------------------------------ sequences
def write_log(path: Path, items: range, users: int = 24, length: int = 10) -> Path:
    """Each user walks ``items`` in a cycle from its own start."""
    rows = ["user,item,timestamp"]
    names = [f"i{i:02d}" for i in items]
    for user in range(users):
        rows += [f"u{user},{names[(user + t) % len(names)]},{100 * user + t}" for t in range(length)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> dict[str, Path]:
    """An old log (items i00-i09), a newer one (i02-i13: two gone, four new) and a SASRec run on the old one."""
    root = tmp_path_factory.mktemp("init_sequence")
    ws = {"old": write_log(root / "old.csv", range(10)), "new": write_log(root / "new.csv", range(2, 14)),
          "run": root / "sasrec"}
    code, _, err = run_cli(["pretrain", ws["old"], "--modality", "sequence", "--max-length", "12", "--max-steps", "3",
                            "--out", ws["run"], *QUIET])
    assert code == 0, err
    ws["export"] = api.export(ws["run"], root / "export")
    return ws


@pytest.mark.parametrize("source", ["run", "export"])
def test_sequence_run_on_a_newer_log_grows_the_item_map(sequences, source, tmp_path, caplog):
    run = tmp_path / "cl4srec"
    code, _, err = run_cli(["pretrain", sequences["new"], "--modality", "sequence", "--init", sequences[source],
                            "--method", "cl4srec", "--max-steps", "3", "--out", run, *QUIET])
    assert code == 0, err
    report = caplog.text  # the CLI prints it as "selfsup: ..." (a warning: new items start untrained)
    assert "8 item(s) known from" in report and "4 new item(s) ('i10', 'i11', 'i12', ...)" in report
    assert "2 known item(s) not in this log stay in the item map (14 items in all)" in report
    old = json.loads((sequences["run"] / "item_map.json").read_text())
    grown = json.loads((run / "item_map.json").read_text())
    assert {k: grown[k] for k in old} == old  # every old item keeps its id, also i00 and i01 that left the log
    assert sorted(set(grown) - set(old)) == ["i10", "i11", "i12", "i13"]
    assert sorted(grown.values()) == list(range(1, 15))
    assert config_of(run)["encoder"]["num_items"] == 14 and config_of(run)["data"]["max_length"] == 12

    source_table = api.load(sequences[source]).item_embeddings.weight.detach()
    start = build_encoder(api.load(run).config)  # the run's start: the source's weights in the grown table
    table = start.item_embeddings.weight.detach()
    torch.testing.assert_close(table[:11], source_table[:11])  # padding and the 10 known items, at their ids
    torch.testing.assert_close(table[-1], source_table[-1])  # [MASK] moved to the new last row
    assert not torch.allclose(table[11:15], source_table[:4])  # new items: fresh rows
    history = {"input_ids": torch.tensor([[3, 4, 5, 6], [7, 8, 9, 0]]),
               "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    torch.testing.assert_close(embeddings(start, history), embeddings(api.load(sequences[source]), history))
    trained = api.load(run).item_embeddings.weight.detach()
    assert not torch.allclose(trained, table)  # training continued

    code, out, err = run_cli(["evaluate", run, "--protocol", "ranking", "--baseline", "init"])
    assert code == 0, err
    assert {r["encoder"] for r in rows_of(run)} >= {"pretrained", "init"}


def test_sequence_resume_and_mistakes(sequences, tmp_path, caplog):
    run = tmp_path / "run"
    argv = ["pretrain", sequences["new"], "--modality", "sequence", "--init", sequences["run"], "--out", run, *QUIET]
    assert run_cli([*argv, "--max-steps", "1"])[0] == 0
    caplog.clear()
    code, _, err = run_cli([*argv, "--max-steps", "2"])
    assert code == 0 and global_step(run) == 2, err  # resumes in the grown map, reporting nothing new
    assert "new item(s)" not in caplog.text
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["pretrain", sequences["new"], "--modality", "sequence", "--out", tmp_path / "never", *QUIET]
    assert_one_line_error(*run_cli([*base, "--init", empty])[::2], "not available for sequence data")
    assert_one_line_error(*run_cli([*base, "--init", sequences["run"], "--encoder", "bert4rec_tiny"])[::2],
                          "leave out --encoder bert4rec_tiny")
    assert_one_line_error(*run_cli([*base, "--init", sequences["run"], "--max-length", "20"])[::2],
                          "other shape", "wpe", "--max-length")
