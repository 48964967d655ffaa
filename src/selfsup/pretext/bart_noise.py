"""BART's noise on batches of token ids — Lewis et al. 2020, "BART: Denoising Sequence-to-Sequence Pre-training
for Natural Language Generation, Translation, and Comprehension" (ACL), §2.2, the combination of their best
pre-training run (§5, "text infilling + sentence permutation"):

- **sentence permutation**: the sentences of a text (split after each sentence-final token) are shuffled;
- **text infilling**: spans whose lengths are drawn from Poisson(λ = 3) are each replaced by ONE mask token
  (a 0-length span inserts a mask), until ~30 % of the tokens are masked; the model must also work out how many
  tokens a mask stands for.

Spans never overlap: with ``k`` spans of total length ``L`` over ``n`` content tokens, the ``k`` spans and the
``n - L`` kept tokens are laid out in a uniformly random order (each order of spans and kept tokens equally
likely), so exactly ``round(rate * n)`` tokens are masked. Special tokens ([CLS], a language tag as mBART puts
one with every text (Liu et al. 2020), [SEP]) stay where they are.
Rows are noised one by one on the CPU (short lists); the result is padded back on the batch's device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .tokens import IGNORE_INDEX

__all__ = ["InfilledRow", "bart_noise", "decoder_labels", "infill_row", "permute_sentences_row", "poisson_span_lengths"]


def poisson_span_lengths(total: int, lam: float, generator: torch.Generator | None = None) -> list[int]:
    """Span lengths drawn from Poisson(``lam``) until they cover ``total`` tokens; the last one is cut to fit."""
    lengths: list[int] = []
    covered = 0
    while covered < total:
        draws = torch.poisson(torch.full((max(4, total),), float(lam)), generator=generator).long().tolist()
        for length in draws:
            length = min(length, total - covered)
            lengths.append(length)
            covered += length
            if covered >= total:
                break
    return lengths


@dataclass
class InfilledRow:
    """One noised text: its tokens, and the length of the span each mask token stands for (0: an insertion)."""

    tokens: list[int]
    span_lengths: list[int]


def infill_row(tokens: Sequence[int], mask_token_id: int, rate: float, lam: float,
               generator: torch.Generator | None = None) -> InfilledRow:
    """Text infilling of one text's content tokens (no special tokens)."""
    n = len(tokens)
    target = int(round(rate * n))
    lengths = poisson_span_lengths(target, lam, generator) if target > 0 else []
    kept = n - sum(lengths)
    slots = kept + len(lengths)
    # which of the slots (kept tokens and spans, in reading order) are spans: a uniformly random k-subset
    is_span = torch.zeros(slots, dtype=torch.bool)
    if lengths:
        is_span[torch.randperm(slots, generator=generator)[:len(lengths)]] = True
    order = torch.randperm(len(lengths), generator=generator).tolist()  # which span goes where
    out: list[int] = []
    spans: list[int] = []
    position = 0
    next_span = 0
    for span in is_span.tolist():
        if span:
            length = lengths[order[next_span]]
            next_span += 1
            out.append(mask_token_id)
            spans.append(length)
            position += length
        else:
            out.append(int(tokens[position]))
            position += 1
    return InfilledRow(out, spans)


def permute_sentences_row(tokens: Sequence[int], sentence_ends: Sequence[bool],
                          generator: torch.Generator | None = None) -> list[int]:
    """The sentences of one text in a random order; a sentence ends after each token flagged in ``sentence_ends``
    (a last sentence without a final token is one too)."""
    sentences: list[list[int]] = [[]]
    for token, end in zip(tokens, sentence_ends):
        sentences[-1].append(int(token))
        if end:
            sentences.append([])
    sentences = [s for s in sentences if s]
    if len(sentences) < 2:
        return [int(t) for t in tokens]
    order = torch.randperm(len(sentences), generator=generator).tolist()
    return [token for i in order for token in sentences[i]]


def bart_noise(input_ids: Tensor, attention_mask: Tensor, sentence_ends: Tensor | None, *, mask_token_id: int,
               pad_token_id: int, special_ids: Sequence[int], rate: float = 0.3, lam: float = 3.0,
               permute: bool = True, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(noisy ids [B, T'], their attention mask [B, T']) of a right-padded batch: sentence permutation (when
    ``permute`` and ``sentence_ends`` [B, T] flags sentence-final tokens), then text infilling of the content
    tokens; the leading special tokens ([CLS] and a language tag) and a trailing one are kept, and no row grows
    beyond the batch's width ``T``."""
    rows: list[list[int]] = []
    width = input_ids.shape[1]
    special = set(int(i) for i in special_ids)
    ids_cpu, mask_cpu = input_ids.cpu(), attention_mask.cpu().bool()
    ends_cpu = sentence_ends.cpu().bool() if sentence_ends is not None else None
    cpu_generator = generator if generator is None or generator.device.type == "cpu" else None
    for row in range(ids_cpu.shape[0]):
        ids = ids_cpu[row][mask_cpu[row]].tolist()
        start = 0
        while start < len(ids) and ids[start] in special:  # [CLS], then a language tag (mBART)
            start += 1
        stop = len(ids) - 1 if len(ids) > start and ids[-1] in special else len(ids)
        content = ids[start:stop]
        if permute and ends_cpu is not None:
            content = permute_sentences_row(content, ends_cpu[row][mask_cpu[row]].tolist()[start:stop], cpu_generator)
        noisy = infill_row(content, mask_token_id, rate, lam, cpu_generator).tokens
        room = width - start - (len(ids) - stop)
        rows.append(ids[:start] + noisy[:room] + ids[stop:])
    longest = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return out.to(input_ids.device), mask.to(attention_mask.device)


def decoder_labels(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """What a decoder that starts from [CLS] predicts of texts ``[CLS] y [SEP]``: ``y [SEP]``, padding ignored."""
    return input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
