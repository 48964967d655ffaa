"""Language tags for multilingual text (mBART, Liu et al. 2020): ``data.languages=en,de`` gives every text its
language's tag (from the file name, a record field, or a tag the text already has), the tags are special tokens of
the run's tokenizer that no pretext masks, and translation puts the source tag on the sources and forces the target
tag as the decoder's first token; directions come from aligned file names or a tsv header."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

import selfsup
from selfsup.config import DataConfig
from selfsup.errors import SelfSupError
from selfsup.modalities.text.languages import (LanguageTags, add_language_tokens, language_tag, parse_languages,
                                               tokenizer_languages)
from selfsup.modalities.text.pairs import read_pairs
from selfsup.modalities.text.readers import find_text_files, iter_texts
from selfsup.modalities.text.tokenizer import load_tokenizer, token_spec, train_tokenizer
from selfsup.pretext.bart_noise import bart_noise
from selfsup.pretext.tokens import mlm_mask

from cli_checks import assert_one_line_error, run_cli
from test_translation import pair  # the synthetic language: adjectives follow their noun in the 'German'

TAGS = LanguageTags(("en", "de"))


def test_language_of_a_text_from_tag_field_or_file(tmp_path):
    assert TAGS.of_path(tmp_path / "train.de") == "de" and TAGS.of_path(tmp_path / "news.en.txt") == "en"
    assert TAGS.of_path(tmp_path / "de" / "part-1.txt") == "de" and TAGS.of_path(tmp_path / "notes.txt") is None
    assert TAGS.apply("ein hund", "de", "f:1") == "__de__ ein hund"
    assert TAGS.apply("__en__ a dog", "de", "f:1") == "__en__ a dog"  # a text's own tag wins
    with pytest.raises(SelfSupError, match=r"f:3: no language among data.languages=en,de.*train.en"):
        TAGS.apply("a dog", None, "f:3")
    with pytest.raises(SelfSupError, match=r"f:4: language 'fr' is not in data.languages=en,de"):
        TAGS.apply("un chien", "fr", "f:4")
    assert parse_languages(" en, de ,en") == ("en", "de") and parse_languages("") == ()
    with pytest.raises(SelfSupError, match="'e n' is not a language code"):
        parse_languages("e n,de")


def test_reading_tags_every_text_and_finds_language_files(tmp_path):
    data = tmp_path / "corpus"
    (data / "fr").mkdir(parents=True)
    (data / "mono.en").write_text("a dog\n\n__de__ schon markiert\n")
    (data / "mono.de").write_text("ein hund\n")
    (data / "mixed.jsonl").write_text(json.dumps({"text": "un chien", "language": "FR"}) + "\n"
                                      + json.dumps({"text": "no field"}) + "\n")
    (data / "rows.csv").write_text("text,language\na cat,en\n")
    (data / "fr" / "part.txt").write_text("un chat\n")
    tags = LanguageTags(("en", "de", "fr"))
    assert [f.name for f in find_text_files(data)] == ["part.txt", "mixed.jsonl", "rows.csv"]  # .en/.de: not text
    files = find_text_files(data, tags)
    assert sorted(f.name for f in files) == ["mixed.jsonl", "mono.de", "mono.en", "part.txt", "rows.csv"]
    with pytest.raises(SelfSupError, match=r"mixed.jsonl:2: no language among data.languages=en,de,fr"):
        list(iter_texts(files, tags=tags))
    (data / "mixed.jsonl").write_text(json.dumps({"text": "un chien", "language": "FR"}) + "\n")
    assert sorted(iter_texts(files, tags=tags)) == sorted(
        ["__fr__ un chat", "__fr__ un chien", "__de__ ein hund", "__en__ a dog", "__de__ schon markiert",
         "__en__ a cat"])
    assert LanguageTags.from_settings(DataConfig()) is None
    assert LanguageTags.from_settings({"languages": "en,de", "language_field": "lang"}) == LanguageTags(("en", "de"), "lang")


def test_tags_are_special_tokens_of_a_trained_or_loaded_tokenizer(tmp_path):
    rng = random.Random(0)
    texts = [TAGS.apply(text, language, "t") for _ in range(100)
             for text, language in zip(pair(rng), ("en", "de"))]
    tokenizer = train_tokenizer(texts, vocab_size=80, min_frequency=1, extra_special_tokens=TAGS.tokens)
    assert tokenizer_languages(tokenizer) == {"en": 5, "de": 6}
    ids = tokenizer("__de__ Hund")["input_ids"]
    assert ids[:2] == [tokenizer.cls_token_id, 6]  # one token, not lowercased or split by the normaliser
    spec = token_spec(tokenizer)
    assert spec.language_ids == (5, 6) and {5, 6} <= set(spec.special_ids)
    assert type(spec).from_dict(spec.to_dict()) == spec
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert add_language_tokens(loaded, LanguageTags(("en", "fr"))) == ["__fr__"]
    assert tokenizer_languages(loaded) == {"en": 5, "de": 6, "fr": len(loaded) - 1}
    assert loaded("__fr__ x")["input_ids"][1] == len(loaded) - 1
    monolingual = train_tokenizer(texts, vocab_size=80, min_frequency=1)
    assert tokenizer_languages(monolingual) == {} and "language_ids" not in token_spec(monolingual).to_dict()


def test_no_pretext_masks_or_moves_a_tag():
    """BART's infilling and permutation keep [CLS] and the tag in front; mlm never masks a tag."""
    cls, sep, pad, mask, en, de = 2, 3, 0, 4, 5, 6
    generator = torch.Generator().manual_seed(0)
    rows = [[cls, en if i % 2 else de] + list(range(10, 10 + 12 + i % 5)) + [sep] for i in range(64)]
    width = max(map(len, rows))
    ids = torch.tensor([row + [pad] * (width - len(row)) for row in rows])
    attention = (ids != pad).long()
    ends = torch.zeros_like(ids, dtype=torch.bool)
    ends[:, 6] = True  # two "sentences" per text: permutation is exercised
    for _ in range(20):
        noisy, _ = bart_noise(ids, attention, ends, mask_token_id=mask, pad_token_id=pad,
                              special_ids=(pad, 1, cls, sep, mask, en, de), rate=0.3, lam=3.0, generator=generator)
        assert torch.equal(noisy[:, :2], ids[:, :2])  # [CLS] and its tag, untouched
        assert bool((noisy == mask).any(dim=1).all())  # while the content behind them is infilled
    inputs, labels = mlm_mask(ids, attention, mask_token_id=mask, vocab_size=40,
                                 special_ids=(pad, 1, cls, sep, mask, en, de), rate=0.5, generator=generator)
    assert torch.equal(inputs[:, 1], ids[:, 1]) and bool((labels[:, 1] == -100).all())


def test_pairs_name_their_direction(tmp_path):
    (tmp_path / "a.en").write_text("a dog\n")
    (tmp_path / "a.de").write_text("ein hund\n")
    (tmp_path / "p.tsv").write_text("de\ten\nein hund\ta dog\n")
    assert read_pairs(f"{tmp_path}/a.en,{tmp_path}/a.de", tags=TAGS).languages == ("en", "de")
    tsv = read_pairs(tmp_path / "p.tsv", tags=TAGS)
    assert tsv.languages == ("de", "en") and tsv.sources == ["ein hund"]
    untagged = read_pairs(tmp_path / "p.tsv")  # a run without tags reads the header row as a pair
    assert untagged.languages == (None, None) and untagged.sources == ["de", "ein hund"]


@pytest.fixture(scope="module")
def tagged_run(tmp_path_factory) -> dict[str, Path]:
    """A bart run pretrained on unpaired English and German files (``mono.en``, ``mono.de``) with tags, and pairs."""
    root = tmp_path_factory.mktemp("tags")
    rng = random.Random(0)
    mono = [pair(rng) for _ in range(300)]
    (root / "mono").mkdir()
    (root / "mono" / "mono.en").write_text("".join(s + "\n" for s, _ in mono[:150]))
    (root / "mono" / "mono.de").write_text("".join(t + "\n" for _, t in mono[150:]))
    train = [pair(rng) for _ in range(300)]
    (root / "train.en").write_text("".join(s + "\n" for s, _ in train))
    (root / "train.de").write_text("".join(t + "\n" for _, t in train))
    test = [pair(rng) for _ in range(30)]
    (root / "test.tsv").write_text("en\tde\n" + "".join(f"{s}\t{t}\n" for s, t in test))
    torch.manual_seed(0)
    selfsup.pretrain(root / "mono", method="bart", out=root / "run", modality="text", max_steps=10, batch_size=32,
                     vocab_size=80, max_length=32, progress_bar=False, overrides={"data.languages": "en,de"})
    return {"root": root, "run": root / "run", "train": Path(f"{root}/train.en,{root}/train.de"),
            "test": root / "test.tsv"}


def test_a_tagged_run_translates_with_its_tags(tagged_run, tmp_path):
    from selfsup.modalities.text.translation import load_translation_model

    run = tagged_run["run"]
    tokenizer = load_tokenizer(run / "tokenizer")
    tags = tokenizer_languages(tokenizer)
    assert set(tags) == {"en", "de"}
    saved = tmp_path / "mt"
    lines: list[str] = []
    results = selfsup.evaluate(run, tagged_run["train"], tagged_run["test"], protocols=["translation"],
                               label_fractions=[1.0], baseline="none", finetune_steps=200, save_finetuned=saved,
                               progress=lines.append)
    assert any("en→de: language tags __en__ on the sources, __de__ starting the targets" in line for line in lines)
    bleu = next(r.value for r in results if r.metric == "bleu")
    assert bleu > 40, (bleu, lines[-3:])  # the word-by-word language is learnt with the tags in place
    record = json.loads((saved / "selfsup_translation.json").read_text())
    assert (record["source_language"], record["target_language"], record["encoder"]) == ("en", "de", "pretrained")
    model, tok, _, source = load_translation_model(saved)
    assert source == "en" and model.generation_config.forced_bos_token_id == tags["de"]
    sources = tok([f"{language_tag('en')} dog sees cat"], return_tensors="pt")
    out = model.generate(**sources, num_beams=2, max_new_tokens=10)
    assert out[0, 0] == tok.cls_token_id and out[0, 1] == tags["de"]  # the decoder writes the target's tag first
    (tmp_path / "in.txt").write_text("the red dog sees the big cat\n")
    code, stdout, err = run_cli(["translate", saved, "--input", tmp_path / "in.txt"])
    assert code == 0 and "__" not in stdout and stdout.strip(), (stdout, err)


def test_a_tagged_run_needs_the_direction(tagged_run, tmp_path):
    untagged = tmp_path / "pairs.tsv"
    untagged.write_text("the red dog sees the big cat\tder hund rot sieht den katze gross\n")
    code, _, err = run_cli(["evaluate", tagged_run["run"], "--protocol", "translation", "--train", untagged,
                            "--test", tagged_run["test"]])
    assert_one_line_error(code, err, "pretrained with language tags (en, de)")
    reverse = tmp_path / "reverse.tsv"
    reverse.write_text("de\ten\nhund sieht katze\tthe red dog sees the big cat\n")
    code, _, err = run_cli(["evaluate", tagged_run["run"], "--protocol", "translation", "--train",
                            tagged_run["train"], "--test", reverse])
    assert_one_line_error(code, err, "--train translates en→de but --test de→en")
    code, _, err = run_cli(["pretrain", tagged_run["root"] / "mono", "--modality", "text", "--method", "bart",
                            "--out", tmp_path / "bad", "--set", "data.languages=e n"])
    assert_one_line_error(code, err, "data.languages")


@pytest.mark.parametrize("name", ["bert_tiny", "bart_tiny"])
def test_init_from_a_run_without_tags_grows_the_vocabulary(name):
    """``--init RUN --set data.languages=...``: the run's tokenizer gains the tags, so every vocabulary-sized table
    of the stored weights keeps its rows and grows new ones at their mean; anything else still has to fit."""
    from selfsup.encoders import build_encoder

    stored = build_encoder({"name": name, "vocab_size": 40, "max_length": 16})
    grown = build_encoder({"name": name, "vocab_size": 42, "max_length": 16, "language_ids": [40, 41]})
    state = grown.fit_stored({k: v.detach() for k, v in stored.state_dict().items()})
    grown.load_state_dict(state, strict=True)
    old, new = stored.input_embeddings.weight, grown.input_embeddings.weight
    assert torch.equal(new[:40], old) and torch.allclose(new[40:], old.mean(0, keepdim=True).expand(2, -1))
    assert grown.spec.special_ids[-2:] == (40, 41)
    other = build_encoder({"name": name, "vocab_size": 42, "max_length": 16, "hidden_size": 64, "num_heads": 2})
    assert other.fit_stored(stored.state_dict()).keys() == stored.state_dict().keys()
    with pytest.raises(RuntimeError):
        other.load_state_dict(other.fit_stored(stored.state_dict()), strict=True)
