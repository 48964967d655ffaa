"""Token pretext ops (MLM masking, TSDAE deletion, causal targets) and text evaluation pieces
(TF-IDF baselines, STS Spearman)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from selfsup.evaluation.similarity import spearman, spearman_similarity
from selfsup.modalities.text.tfidf import tfidf_accuracy, tfidf_similarity
from selfsup.pretext.tokens import causal_lm_targets, delete_tokens, mlm_mask

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = (PAD, UNK, CLS, SEP, MASK)
VOCAB = 100

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def make_batch(batch: int = 512, width: int = 64, seed: int = 0, min_len: int = 24, device: str = "cpu"):
    """[CLS] ids... [SEP] + padding, a few [UNK] inside, random word starts (True on specials)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, width + 1, (batch,), generator=g)
    pos = torch.arange(width).unsqueeze(0)
    mask = (pos < lengths.unsqueeze(1)).long()
    ids = torch.randint(len(SPECIALS), VOCAB, (batch, width), generator=g)
    ids = torch.where(torch.rand(batch, width, generator=g) < 0.03, UNK, ids)
    ids[:, 0] = CLS
    ids[torch.arange(batch), lengths - 1] = SEP
    ids = torch.where(mask.bool(), ids, PAD)
    starts = (torch.rand(batch, width, generator=g) < 0.5) | torch.isin(ids, torch.tensor(SPECIALS))
    starts[:, 1] = True
    starts &= mask.bool()
    return ids.to(device), mask.to(device), starts.to(device)


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def mlm(ids, mask, seed=0, **kwargs):
    kwargs.setdefault("mask_token_id", MASK)
    kwargs.setdefault("vocab_size", VOCAB)
    kwargs.setdefault("special_ids", SPECIALS)
    return mlm_mask(ids, mask, generator=gen(seed, ids.device.type), **kwargs)


def reference_words(ids: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor) -> list[list[list[int]]]:
    """Per row, the positions of each word (a plain-Python reading of the definition)."""
    rows = []
    for row_ids, row_mask, row_starts in zip(ids.tolist(), mask.tolist(), starts.tolist()):
        words: list[list[int]] = []
        previous_maskable = False
        for t, (tok, real, start) in enumerate(zip(row_ids, row_mask, row_starts)):
            maskable = bool(real) and tok not in SPECIALS
            if maskable and (start or not previous_maskable):
                words.append([t])
            elif maskable:
                words[-1].append(t)
            previous_maskable = maskable
        rows.append(words)
    return rows


@pytest.mark.parametrize("device", DEVICES)
def test_mlm_mask_statistics(device):
    ids, mask, _ = make_batch(device=device)
    corrupted, labels = mlm(ids, mask)
    maskable = mask.bool() & ~torch.isin(ids, torch.tensor(SPECIALS, device=device))
    chosen = labels != -100
    assert not (chosen & ~maskable).any()  # specials ([UNK] inside too) and padding never chosen
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(corrupted[~chosen], ids[~chosen])
    rate = chosen.sum().item() / maskable.sum().item()
    assert abs(rate - 0.15) < 0.01
    n = chosen.sum().item()
    masked = (corrupted == MASK) & chosen
    unchanged = (corrupted == ids) & chosen
    replaced = chosen & ~masked & ~unchanged
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    assert abs(replaced.sum().item() / n - 0.1) < 0.02
    assert abs(unchanged.sum().item() / n - 0.1) < 0.02
    assert not torch.isin(corrupted[replaced], torch.tensor(SPECIALS, device=device)).any()
    assert corrupted.device.type == labels.device.type == device


def test_mlm_random_replacements_cover_only_non_special_vocab():
    ids, mask, _ = make_batch(batch=256)
    corrupted, labels = mlm(ids, mask, rate=0.5, mask_prob=0.0, random_prob=1.0)
    values = corrupted[labels != -100]
    assert values.min().item() >= len(SPECIALS) and values.max().item() < VOCAB
    assert values.unique().numel() == VOCAB - len(SPECIALS)  # uniform over all of them


def test_mlm_mask_is_reproducible_with_a_seeded_generator():
    ids, mask, starts = make_batch(batch=64)
    for word_starts in (None, starts):
        first = mlm(ids, mask, seed=3, word_starts=word_starts)
        again = mlm(ids, mask, seed=3, word_starts=word_starts)
        other = mlm(ids, mask, seed=4, word_starts=word_starts)
        assert all(torch.equal(a, b) for a, b in zip(first, again))
        assert not torch.equal(first[1], other[1])


@pytest.mark.parametrize("whole_word", [False, True])
def test_mlm_chooses_at_least_one_token_per_sequence(whole_word):
    ids, mask, starts = make_batch(batch=200, width=8, min_len=3, seed=1)
    ids[0, 1:] = torch.tensor([SEP, PAD, PAD, PAD, PAD, PAD, PAD])  # [CLS][SEP]: nothing to mask
    mask[0, 2:] = 0
    starts[0, 2:] = False
    _, labels = mlm(ids, mask, rate=1e-6, word_starts=starts if whole_word else None)
    chosen = (labels != -100).sum(dim=1)
    has_maskable = (mask.bool() & ~torch.isin(ids, torch.tensor(SPECIALS))).any(dim=1)
    assert not has_maskable[0] and has_maskable.sum() > 190
    assert (chosen[~has_maskable] == 0).all()
    if whole_word:
        words = reference_words(ids, mask, starts)
        for row in has_maskable.nonzero().flatten().tolist():  # exactly one whole word
            hit = [w for w in words[row] if (labels[row, w] != -100).any()]
            assert len(hit) == 1 and (labels[row, hit[0]] != -100).all()
            assert chosen[row].item() == len(hit[0])
    else:
        assert (chosen[has_maskable] == 1).all()


def test_whole_word_masking_masks_every_token_of_a_chosen_word():
    ids, mask, starts = make_batch(batch=512, seed=2)
    corrupted, labels = mlm(ids, mask, word_starts=starts)
    chosen = labels != -100
    words = reference_words(ids, mask, starts)
    total = picked = multi = 0
    for row, row_words in enumerate(words):
        for word in row_words:
            flags = chosen[row, word]
            assert flags.all() or not flags.any()  # all of a word or none of it
            total += 1
            picked += int(flags.all())
            multi += int(flags.all() and len(word) > 1)
    assert multi > 100  # multi-token words do get chosen
    assert abs(picked / total - 0.15) < 0.01
    assert not (chosen & torch.isin(ids, torch.tensor(SPECIALS))).any()
    masked = ((corrupted == MASK) & chosen).sum().item() / chosen.sum().item()
    assert abs(masked - 0.8) < 0.02  # 80/10/10 per token


def test_mlm_mask_rejects_bad_arguments():
    ids, mask, _ = make_batch(batch=4)
    with pytest.raises(ValueError, match="sum"):
        mlm(ids, mask, mask_prob=0.8, random_prob=0.3)
    with pytest.raises(ValueError, match="rate"):
        mlm(ids, mask, rate=0.0)
    with pytest.raises(ValueError, match="shape"):
        mlm(ids, mask[:, :-1])


@pytest.mark.parametrize("device", DEVICES)
def test_delete_tokens_statistics_order_and_masks(device):
    ids, mask, _ = make_batch(device=device)
    out, out_mask = delete_tokens(ids, mask, special_ids=SPECIALS, pad_token_id=PAD, generator=gen(0, device))
    specials = torch.tensor(SPECIALS, device=device)
    counts = out_mask.sum(dim=1)
    assert out.shape == out_mask.shape and out.shape[1] == counts.max().item() < ids.shape[1]
    assert torch.equal(out_mask, (torch.arange(out.shape[1], device=device) < counts[:, None]).to(out_mask.dtype))
    assert (out[out_mask == 0] == PAD).all()
    before = (mask.bool() & ~torch.isin(ids, specials)).sum().item()
    after = (out_mask.bool() & ~torch.isin(out, specials)).sum().item()
    assert abs(1 - after / before - 0.6) < 0.02
    for src, src_mask, dst, n in zip(ids.tolist(), mask.tolist(), out.tolist(), counts.tolist()):
        original = [t for t, m in zip(src, src_mask) if m]
        kept = dst[:n]
        it = iter(original)
        assert all(tok in it for tok in kept)  # a subsequence: order preserved
        assert [t for t in kept if t in SPECIALS] == [t for t in original if t in SPECIALS]


def test_delete_tokens_keeps_at_least_one_real_token():
    ids, mask, _ = make_batch(batch=100, width=16, min_len=3)
    out, out_mask = delete_tokens(ids, mask, rate=1.0, special_ids=SPECIALS, pad_token_id=PAD, generator=gen(0))
    non_special = out_mask.bool() & ~torch.isin(out, torch.tensor(SPECIALS))
    assert (non_special.sum(dim=1) == 1).all()
    assert (out[:, 0] == CLS).all()
    same, same_mask = delete_tokens(ids, mask, rate=0.0, special_ids=SPECIALS, pad_token_id=PAD)
    width = int(mask.sum(dim=1).max())
    assert torch.equal(same, ids[:, :width]) and torch.equal(same_mask, mask[:, :width])


def test_causal_lm_targets_hand_example():
    ids = torch.tensor([[2, 10, 11, 3, 0], [2, 12, 3, 0, 0], [2, 13, 14, 15, 3]])
    mask = (ids != 0).long()
    expected = torch.tensor(
        [[10, 11, 3, -100, -100], [12, 3, -100, -100, -100], [13, 14, 15, 3, -100]],
    )
    assert torch.equal(causal_lm_targets(ids, mask), expected)


SPORT = "match goal team player coach score league stadium referee striker".split()
FOOD = "recipe oven flour sugar butter bake dough kitchen spice simmer".split()
FILLER = "the a of and was very really quite this that".split()


def topic_texts(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    texts = []
    for y in labels:
        words = list(rng.choice(SPORT if y == 0 else FOOD, size=3)) + list(rng.choice(FILLER, size=5))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, torch.from_numpy(labels)


def test_tfidf_accuracy_separates_topics_and_is_at_chance_on_shuffled_labels():
    train, y_train = topic_texts(120, seed=0)
    test, y_test = topic_texts(80, seed=1)
    assert tfidf_accuracy(train, y_train, test, y_test) > 0.9
    g = torch.Generator().manual_seed(0)
    shuffled = y_train[torch.randperm(len(y_train), generator=g)]
    assert tfidf_accuracy(train, shuffled, test, y_test) < 0.7
    assert tfidf_accuracy(train, torch.ones(120, dtype=torch.long), test, y_test) == pytest.approx(
        y_test.float().mean().item()
    )
    assert math.isnan(tfidf_accuracy(train, y_train, [], torch.empty(0, dtype=torch.long)))


def test_tfidf_similarity_identical_and_disjoint():
    fit = ["the cat sat on the mat", "dogs run in the park", "stock markets fell today"]
    first = ["the cat sat on the mat", "dogs run in the park", "the cat sat"]
    second = ["the cat sat on the mat", "stock markets fell today", "the cat sat on the mat"]
    sims = tfidf_similarity(first, second, fit)
    assert sims.shape == (3,) and sims.dtype == torch.float32
    assert sims[0].item() == pytest.approx(1.0, abs=1e-6)
    assert sims[1].item() == pytest.approx(0.0, abs=1e-6)
    assert 0.1 < sims[2].item() < 1.0


class BagOfEmbeddings(nn.Module):
    """Mean of fixed 2-d token embeddings: token k points at angle k * pi / (vocab - 1)."""

    def __init__(self, vocab: int = 10) -> None:
        super().__init__()
        angles = torch.arange(vocab, dtype=torch.float32) * math.pi / (vocab - 1)
        self.table = nn.Embedding(vocab, 2)
        with torch.no_grad():
            self.table.weight.copy_(torch.stack([angles.cos(), angles.sin()], dim=1))
        self.dim = 2

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids).mean(dim=1)


def test_spearman_similarity_perfect_and_reversed_order():
    encoder = BagOfEmbeddings().train()
    first = torch.zeros(9, 3, dtype=torch.long)  # all along angle 0
    second = torch.arange(1, 10).unsqueeze(1).repeat(1, 3)  # ever larger angle: ever less similar
    gold = -torch.arange(1, 10, dtype=torch.float32)
    assert spearman_similarity(encoder, first, second, gold, lambda x: x, batch_size=4) == pytest.approx(1.0)
    assert spearman_similarity(encoder, first, second, -gold, lambda x: x, batch_size=4) == pytest.approx(-1.0)
    assert encoder.training  # mode restored


def test_spearman_helper():
    assert spearman(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([10.0, 30.0, 20.0, 40.0])) == pytest.approx(0.8)
    assert math.isnan(spearman(torch.ones(5), torch.arange(5.0)))
    assert math.isnan(spearman(torch.tensor([1.0]), torch.tensor([2.0])))
    with pytest.raises(ValueError):
        spearman(torch.ones(3), torch.ones(4))
