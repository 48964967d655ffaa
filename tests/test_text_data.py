"""Text readers, tokenizers and tokenized datasets (selfsup.modalities.text.readers, selfsup.modalities.text.tokenizer)."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from selfsup.modalities.text import readers as textdata
from selfsup.modalities.text.readers import (
    TEXT_EXTENSIONS,
    TextStream,
    TokenCollator,
    TokenizedCorpus,
    collate_tokens,
    encode_texts,
    find_text_files,
    iter_texts,
    load_labeled_text,
    load_text_pairs,
    text_bytes,
)
from selfsup.modalities.text.tokenizer import SPECIAL_TOKENS, load_tokenizer, save_tokenizer, token_spec, train_tokenizer
from selfsup.errors import SelfSupError

WORDS = (
    "the a cat dog bird sat ran jumped over under on mat log tree quick slow brown red green big small "
    "happy sad river mountain city house garden morning evening walked talked believe unable table"
).split()


def sentences(n: int, seed: int = 0, capitals: bool = False) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 9))]
        if capitals:
            words = [w.capitalize() if rng.random() < 0.3 else w for w in words]
        out.append(" ".join(words) + rng.choice([".", "!", "?"]))
    return out


CORPUS = sentences(300)


@pytest.fixture(scope="module")
def wordpiece() -> PreTrainedTokenizerFast:
    return train_tokenizer(CORPUS, kind="wordpiece", vocab_size=200, min_frequency=2)


@pytest.fixture(scope="module")
def bpe() -> PreTrainedTokenizerFast:
    return train_tokenizer(sentences(300, seed=1, capitals=True), kind="bpe", vocab_size=300, lowercase=False)


# ------------------------------------------------------------------------------------ readers


def test_find_text_files_recursive_sorted_skips_hidden_and_other_types(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for rel in ["b/deep/z.txt", "a.jsonl", "b/c.csv", "b/d.tsv", "e.text", ".secret.txt", ".hidden/x.txt", "img.png", "notes.md"]:
        (tmp_path / rel).write_text("x\n")
    found = [p.relative_to(tmp_path).as_posix() for p in find_text_files(tmp_path)]
    assert found == ["a.jsonl", "b/c.csv", "b/d.tsv", "b/deep/z.txt", "e.text"]
    assert ".txt" in TEXT_EXTENSIONS
    # a file named explicitly is read whatever its extension, as lines
    assert find_text_files(tmp_path / "notes.md") == [tmp_path / "notes.md"]
    assert list(iter_texts([tmp_path / "notes.md"])) == ["x"]


def test_find_text_files_errors_name_path_and_what_was_looked_for(tmp_path):
    with pytest.raises(SelfSupError, match="missing"):
        find_text_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "pic.png").write_bytes(b"\x89PNG")
    with pytest.raises(SelfSupError, match=r"empty.*\.jsonl.*\.txt"):
        find_text_files(tmp_path / "empty")


def test_plain_text_lines_stripped_empty_skipped_crlf(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"  first line  \r\n\r\n   \nsecond\rthird\nlast without newline")
    assert list(iter_texts([f])) == ["first line", "second", "third", "last without newline"]
    assert text_bytes([f]) == f.stat().st_size


def test_jsonl_text_field_and_errors(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"text": "one", "id": 1}\n\n{"text": "  two  "}\n{"text": null}\n{"body": "three"}\n')
    with pytest.raises(SelfSupError, match=r"a\.jsonl:5: no 'text' field \(fields: body\).*data\.text_field"):
        list(iter_texts([f]))
    f.write_text('{"text": "one", "id": 1}\n\n{"text": "  two  "}\n{"text": null}\n{"text": 3}\n')
    assert list(iter_texts([f])) == ["one", "two", "3"]
    g = tmp_path / "b.jsonl"
    g.write_text('{"body": "x"}\n{"body": "y"}\n')
    assert list(iter_texts([g], text_field="body")) == ["x", "y"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(SelfSupError, match=r"bad\.jsonl:2: not valid JSON"):
        list(iter_texts([bad]))


def test_jsonl_streams_until_the_bad_line(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"text": "one"}\n{"text": "two"}\n{"other": 1, "id": 2}\n')
    stream = iter_texts([f])
    assert [next(stream), next(stream)] == ["one", "two"]
    with pytest.raises(SelfSupError, match=r"a\.jsonl:3: no 'text' field \(fields: other, id\)"):
        next(stream)


def test_csv_and_tsv_columns(tmp_path):
    c = tmp_path / "a.csv"
    c.write_text('id,text,label\n1,"hello, world",x\n2,"two\nlines",y\n3,,z\n4,"say ""hi""",w\n')
    assert list(iter_texts([c])) == ["hello, world", "two\nlines", 'say "hi"']
    t = tmp_path / "b.tsv"
    t.write_text('sentence\tlabel\n"quoted" start\t1\nplain\t0\n')
    assert list(iter_texts([t], text_field="sentence")) == ['"quoted" start', "plain"]
    with pytest.raises(SelfSupError, match=r"b\.tsv: no 'text' column.*columns: sentence, label.*--set data\.text_field=NAME"):
        list(iter_texts([t]))


def test_csv_large_field(tmp_path):
    c = tmp_path / "big.csv"
    long = "word " * 40_000  # 200 kB, above csv's default 128 kB field limit
    c.write_text(f'text\n"{long}"\n')
    assert list(iter_texts([c])) == [long.strip()]


def test_bad_encoding_names_file_and_line_then_latin1_works(tmp_path):
    f = tmp_path / "legacy.txt"
    f.write_bytes("first\nsecond\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(SelfSupError) as err:
        list(iter_texts([f]))
    message = str(err.value)
    assert "legacy.txt:3:" in message and "0xe9" in message and "column 4" in message and "latin-1" in message
    assert list(iter_texts([f], encoding="latin-1")) == ["first", "second", "café au lait"]
    with pytest.raises(SelfSupError, match="unknown text encoding 'klingon'"):
        list(iter_texts([f], encoding="klingon"))


def test_bom_removed_and_other_encodings(tmp_path):
    f = tmp_path / "bom.csv"
    f.write_bytes("\ufefftext\nhéllo\n".encode("utf-8"))
    assert list(iter_texts([f])) == ["héllo"]  # header found although the file starts with a BOM
    g = tmp_path / "wide.txt"
    g.write_text("one\r\ntwo ü\r\n", encoding="utf-16")
    assert list(iter_texts([g], encoding="utf-16")) == ["one", "two ü"]


def test_iter_texts_over_folder_in_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("b1\nb2\n")
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "a1"}) + "\n")
    (tmp_path / "sub" / "c.csv").write_text("text\nc1\n")
    assert list(iter_texts(find_text_files(tmp_path))) == ["a1", "b1", "b2", "c1"]


# ------------------------------------------------------------------------------------ labeled


def test_labeled_tsv_headerless_and_header(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("pos\tgreat movie\n\nneg\tawful\tjust awful\npos\tfine\n")
    data = load_labeled_text(f)
    assert data.classes == ["neg", "pos"]
    assert data.texts == ["great movie", "awful\tjust awful", "fine"]
    assert data.labels.tolist() == [1, 0, 1] and data.labels.dtype == torch.long
    h = tmp_path / "test.csv"
    h.write_text('id,text,label\n1,"bad, really",neg\n2,good,pos\n')
    test = load_labeled_text(h, classes=data.classes)
    assert test.texts == ["bad, really", "good"] and test.labels.tolist() == [0, 1]
    t = tmp_path / "header.tsv"
    t.write_text("text\tlabel\nhello\t2\nbye\t10\n")
    numeric = load_labeled_text(t)
    assert numeric.classes == ["10", "2"] and numeric.labels.tolist() == [1, 0]  # sorted as strings


def test_labeled_errors(tmp_path):
    f = tmp_path / "test.tsv"
    f.write_text("pos\tfine\nneutral\tmeh\n")
    with pytest.raises(SelfSupError, match=r"test\.tsv:2: unknown label 'neutral'.*neg, pos"):
        load_labeled_text(f, classes=["neg", "pos"])
    g = tmp_path / "notext.tsv"
    g.write_text("pos\tfine\npos\t  \n")
    with pytest.raises(SelfSupError, match=r"notext\.tsv:2: row without text"):
        load_labeled_text(g)
    h = tmp_path / "onefield.txt"
    h.write_text("pos\tfine\njustoneword\n")
    with pytest.raises(SelfSupError, match=r"onefield\.txt:2:"):
        load_labeled_text(h)


def test_text_pairs(tmp_path):
    f = tmp_path / "sts.tsv"
    f.write_text("4.5\ta cat sits\ta cat is sitting\n\n0\tdogs run\tthe sky is blue\n")
    pairs = load_text_pairs(f)
    assert pairs.first == ["a cat sits", "dogs run"] and pairs.second == ["a cat is sitting", "the sky is blue"]
    assert pairs.scores.dtype == torch.float32 and pairs.scores.tolist() == [4.5, 0.0]
    h = tmp_path / "sts.csv"
    h.write_text('genre,sentence1,sentence2,score\nnews,"one, two",three,3.25\n')
    pairs = load_text_pairs(h)
    assert (pairs.first, pairs.second, pairs.scores.tolist()) == (["one, two"], ["three"], [3.25])
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\ta\tb\nhigh\tc\td\n")
    with pytest.raises(SelfSupError, match=r"bad\.tsv:2: score 'high' is not a number"):
        load_text_pairs(bad)


# ------------------------------------------------------------------------------------ tokenizers


def test_wordpiece_specials_and_round_trip(wordpiece):
    assert wordpiece.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == [0, 1, 2, 3, 4]
    assert (wordpiece.pad_token_id, wordpiece.unk_token_id, wordpiece.cls_token_id, wordpiece.sep_token_id, wordpiece.mask_token_id) == (0, 1, 2, 3, 4)
    ids = wordpiece("The Quick brown DOG jumped over the log!")["input_ids"]
    assert ids[0] == 2 and ids[-1] == 3
    assert wordpiece.decode(ids, skip_special_tokens=True) == "the quick brown dog jumped over the log!"
    assert len(wordpiece) <= 200


def test_bpe_exact_round_trip_with_capitals(bpe):
    assert bpe.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == [0, 1, 2, 3, 4]
    for text in ["The Quick brown Dog sat.", "Zebra über ALLES, 42 times!", "a"]:
        ids = bpe(text)["input_ids"]
        assert ids[0] == bpe.cls_token_id and ids[-1] == bpe.sep_token_id
        assert bpe.decode(ids, skip_special_tokens=True) == text
    assert bpe.unk_token_id not in bpe("never seen ∑ chars 😀")["input_ids"]


def test_tokenizer_errors(tmp_path):
    with pytest.raises(SelfSupError, match="wordpiece, bpe"):
        train_tokenizer(CORPUS, kind="sentencepiece")
    with pytest.raises(SelfSupError, match="no text"):
        train_tokenizer(iter([]), kind="wordpiece", vocab_size=100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SelfSupError, match=r"empty.*save_pretrained.*--tokenizer wordpiece\|bpe"):
        load_tokenizer(tmp_path / "empty")
    with pytest.raises(SelfSupError, match="missing"):
        load_tokenizer(tmp_path / "missing")


def test_save_then_load_offline_encodes_identically(wordpiece, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = save_tokenizer(wordpiece, tmp_path / "tok")
    text = ["the big red dog walked over the mountain", "unbelievable evening!"]
    auto = AutoTokenizer.from_pretrained(str(folder))
    assert auto(text)["input_ids"] == wordpiece(text)["input_ids"]
    loaded = load_tokenizer(folder)
    assert loaded.is_fast and loaded(text)["input_ids"] == wordpiece(text)["input_ids"]
    assert len(loaded) == len(wordpiece)  # nothing added to a selfsup-trained tokenizer


def test_token_spec(wordpiece):
    spec = token_spec(wordpiece)  # first import of selfsup.encoders.text (transformers models): ~2 s
    assert type(spec).__name__ == "TokenSpec"
    assert (spec.vocab_size, spec.pad_token_id, spec.unk_token_id, spec.cls_token_id, spec.sep_token_id, spec.mask_token_id) == (
        len(wordpiece), 0, 1, 2, 3, 4,
    )


def test_load_tokenizer_completes_a_gpt2_like_tokenizer(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=280, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    raw.train_from_iterator(CORPUS[:100], trainer=trainer)
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>").save_pretrained(tmp_path / "gpt")
    tok = load_tokenizer(tmp_path / "gpt")
    spec = token_spec(tok)
    assert tok.sep_token == "<eos>" and tok.cls_token == "[CLS]"
    assert len({spec.pad_token_id, spec.mask_token_id, spec.unk_token_id, spec.cls_token_id, spec.sep_token_id}) == 5
    assert spec.vocab_size == len(tok) > max(spec.pad_token_id, spec.mask_token_id, spec.cls_token_id)
    ids = tok("the cat sat")["input_ids"]
    assert ids[0] == spec.cls_token_id and ids[-1] == spec.sep_token_id and len(ids) > 2


# ------------------------------------------------------------------------------------ datasets


def test_tokenized_corpus_matches_tokenizer_and_truncates(wordpiece):
    texts = CORPUS[:50] + [""] + CORPUS[50:60]  # "" tokenizes to [CLS] [SEP] only: dropped
    corpus = TokenizedCorpus.build(iter(texts), wordpiece, max_length=64)
    kept = CORPUS[:60]
    assert len(corpus) == 60
    expected = wordpiece(kept)["input_ids"]
    for i in (0, 17, 59):
        ids, starts = corpus[i]
        assert ids.dtype == torch.long and starts.dtype == torch.bool
        assert ids.tolist() == expected[i] and len(starts) == len(ids)
    assert corpus.num_tokens == sum(map(len, expected))
    assert corpus[-1][0].tolist() == expected[-1]
    short = TokenizedCorpus.build(["the quick brown dog jumped over the small red log"], wordpiece, max_length=6)
    ids, _ = short[0]
    assert len(ids) == 6 and ids[0] == wordpiece.cls_token_id and ids[-1] == wordpiece.sep_token_id


def test_tokenized_corpus_chunks_agree(wordpiece, monkeypatch):
    whole = TokenizedCorpus.build(CORPUS[:40], wordpiece, max_length=32)
    monkeypatch.setattr(textdata, "_CHUNK", 7)
    chunked = TokenizedCorpus.build(CORPUS[:40], wordpiece, max_length=32)
    assert (whole.ids == chunked.ids).all() and (whole.offsets == chunked.offsets).all()
    assert (whole.word_starts == chunked.word_starts).all()


def test_word_starts_mark_only_first_piece(wordpiece):
    tokens = wordpiece.tokenize("unbelievable")
    assert len(tokens) > 1  # the tiny vocabulary splits it into several pieces
    corpus = TokenizedCorpus.build(["cat unbelievable dog!"], wordpiece, max_length=64)
    ids, starts = corpus[0]
    pieces = wordpiece.convert_ids_to_tokens(ids.tolist())
    assert pieces == ["[CLS]", "cat", *tokens, "dog", "!", "[SEP]"]
    assert starts.tolist() == [True, True, True] + [False] * (len(tokens) - 1) + [True, True, True]


def test_word_starts_bpe(bpe):
    corpus = TokenizedCorpus.build(["Hello Xylophonist"], bpe, max_length=64)
    ids, starts = corpus[0]
    enc = bpe("Hello Xylophonist")
    words = enc.word_ids()
    assert starts.tolist() == [w is None or w != p for w, p in zip(words, [None, *words[:-1]])]
    assert sum(starts.tolist()) == 4  # [CLS], Hello, Xylophonist, [SEP]


def _stream_files(tmp_path: Path, n: int = 90) -> tuple[list[Path], list[str]]:
    texts = [f"sentence number {i} about the {WORDS[i % len(WORDS)]}" for i in range(n)]
    (tmp_path / "a.txt").write_text("\n".join(texts[:50]) + "\n")
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[50:]))
    return find_text_files(tmp_path), texts


class _Worker:
    def __init__(self, id: int, num_workers: int):
        self.id, self.num_workers = id, num_workers


def test_text_stream_splits_across_workers_and_ranks(wordpiece, tmp_path, monkeypatch):
    files, texts = _stream_files(tmp_path)
    stream = TextStream(files, wordpiece, max_length=32, shuffle_buffer=16, seed=3)
    key = lambda ids: tuple(ids.tolist())  # noqa: E731
    expected = sorted(key(torch.tensor(ids)) for ids in wordpiece(texts)["input_ids"])
    seen = []
    for worker in range(2):
        monkeypatch.setattr(textdata, "get_worker_info", lambda w=worker: _Worker(w, 2))
        part = [key(ids) for ids, _ in stream]
        assert 40 <= len(part) <= 50
        seen += part
    assert sorted(seen) == expected  # every text exactly once per epoch
    # two DDP ranks x two workers: four disjoint shards covering everything
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    seen = []
    for rank in range(2):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda r=rank: r)
        for worker in range(2):
            monkeypatch.setattr(textdata, "get_worker_info", lambda w=worker: _Worker(w, 2))
            seen += [key(ids) for ids, _ in stream]
    assert sorted(seen) == expected


def test_text_stream_shuffles_per_epoch(wordpiece, tmp_path):
    files, texts = _stream_files(tmp_path)
    stream = TextStream(files, wordpiece, max_length=32, shuffle_buffer=30, seed=0)
    first = [ids.tolist() for ids, _ in stream]
    again = [ids.tolist() for ids, _ in stream]
    stream.set_epoch(1)
    second = [ids.tolist() for ids, _ in stream]
    assert first == again  # same epoch, same order
    assert second != first and sorted(second) == sorted(first)
    plain = TextStream(files, wordpiece, max_length=32, shuffle_buffer=0)
    assert [ids.tolist() for ids, _ in plain] == wordpiece(texts)["input_ids"]
    ids, starts = next(iter(stream))
    assert starts.dtype == torch.bool and len(starts) == len(ids)


def test_text_stream_in_a_dataloader(wordpiece, tmp_path):
    files, texts = _stream_files(tmp_path, n=40)
    stream = TextStream(files, wordpiece, max_length=32, shuffle_buffer=8)
    loader = torch.utils.data.DataLoader(stream, batch_size=8, num_workers=2, collate_fn=TokenCollator(wordpiece.pad_token_id))
    batches = list(loader)
    assert set(batches[0]) == {"input_ids", "attention_mask", "word_starts"}
    rows = [ids[mask.bool()].tolist() for b in batches for ids, mask in zip(b["input_ids"], b["attention_mask"])]
    assert sorted(rows) == sorted(wordpiece(texts)["input_ids"])  # each text once across both workers


def test_collate_pads_and_masks():
    samples = [
        (torch.tensor([2, 10, 11, 3]), torch.tensor([True, True, False, True])),
        (torch.tensor([2, 12, 3]), torch.tensor([True, True, True])),
    ]
    batch = collate_tokens(samples, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[2, 10, 11, 3], [2, 12, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["word_starts"].tolist() == [[True, True, False, True], [True, True, True, False]]
    assert batch["input_ids"].dtype == torch.long and batch["attention_mask"].dtype == torch.long
    collator = pickle.loads(pickle.dumps(TokenCollator(7)))
    assert collator(samples)["input_ids"][1, 3].item() == 7


def test_encode_texts_right_pads(wordpiece):
    texts = ["the cat", "the big brown dog ran over the log"]
    ids = encode_texts(texts, wordpiece, max_length=6)
    expected = wordpiece(texts, truncation=True, max_length=6)["input_ids"]
    assert ids.dtype == torch.long and ids.shape == (2, 6)
    assert ids[0, : len(expected[0])].tolist() == expected[0] and (ids[0, len(expected[0]) :] == 0).all()
    assert ids[1].tolist() == expected[1] and ids[1, -1].item() == wordpiece.sep_token_id
