"""``selfsup evaluate --protocol translation`` and ``selfsup translate``: a bart run fine-tuned on a few hundred pairs
of a synthetic language (a word-by-word dictionary that also swaps adjective and noun) translates far above chance;
warm-started encoder-decoders carry the run's weights; the scores are sacrebleu's; the saved model loads with
``AutoModelForSeq2SeqLM`` and ``translate`` reproduces the evaluation's decode; mistakes get one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

import selfsup
from selfsup.encoders import build_encoder
from selfsup.errors import SelfSupError
from selfsup.evaluation.downstream import check_request
from selfsup.modalities.text.pairs import read_pairs
from selfsup.modalities.text.seq2seq import seq2seq_model
from selfsup.modalities.text.tokenizer import token_spec, train_tokenizer
from selfsup.modalities.text.translation import translation_scores

from cli_checks import assert_one_line_error, run_cli

ADJ = {"red": "rot", "big": "gross", "small": "klein", "blue": "blau", "old": "alt", "green": "gruen"}
NOUN = {"cat": "katze", "dog": "hund", "man": "mann", "house": "haus", "tree": "baum", "bird": "vogel"}
VERB = {"sees": "sieht", "likes": "mag", "finds": "findet"}


def pair(rng: random.Random) -> tuple[str, str]:
    """``the ADJ NOUN VERB the ADJ NOUN`` -> ``der NOUN ADJ VERB den NOUN ADJ`` (adjective after the noun)."""
    a1, n1, v, a2, n2 = (rng.choice(list(d)) for d in (ADJ, NOUN, VERB, ADJ, NOUN))
    return (f"the {a1} {n1} {v} the {a2} {n2}",
            f"der {NOUN[n1]} {ADJ[a1]} {VERB[v]} den {NOUN[n2]} {ADJ[a2]}")


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    return path


@pytest.fixture(scope="module")
def language(tmp_path_factory) -> dict[str, Path]:
    """Train (300) and test (40) pairs, and unpaired monolingual text of both sides for pretraining."""
    root = tmp_path_factory.mktemp("mt")
    rng = random.Random(0)
    mono = [pair(rng) for _ in range(400)]
    (root / "mono.txt").write_text("".join(f"{s}\n" for s, _ in mono[:200]) + "".join(f"{t}\n" for _, t in mono[200:]))
    return {"train": write_tsv(root / "train.tsv", [pair(rng) for _ in range(300)]),
            "test": write_tsv(root / "test.tsv", [pair(rng) for _ in range(40)]), "mono": root / "mono.txt",
            "root": root}


@pytest.fixture(scope="module")
def evaluated(language) -> dict:
    torch.manual_seed(0)
    run = language["root"] / "run"
    selfsup.pretrain(language["mono"], method="bart", out=run, modality="text", max_steps=30, batch_size=32,
                     vocab_size=60, max_length=24, progress_bar=False)
    saved = language["root"] / "finetuned"
    results = selfsup.evaluate(run, language["train"], language["test"], protocols=["translation"],
                               label_fractions=[1.0], baseline="none", finetune_steps=200, save_finetuned=saved)
    return {"run": run, "saved": saved, "results": results}


def test_translation_far_above_chance_and_json_shape(evaluated, language):
    rows = {(r.encoder, r.metric): r for r in evaluated["results"]}
    assert set(rows) == {("pretrained", "bleu"), ("pretrained", "chrf")}
    references = [line.split("\t")[1] for line in language["test"].read_text().splitlines()]
    chance = translation_scores(references[1:] + references[:1], references)  # another sentence of the language
    assert rows[("pretrained", "bleu")].value > chance["bleu"] + 40, (rows, chance)
    assert rows[("pretrained", "chrf")].value > chance["chrf"] + 25, (rows, chance)
    assert rows[("pretrained", "bleu")].n_labels == 300 and rows[("pretrained", "bleu")].label_fraction == 1.0
    data = json.loads((evaluated["run"] / "eval.json").read_text())
    row = next(r for r in data["results"] if r["encoder"] == "pretrained" and r["metric"] == "bleu")
    assert set(row) == {"protocol", "label_fraction", "n_labels", "encoder", "metric", "value"}
    assert row["protocol"] == "translation" and row["value"] == pytest.approx(rows[("pretrained", "bleu")].value)


def test_saved_model_loads_and_translate_reproduces_the_decode(evaluated, language, tmp_path):
    import transformers

    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(evaluated["saved"], local_files_only=True)
    assert type(model).__name__ == "BartForConditionalGeneration"
    transformers.AutoTokenizer.from_pretrained(evaluated["saved"], local_files_only=True)
    sources = tmp_path / "sources.txt"
    lines = language["test"].read_text().splitlines()
    sources.write_text("".join(line.split("\t")[0] + "\n" for line in lines))
    out = tmp_path / "out.txt"
    code, _, err = run_cli(["translate", evaluated["saved"], "--input", sources, "--out", out])
    assert code == 0, err
    translations = out.read_text().splitlines()
    assert len(translations) == len(lines)
    scores = translation_scores(translations, [line.split("\t")[1] for line in lines])
    bleu = next(r.value for r in evaluated["results"] if r.encoder == "pretrained" and r.metric == "bleu")
    assert scores["bleu"] == pytest.approx(bleu, abs=1e-6)  # the very decode the evaluation scored
    assert_one_line_error(*run_cli(["translate", evaluated["run"], "--input", sources])[::2], "--save-finetuned")
    assert_one_line_error(*run_cli(["translate", evaluated["saved"], "--input", tmp_path / "no.txt"])[::2],
                          "no.txt: no such file")


def _tokenizer():
    rng = random.Random(1)
    return train_tokenizer([t for _ in range(100) for t in pair(rng)], vocab_size=60, min_frequency=1)


@pytest.mark.parametrize("name,decoder_base", [("bert_tiny", "bert"), ("gpt_tiny", "transformer")])
def test_encoder_only_runs_warm_start_an_encoder_decoder(name, decoder_base):
    """BERT2BERT (Rothe et al. 2020): encoder AND decoder start from the run's weights, cross-attention is new; a causal
    run warm-starts the decoder only."""
    tokenizer = _tokenizer()
    encoder = build_encoder({"name": name, **token_spec(tokenizer).to_dict(), "max_length": 24})
    model = seq2seq_model(encoder)
    assert type(model).__name__ == "EncoderDecoderModel"
    source = encoder.hf_model.state_dict()
    decoder = getattr(model.decoder, decoder_base).state_dict()
    shared = [key for key in source if key in decoder]
    assert len(shared) == len(source)
    assert all(torch.equal(source[key], decoder[key]) for key in shared)
    assert any("cross" in key for key in decoder)
    encoder_half = model.encoder.state_dict()
    if name == "bert_tiny":
        assert all(torch.equal(source[key], encoder_half[key]) for key in source)
    else:  # a fresh BERT as wide as the GPT-2
        assert model.encoder.config.hidden_size == encoder.dim
    assert model.generation_config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.generation_config.eos_token_id == tokenizer.sep_token_id


def test_bart_run_keeps_its_decoder():
    tokenizer = _tokenizer()
    encoder = build_encoder({"name": "bart_tiny", **token_spec(tokenizer).to_dict(), "max_length": 24})
    model = seq2seq_model(encoder)
    assert type(model).__name__ == "BartForConditionalGeneration" and model is not encoder.hf_model
    for key, value in encoder.hf_model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])


def test_sacrebleu_values_on_hand_made_strings():
    same = translation_scores(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}
    # precisions 5/6, 3/5, 1/4 and no 4-gram (sacrebleu's exp smoothing: (1/2)/3); no brevity penalty
    expected = 100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert translation_scores(["the cat is on the mat"], ["the cat sat on the mat"])["bleu"] == pytest.approx(expected,
                                                                                                           abs=0.01)
    assert translation_scores(["xyz"], ["the cat sat on the mat"])["chrf"] < 5


def test_pairs_files_and_their_one_line_errors(tmp_path):
    tsv = write_tsv(tmp_path / "p.tsv", [("a b", "c d"), ("e", "f")])
    assert read_pairs(tsv).sources == ["a b", "e"]
    (tmp_path / "a.en").write_text("one\ntwo\n\n")
    (tmp_path / "a.de").write_text("eins\nzwei\n\n")
    assert read_pairs(f"{tmp_path / 'a.en'},{tmp_path / 'a.de'}").targets == ["eins", "zwei"]
    (tmp_path / "bad.tsv").write_text("a\tb\nonly a source\n")
    (tmp_path / "b.de").write_text("eins\n\n")
    (tmp_path / "c.de").write_text("eins\nzwei\ndrei\n")
    (tmp_path / "d.en").write_text("one\ntwo\n")
    for spec, message in [(tmp_path / "bad.tsv", r"bad.tsv:2: no TAB"),
                          (f"{tmp_path / 'd.en'},{tmp_path / 'b.de'}", r"b.de:2: empty line"),
                          (f"{tmp_path / 'd.en'},{tmp_path / 'c.de'}", "2 lines against 3"),
                          (f"{tmp_path / 'd.en'},{tmp_path / 'missing.de'}", "missing.de: no such file"),
                          (tmp_path / "none.tsv", "none.tsv: no such file")]:
        with pytest.raises(SelfSupError, match=message) as info:
            read_pairs(spec)
        assert "\n" not in str(info.value)


def test_translation_is_refused_for_other_modalities():
    with pytest.raises(SelfSupError, match="--protocol translation: not available for image data"):
        check_request("image", ["translation"], ["scratch"], "a.tsv", "b.tsv")


def test_label_fractions_of_pairs_are_nested():
    from selfsup.evaluation.subsets import nested_subset

    small, large = nested_subset(1000, 0.01, seed=3), nested_subset(1000, 0.1, seed=3)
    assert len(small) == 10 and len(large) == 100 and set(small.tolist()) <= set(large.tolist())
    assert torch.equal(nested_subset(1000, 0.1, seed=3), large) and len(nested_subset(5, 0.01, seed=0)) == 1


def test_a_run_from_an_init_bert_translates_against_init_and_scratch(language, tmp_path):
    """An ``--init`` BERT checkpoint run becomes a BERT2BERT model; ``init`` fine-tunes the checkpoint itself."""
    import transformers

    tokenizer = _tokenizer()
    torch.manual_seed(0)
    bert = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id))
    checkpoint = tmp_path / "bert"
    bert.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    run = tmp_path / "run"
    selfsup.pretrain(language["mono"], method="mlm", out=run, modality="text", max_steps=2, batch_size=16,
                     max_length=24, init=checkpoint, progress_bar=False)
    results = selfsup.evaluate(run, language["train"], language["test"], protocols=["translation"],
                               label_fractions=[0.1], baseline="scratch,init", finetune_steps=3)
    assert {(r.encoder, r.metric) for r in results} == {(e, m) for e in ("pretrained", "init", "scratch")
                                                        for m in ("bleu", "chrf")}
    assert all(r.n_labels == 30 and 0 <= r.value <= 100 for r in results)
