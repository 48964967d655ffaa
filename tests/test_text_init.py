"""``--init`` from a Hugging Face text checkpoint, ``--baseline init`` and the export back to transformers.

Every checkpoint is made here, tiny, with ``save_pretrained`` (BERT with its masked-LM head, RoBERTa,
DistilBERT, ELECTRA, GPT-2 with its LM head) and a tokenizer trained on a few sentences; nothing is downloaded:
a socket guard fails any test that opens a network connection.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from cli_checks import assert_one_line_error, global_step, logged_losses, run_cli
from conftest import cache_model, damaged_copies
from selfsup import api
from selfsup.encoders import build_encoder
from selfsup.heads import TokenPredictionHead
from selfsup.modalities.text.tokenizer import load_tokenizer, token_spec, train_tokenizer
from selfsup.pretext.tokens import mlm_mask
from selfsup.registry import get_method

TOPICS = ("the cat sat on a warm mat near the door".split(), "dogs ran in the green park after rain".split())
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 128}


pytestmark = pytest.mark.usefixtures("no_network")  # conftest: any connection fails the test


def write_text_task(root: Path) -> list[str]:
    """``root/corpus.txt`` (240 unlabeled sentences of two topics) and labeled ``train.tsv`` (40) / ``test.tsv`` (20);
    returns the corpus."""
    texts = [t for _, t in sentences(240, seed=0)]
    (root / "corpus.txt").write_text("\n".join(texts) + "\n")
    for name, n, seed in (("train.tsv", 40, 1), ("test.tsv", 20, 2)):
        (root / name).write_text("".join(f"{'ab'[y]}\t{t}\n" for y, t in sentences(n, seed)))
    return texts


def sentences(n: int, seed: int) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    return [(i % 2, " ".join(rng.choice(TOPICS[i % 2]) for _ in range(7))) for i in range(n)]


def gpt2_tokenizer(texts: list[str]) -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer like GPT-2's: <|endoftext|> only, no pad, mask or unk token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>")


def train_mlm(model: transformers.BertForMaskedLM, tok, texts: list[str], steps: int = 80) -> None:
    """A few steps of masked-LM training, so the checkpoint's head knows the corpus (a fresh head does not)."""
    batch = tok(texts, padding=True, return_tensors="pt")
    spec = token_spec(tok)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        ids, labels = mlm_mask(batch["input_ids"], batch["attention_mask"], mask_token_id=spec.mask_token_id,
                               vocab_size=spec.vocab_size, special_ids=spec.special_ids, generator=generator)
        loss = model(input_ids=ids, attention_mask=batch["attention_mask"], labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """A corpus, labeled splits and one tiny checkpoint folder per family."""
    root = tmp_path_factory.mktemp("text_init")
    texts = write_text_task(root)
    wordpiece = train_tokenizer(texts, vocab_size=120, min_frequency=1)
    torch.manual_seed(0)
    pad = {"pad_token_id": wordpiece.pad_token_id}
    made = {
        "bert": transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=len(wordpiece), **TINY, **pad)),
        "roberta": transformers.RobertaModel(transformers.RobertaConfig(
            vocab_size=len(wordpiece), **{**TINY, "max_position_embeddings": 130}, **pad)),
        "distilbert": transformers.DistilBertModel(transformers.DistilBertConfig(
            vocab_size=len(wordpiece), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128,
            **pad)),
        "electra": transformers.ElectraModel(transformers.ElectraConfig(
            vocab_size=len(wordpiece), embedding_size=16, **TINY, **pad)),
    }
    train_mlm(made["bert"], wordpiece, texts)
    folders = {"root": root}
    for name, model in made.items():
        folders[name] = root / name
        model.save_pretrained(folders[name])
        wordpiece.save_pretrained(folders[name])
    bpe = gpt2_tokenizer(texts)
    gpt = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(bpe), n_embd=32, n_layer=2, n_head=2,
                                                               n_positions=128, bos_token_id=bpe.bos_token_id,
                                                               eos_token_id=bpe.eos_token_id))
    folders["gpt2"] = root / "gpt2"
    gpt.save_pretrained(folders["gpt2"])
    bpe.save_pretrained(folders["gpt2"])
    return folders


def source_embeddings(folder: Path, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What a transformers user computes: AutoModel's last hidden states, mean-pooled over the attention mask."""
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    ids = ids.where(ids < model.get_input_embeddings().num_embeddings, 0)  # added tokens: masked positions only
    with torch.no_grad():
        states = model(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).float()
    return (states * weights).sum(1) / weights.sum(1)


def encode(tok, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tok(texts, padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "electra", "gpt2"])
def test_encoder_from_checkpoint_embeds_as_the_source_model(ws, family, capfd):
    tok = load_tokenizer(ws[family])
    capfd.readouterr()
    encoder = build_encoder({"name": "hf_text", "source": str(ws[family]), **token_spec(tok).to_dict()}).eval()
    printed = "".join(capfd.readouterr())
    assert "UNEXPECTED" not in printed and "Loading weights" not in printed  # no transformers load report
    assert encoder.causal == (family == "gpt2")
    assert type(encoder.hf_model).__name__ == type(transformers.AutoModel.from_pretrained(
        str(ws[family]), local_files_only=True)).__name__  # the checkpoint's architecture, not a preset
    ids, mask = encode(tok, ["the cat sat on a mat", "dogs ran in the green park after rain"])
    with torch.no_grad():
        ours = encoder.embed({"input_ids": ids, "attention_mask": mask})
    torch.testing.assert_close(ours, source_embeddings(ws[family], ids, mask), rtol=1e-5, atol=1e-5)
    scratch = build_encoder({**encoder.config, "pretrained": False}).eval()
    with torch.no_grad():
        assert not torch.allclose(scratch.embed({"input_ids": ids, "attention_mask": mask}), ours)


def test_gpt2_tokenizer_gets_pad_and_mask_and_the_embeddings_grow(ws):
    tok = load_tokenizer(ws["gpt2"])
    source_rows = transformers.AutoConfig.from_pretrained(str(ws["gpt2"])).vocab_size
    assert len(tok) > source_rows and tok.pad_token_id >= source_rows
    encoder = build_encoder({"name": "hf_text", "source": str(ws["gpt2"]), **token_spec(tok).to_dict()})
    assert encoder.input_embeddings.num_embeddings == len(tok)
    assert encoder.lm_head().weight is encoder.input_embeddings.weight  # GPT-2's tied LM head, resized with it


def masked_batch(tok, texts, seed=0):
    ids, mask = encode(tok, texts)
    spec = token_spec(tok)
    masked, labels = mlm_mask(ids, mask, mask_token_id=spec.mask_token_id, vocab_size=spec.vocab_size,
                              special_ids=spec.special_ids, rate=0.3, generator=torch.Generator().manual_seed(seed))
    return {"input_ids": masked, "attention_mask": mask, "labels": labels}


def test_mlm_continues_with_the_checkpoints_own_head(ws):
    tok = load_tokenizer(ws["bert"])
    config = {"name": "hf_text", "source": str(ws["bert"]), **token_spec(tok).to_dict()}
    mlm = get_method("mlm", "text").cls
    method = mlm(build_encoder(config), 128).eval()
    batch = masked_batch(tok, [t for _, t in sentences(32, seed=5)])
    source = transformers.BertForMaskedLM.from_pretrained(str(ws["bert"]), local_files_only=True).eval()
    fresh = mlm(build_encoder(config), 128).eval()
    fresh.head = TokenPredictionHead(fresh.encoder.input_embeddings)  # what mlm used before --init existed
    with torch.no_grad():
        ours, theirs = method.loss(batch).loss, source(**batch).loss
        assert float(ours) < float(fresh.loss(batch).loss) - 1.0  # the checkpoint's head knows the corpus
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)  # the same head: the same loss


def test_pretrain_from_init_then_evaluate_embed_and_export(ws, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(["pretrain", ws["root"] / "corpus.txt", "--modality", "text", "--method", "mlm",
                              "--init", ws["bert"], "--out", run, "--epochs", "6", "--batch-size", "32",
                              "--set", "optim.lr=0.003", "--no-progress"])
    assert code == 0, err
    assert "Loading weights" not in err
    losses = logged_losses(run)
    assert losses[-1] < losses[0]  # continued training lowers the loss
    assert losses[0] < 3.0  # and starts from the checkpoint's head (a fresh one starts near ln(vocab) ≈ 4.7)
    steps = global_step(run)
    code, out, err = run_cli(["pretrain", ws["root"] / "corpus.txt", "--modality", "text", "--method", "mlm",
                              "--init", ws["bert"], "--out", run, "--epochs", "7", "--batch-size", "32",
                              "--no-progress"])
    assert code == 0 and global_step(run) > steps, err  # the same command with more epochs resumes

    code, out, err = run_cli(["evaluate", run, "--train", ws["root"] / "train.tsv", "--test",
                              ws["root"] / "test.tsv", "--protocol", "linear,finetune", "--label-fractions", "1.0",
                              "--finetune-steps", "3", "--baseline", "init,scratch,tfidf"])
    assert code == 0, err
    assert "gain_init" in out.splitlines()[-4]  # the table's header: the run against its starting checkpoint
    rows = json.loads((run / "eval.json").read_text())
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert {r["encoder"] for r in rows} == {"pretrained", "init", "scratch", "tfidf"}
    assert {r["protocol"] for r in rows if r["encoder"] == "init"} == {"linear", "finetune"}

    texts = [t for _, t in sentences(6, seed=9)]
    (tmp_path / "few.txt").write_text("\n".join(texts) + "\n")
    embedded = np.load(api.embed(run, tmp_path / "few.txt", tmp_path / "e.npy"))
    exported = api.export(run, tmp_path / "hf", format="huggingface")
    model = transformers.AutoModel.from_pretrained(str(exported), local_files_only=True).eval()
    assert type(model).__name__ == "BertModel"  # the source's architecture
    tok = transformers.AutoTokenizer.from_pretrained(str(exported), local_files_only=True)
    ids, mask = encode(tok, texts)
    torch.testing.assert_close(source_embeddings(exported, ids, mask), torch.from_numpy(embedded),
                               rtol=1e-4, atol=1e-4)
    reloaded = api.load(exported)  # selfsup reads its own huggingface export back
    assert reloaded.config["source"] == str(ws["bert"])


def test_run_with_zero_learning_rate_embeds_as_the_source(ws, tmp_path):
    """The whole pipeline (tokenizer copy, encoder config, checkpoint, reload) keeps the source's embeddings."""
    run = tmp_path / "run"
    api.pretrain(ws["root"] / "corpus.txt", "mlm", run, modality="text", init=ws["roberta"], max_steps=2,
                 batch_size=16, overrides={"optim.lr": 0.0}, progress_bar=False)
    texts = [t for _, t in sentences(5, seed=3)]
    (tmp_path / "few.txt").write_text("\n".join(texts) + "\n")
    embedded = torch.from_numpy(np.load(api.embed(run, tmp_path / "few.txt", tmp_path / "e.npy")))
    ids, mask = encode(load_tokenizer(ws["roberta"]), texts)
    torch.testing.assert_close(embedded, source_embeddings(ws["roberta"], ids, mask), rtol=1e-4, atol=1e-4)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{i % 5}\t{a}\t{b}\n" for i, ((_, a), (_, b)) in
                             enumerate(zip(sentences(12, seed=6), sentences(12, seed=7)))))
    rows = api.evaluate(run, test=pairs, protocols=["similarity"], baseline="init,scratch")
    scores = {r.encoder: r.value for r in rows}
    assert set(scores) == {"pretrained", "init", "scratch"}
    assert scores["init"] == pytest.approx(scores["pretrained"])  # lr 0: the run is still its checkpoint


def test_clm_continues_gpt2_with_its_lm_head_and_exports(ws, tmp_path):
    run = tmp_path / "run"
    api.pretrain(ws["root"] / "corpus.txt", "clm", run, modality="text", init=ws["gpt2"], epochs=6,
                 batch_size=32, overrides={"optim.lr": 0.003}, progress_bar=False)
    losses = logged_losses(run)
    assert losses[-1] < losses[0]
    texts = [t for _, t in sentences(4, seed=4)]
    (tmp_path / "few.txt").write_text("\n".join(texts) + "\n")
    embedded = torch.from_numpy(np.load(api.embed(run, tmp_path / "few.txt", tmp_path / "e.npy")))
    exported = api.export(run, tmp_path / "hf", format="huggingface")
    tok = transformers.AutoTokenizer.from_pretrained(str(exported), local_files_only=True)
    ids, mask = encode(tok, texts)
    assert type(transformers.AutoModel.from_pretrained(str(exported))).__name__ == "GPT2Model"
    torch.testing.assert_close(source_embeddings(exported, ids, mask), embedded, rtol=1e-4, atol=1e-4)


def pretrain_argv(ws, init, *extra) -> list:
    return ["pretrain", ws["root"] / "corpus.txt", "--modality", "text", "--init", init, "--out",
            ws["root"] / "never", *extra]


def test_init_mistakes_are_one_line(ws, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    vit, wav = tmp_path / "vit", tmp_path / "wav"
    transformers.ViTConfig().save_pretrained(vit)
    transformers.Wav2Vec2Config().save_pretrained(wav)
    (tmp_path / "file.bin").write_bytes(b"x")
    cases = [
        (tmp_path / "missing", ("missing", "no such folder")),
        (empty, ("no config.json",)),
        (tmp_path / "file.bin", ("is a file",)),
        (vit, ("'vit' is not a text model", "--modality image")),
        (wav, ("'wav2vec2' is not a text model", "--modality audio")),
        ("nobody-here/no-such-model", ("not in the local Hugging Face cache", "hf download nobody-here/no-such-model",
                                       "--init DIR")),
    ]
    for source, fragments in cases:
        assert_one_line_error(*run_cli(pretrain_argv(ws, source))[::2], *fragments)
    assert_one_line_error(*run_cli(pretrain_argv(ws, ws["bert"], "--encoder", "bert_tiny"))[::2],
                          "leave out --encoder bert_tiny")
    assert_one_line_error(*run_cli(pretrain_argv(ws, ws["bert"], "--tokenizer", "bpe"))[::2],
                          "brings its own tokenizer", "leave out --tokenizer bpe")
    assert_one_line_error(*run_cli(pretrain_argv(ws, ws["bert"], "--max-length", "512", "--max-steps", "1"))[::2],
                          "max_length 512 exceeds the 128 positions", "--max-length 128")
    code, _, err = run_cli(["pretrain", ws["root"], "--init", ws["bert"], "--out", tmp_path / "img"])
    assert_one_line_error(code, err, "'bert' is not an image model", "--modality text")
    assert not (ws["root"] / "never").exists()  # every mistake above is caught before anything is written
    code, _, err = run_cli(["pretrain", ws["root"] / "corpus.txt", "--modality", "text", "--init", ws["gpt2"],
                            "--method", "mlm", "--out", tmp_path / "gpt-mlm", "--max-steps", "1", "--no-progress"])
    assert_one_line_error(code, err, "mlm needs a bidirectional text encoder", "is causal", "--method clm")
    # weights that do not fit the config beside them, and a folder without weights: found when the encoder is built
    reshaped, unweighted = damaged_copies(ws["bert"], tmp_path)
    for folder, fragments in ((reshaped, ("do not fit the architecture", "(64,) saved, (48,) expected")),
                              (unweighted, ("cannot be loaded", "no file named model.safetensors"))):
        code, _, err = run_cli(["pretrain", ws["root"] / "corpus.txt", "--modality", "text", "--init", folder,
                                "--out", tmp_path / f"run-{folder.name}", "--max-steps", "1", "--no-progress"])
        assert_one_line_error(code, err, str(folder), *fragments)


def test_baseline_init_needs_a_run_from_a_checkpoint(ws, tmp_path):
    run = tmp_path / "run"
    api.pretrain(ws["root"] / "corpus.txt", "mlm", run, modality="text", encoder="bert_tiny", max_steps=1,
                 batch_size=16, vocab_size=100, progress_bar=False)
    code, _, err = run_cli(["evaluate", run, "--train", ws["root"] / "train.tsv", "--test", ws["root"] / "test.tsv",
                            "--baseline", "init"])
    assert_one_line_error(code, err, "--baseline init needs a run that started from a checkpoint", "--init")


def test_model_id_resolves_from_the_local_cache_only(ws, tmp_path, monkeypatch):
    """An ``org/name`` id is read from the Hugging Face cache (never downloaded) and recorded as the id."""
    cache_model(ws["bert"], "local/tiny-bert", tmp_path / "hub", monkeypatch)
    run = tmp_path / "run"
    api.pretrain(ws["root"] / "corpus.txt", "mlm", run, modality="text", init="local/tiny-bert", max_steps=1,
                 batch_size=16, progress_bar=False)
    assert api.load(run).config["source"] == "local/tiny-bert"
    assert (run / "tokenizer" / "tokenizer.json").exists()  # the checkpoint's own tokenizer, copied
    assert load_tokenizer(run / "tokenizer").get_vocab() == load_tokenizer(ws["bert"]).get_vocab()
