"""BART (Lewis et al. 2020): its noise has the paper's statistics (Poisson(3) spans, ~30 % of the tokens masked, one
mask per span, sentences permuted as wholes), and pretraining a tiny encoder-decoder lowers its loss without
collapsing the encoder's embedding; the encoder exports and reloads."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest
import torch

from selfsup.encoders import build_encoder
from selfsup.encoders.text import Seq2SeqTextEncoder
from selfsup.errors import SelfSupError
from selfsup.modalities.text.readers import TokenCollator, TokenizedCorpus
from selfsup.modalities.text.tokenizer import sentence_end_ids, token_spec, train_tokenizer
from selfsup.pretext.bart_noise import bart_noise, infill_row, permute_sentences_row, poisson_span_lengths
from selfsup.registry import get_method

from method_checks import assert_not_collapsed

MASK = 4
WORDS = "the a cat dog bird sat ran over under mat log tree red green big small house garden river city".split()


def texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6))) + "."
                     for _ in range(rng.randint(1, 3))) for _ in range(n)]


def test_span_lengths_are_poisson_3():
    generator = torch.Generator().manual_seed(0)
    lengths = poisson_span_lengths(60_000, 3.0, generator)[:-1]  # the last span is cut to fit
    assert statistics.mean(lengths) == pytest.approx(3.0, abs=0.05)
    assert statistics.variance(lengths) == pytest.approx(3.0, abs=0.15)  # Poisson: variance = mean
    assert Counter(lengths)[0] / len(lengths) == pytest.approx(0.0498, abs=0.006)  # P(0) = e^-3: insertions


def test_infilling_masks_30_percent_with_one_mask_per_span():
    generator = torch.Generator().manual_seed(1)
    content = list(range(100, 180))  # 80 distinct tokens
    shares, masks, spans = [], 0, []
    for _ in range(400):
        row = infill_row(content, MASK, rate=0.3, lam=3.0, generator=generator)
        kept = [t for t in row.tokens if t != MASK]
        assert kept == [t for t in content if t in set(kept)]  # kept tokens stay in order
        assert row.tokens.count(MASK) == len(row.span_lengths)  # ONE mask per span, insertions included
        assert len(kept) + sum(row.span_lengths) == len(content)  # spans never overlap
        shares.append(sum(row.span_lengths) / len(content))
        masks += row.tokens.count(MASK)
        spans += row.span_lengths
    assert statistics.mean(shares) == pytest.approx(0.3, abs=0.01)
    assert statistics.mean(spans) == pytest.approx(3.0, abs=0.25)  # Poisson(3), the last span of a row cut
    assert 0 in spans  # a 0-length span inserts a mask


def test_infilled_rows_rebuild_the_text_from_their_spans():
    generator = torch.Generator().manual_seed(2)
    content = list(range(100, 130))
    row = infill_row(content, MASK, rate=0.3, lam=3.0, generator=generator)
    rebuilt, position, spans = [], 0, iter(row.span_lengths)
    for token in row.tokens:
        if token == MASK:
            length = next(spans)
            rebuilt += content[position:position + length]
            position += length
        else:
            rebuilt.append(token)
            position += 1
    assert rebuilt == content


def test_sentence_permutation_shuffles_whole_sentences():
    generator = torch.Generator().manual_seed(3)
    sentences = [[10, 11, 1], [20, 21, 22, 1], [30, 1], [40, 41, 1]]  # 1 ends a sentence
    tokens = [t for s in sentences for t in s]
    ends = [t == 1 for t in tokens]
    orders = set()
    for _ in range(200):
        out = permute_sentences_row(tokens, ends, generator)
        parts, current = [], []
        for t in out:
            current.append(t)
            if t == 1:
                parts.append(current)
                current = []
        assert sorted(map(tuple, parts)) == sorted(map(tuple, sentences))  # the same sentences, kept whole
        orders.add(tuple(map(tuple, parts)))
    assert len(orders) > 12  # of the 24 orders, many are drawn (not the identity only)
    assert permute_sentences_row([5, 6, 7], [False, False, False], generator) == [5, 6, 7]  # one sentence: as is


def test_batch_noise_keeps_special_tokens_and_the_batch_width():
    tokenizer = train_tokenizer(texts(100), vocab_size=80, min_frequency=1)
    ends = sentence_end_ids(tokenizer)
    assert ends == (tokenizer.convert_tokens_to_ids("."),)
    corpus = TokenizedCorpus.build(texts(16, seed=5), tokenizer, 48)
    batch = TokenCollator(tokenizer.pad_token_id, ends)([corpus[i] for i in range(len(corpus))])
    assert batch["sentence_ends"].sum() >= 16
    spec = token_spec(tokenizer)
    noisy, mask = bart_noise(batch["input_ids"], batch["attention_mask"], batch["sentence_ends"],
                             mask_token_id=spec.mask_token_id, pad_token_id=spec.pad_token_id,
                             special_ids=spec.special_ids, generator=torch.Generator().manual_seed(0))
    assert noisy.shape[1] <= batch["input_ids"].shape[1]
    for row in range(len(noisy)):
        ids = noisy[row][mask[row].bool()].tolist()
        assert ids[0] == spec.cls_token_id and ids[-1] == spec.sep_token_id
        assert spec.mask_token_id in ids
    assert not torch.equal(noisy[:, :5], batch["input_ids"][:, :5])


def _bart(tokenizer, max_length: int = 48):
    config = {"name": "bart_tiny", **token_spec(tokenizer).to_dict(), "max_length": max_length}
    return get_method("bart", "text").cls(build_encoder(config), max_length)


def test_bart_pretraining_lowers_the_loss_and_does_not_collapse():
    torch.manual_seed(0)
    tokenizer = train_tokenizer(texts(200), vocab_size=80, min_frequency=1)
    method = _bart(tokenizer)
    assert isinstance(method.encoder, Seq2SeqTextEncoder)
    corpus = TokenizedCorpus.build(texts(64, seed=7), tokenizer, 48)
    batch = TokenCollator(tokenizer.pad_token_id, sentence_end_ids(tokenizer))([corpus[i] for i in range(64)])
    pretext = method.pretext("text")
    optimizer = torch.optim.AdamW(method.parameters(), lr=2e-3)
    losses = []
    for step in range(40):
        out = method.loss(pretext(batch, torch.Generator().manual_seed(step)))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    assert statistics.mean(losses[-5:]) < 0.6 * statistics.mean(losses[:5])
    method.eval()
    with torch.no_grad():
        embeddings = method.encoder.embed({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
    assert embeddings.shape == (64, 128)
    assert_not_collapsed(embeddings)


def test_bart_refuses_an_encoder_only_model():
    tokenizer = train_tokenizer(texts(50), vocab_size=60, min_frequency=1)
    config = {"name": "bert_tiny", **token_spec(tokenizer).to_dict(), "max_length": 32}
    with pytest.raises(SelfSupError, match="bart_tiny or bart_small"):
        get_method("bart", "text").cls(build_encoder(config), 32)


def test_bart_run_exports_and_reloads(tmp_path):
    """safetensors (tied embeddings written once per name), huggingface (AutoModelForSeq2SeqLM loads the whole
    encoder-decoder) and onnx (the encoder half) give the run's embeddings back."""
    import selfsup
    from selfsup.artifacts import load
    from selfsup.modalities.text.readers import encode_texts

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts(80, seed=3)) + "\n")
    run = tmp_path / "run"
    selfsup.pretrain(corpus, method="bart", out=run, modality="text", max_steps=2, batch_size=16, vocab_size=60,
                     max_length=32, progress_bar=False)
    loaded = load(run)
    ids = encode_texts(texts(4, seed=9), loaded.tokenizer, 32)
    inputs = {"input_ids": ids, "attention_mask": (ids != loaded.tokenizer.pad_token_id).long()}
    with torch.no_grad():
        expected = loaded.encoder.embed(inputs)
        for fmt in ("safetensors", "huggingface"):
            again = load(selfsup.export(run, tmp_path / fmt, format=fmt))
            assert torch.allclose(again.encoder.embed(inputs), expected, atol=1e-5), fmt
    import transformers

    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "huggingface", local_files_only=True)
    assert torch.equal(model.lm_head.weight, loaded.encoder.hf_model.lm_head.weight)
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(selfsup.export(run, tmp_path / "onnx", format="onnx") / "model.onnx"))
    pooled = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    assert abs(pooled - expected.numpy()).max() < 1e-4
