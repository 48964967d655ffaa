"""Pretext operations on batches of item histories (pure, vectorised tensor ops; CPU or CUDA).

A batch is ``input_ids`` [B, T] of item ids (0 = padding, 1..N = items, N + 1 = [MASK]), right-padded,
with ``attention_mask`` [B, T] (1 = real item). Every op takes an optional ``generator`` (None = the
global RNG) on the device of the tensors. Padding stays 0 and stays at the right.

- :func:`next_item_targets`: SASRec's shifted targets (Kang & McAuley 2018, "Self-Attentive Sequential
  Recommendation", §III).
- :func:`mask_items`: BERT4Rec's Cloze masking (Sun et al. 2019, "BERT4Rec: Sequential Recommendation
  with Bidirectional Encoder Representations from Transformer", CIKM, §3.6).
- :func:`crop_items`, :func:`mask_items_random`, :func:`reorder_items`, :func:`augment_history`:
  CL4SRec's augmentations (Xie et al. 2022, "Contrastive Learning for Sequential Recommendation",
  ICDE, §III-C).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .tokens import IGNORE_INDEX, _check_batch, _check_generator, _rand, mlm_mask

__all__ = ["augment_history", "crop_items", "mask_items", "mask_items_random", "next_item_targets",
           "reorder_items"]


def _check(input_ids: Tensor, attention_mask: Tensor, generator: torch.Generator | None) -> None:
    _check_batch(input_ids, attention_mask)
    _check_generator(generator, input_ids.device)


def _check_ratio(name: str, ratio: float) -> None:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {ratio}")


def _lengths(attention_mask: Tensor) -> Tensor:
    """int64 [B]: real items per row (right-padded, so also the index one past the last real item)."""
    return attention_mask.bool().sum(dim=1)


def _span(lengths: Tensor, span: Tensor, generator: torch.Generator | None) -> Tensor:
    """int64 [B]: a uniformly random start of a ``span``-long window inside each row's ``lengths`` items."""
    room = (lengths - span + 1).clamp_min(1)
    u = torch.rand(lengths.shape, generator=generator, device=lengths.device)
    return (u * room).long().clamp(max=room - 1)


def next_item_targets(input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SASRec's next-item task: ``(inputs, mask, labels)`` [B, T - 1] with ``labels[:, t] = input_ids[:, t + 1]``
    where item t + 1 is real, -100 elsewhere; the inputs drop the last column (Kang & McAuley 2018, §III)."""
    _check_batch(input_ids, attention_mask)
    real_next = attention_mask[:, 1:].bool()
    labels = torch.where(real_next, input_ids[:, 1:], torch.full_like(input_ids[:, 1:], IGNORE_INDEX))
    return input_ids[:, :-1], attention_mask[:, :-1], labels


def mask_items(
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    mask_item_id: int,
    num_items: int,
    rate: float = 0.2,
    last_item_prob: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT4Rec's Cloze task: returns ``(corrupted ids, labels)`` [B, T], labels -100 where there is no target.

    Sun et al. 2019, §3.6: each real item is replaced by [MASK] with probability ``rate`` (no random or
    kept replacements, unlike BERT), at least one per row with a real item (:func:`~.tokens.mlm_mask`
    with ``mask_prob=1, random_prob=0``). The paper adds training samples that mask only the LAST item,
    which match the next-item test: a fraction ``last_item_prob`` of the rows (each independently) is
    replaced by such a sample.
    """
    _check(input_ids, attention_mask, generator)
    _check_ratio("last_item_prob", last_item_prob)
    corrupted, labels = mlm_mask(input_ids, attention_mask, mask_token_id=mask_item_id, vocab_size=num_items + 2,
                                 special_ids=[0, mask_item_id], rate=rate, mask_prob=1.0, random_prob=0.0,
                                 generator=generator)
    lengths = _lengths(attention_mask)
    rows = torch.rand(lengths.shape, generator=generator, device=input_ids.device) < last_item_prob
    rows = rows & (lengths > 0)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    last = (positions.unsqueeze(0) == (lengths - 1).unsqueeze(1)) & rows.unsqueeze(1)  # [B, T]
    rows = rows.unsqueeze(1)
    corrupted = torch.where(rows, input_ids.masked_fill(last, mask_item_id), corrupted)
    labels = torch.where(rows, torch.where(last, input_ids, IGNORE_INDEX), labels)
    return corrupted, labels


def crop_items(input_ids: Tensor, attention_mask: Tensor, ratio: float = 0.6,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """CL4SRec's item crop (Xie et al. 2022, §III-C): a random contiguous sub-sequence of
    ``max(1, floor(ratio * n))`` of a row's n items, moved to the left; returns ``(ids, mask)`` [B, T]."""
    _check(input_ids, attention_mask, generator)
    _check_ratio("crop ratio", ratio)
    lengths = _lengths(attention_mask)
    span = torch.minimum(torch.floor(ratio * lengths.double()).long().clamp_min(1), lengths)
    start = _span(lengths, span, generator)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    keep = positions < span.unsqueeze(1)
    source = (positions + start.unsqueeze(1)).clamp(max=input_ids.shape[1] - 1)
    ids = torch.where(keep, input_ids.gather(1, source), torch.zeros_like(input_ids))
    return ids, keep.to(attention_mask.dtype)


def mask_items_random(input_ids: Tensor, attention_mask: Tensor, ratio: float = 0.3, *, mask_item_id: int,
                      generator: torch.Generator | None = None) -> Tensor:
    """CL4SRec's item mask (Xie et al. 2022, §III-C): ``floor(ratio * n)`` of a row's n items, chosen
    uniformly without replacement, become [MASK]; returns the ids [B, T] (the mask is unchanged)."""
    _check(input_ids, attention_mask, generator)
    _check_ratio("mask ratio", ratio)
    real = attention_mask.bool()
    count = torch.floor(ratio * _lengths(attention_mask).double()).long()
    score = _rand(input_ids, generator).masked_fill(~real, 2.0)  # padding ranks last
    rank = score.argsort(dim=1).argsort(dim=1)
    return input_ids.masked_fill((rank < count.unsqueeze(1)) & real, mask_item_id)


def reorder_items(input_ids: Tensor, attention_mask: Tensor, ratio: float = 0.6,
                  generator: torch.Generator | None = None) -> Tensor:
    """CL4SRec's item reorder (Xie et al. 2022, §III-C): a random contiguous sub-sequence of
    ``floor(ratio * n)`` of a row's n items is shuffled in place; returns the ids [B, T]."""
    _check(input_ids, attention_mask, generator)
    _check_ratio("reorder ratio", ratio)
    lengths = _lengths(attention_mask)
    span = torch.floor(ratio * lengths.double()).long()
    start = _span(lengths, span, generator).unsqueeze(1)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    inside = (positions >= start) & (positions < start + span.unsqueeze(1))
    # outside the window a position keeps its index as sort key; inside, a random key in [start, start + span - 1)
    key = positions.double().expand_as(input_ids)
    shuffled = start.double() + _rand(input_ids, generator).double() * (span.unsqueeze(1) - 1).clamp_min(0).double()
    key = torch.where(inside, shuffled, key)
    return input_ids.gather(1, key.argsort(dim=1, stable=True))


def augment_history(
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    crop: float = 0.6,
    mask_ratio: float = 0.3,
    reorder: float = 0.6,
    mask_item_id: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """One CL4SRec view ``(ids, mask)`` [B, T]: each row gets ONE of crop / mask / reorder, chosen uniformly
    (Xie et al. 2022, §III-C: an augmentation drawn from the set for each view)."""
    _check(input_ids, attention_mask, generator)
    cropped, cropped_mask = crop_items(input_ids, attention_mask, crop, generator)
    masked = mask_items_random(input_ids, attention_mask, mask_ratio, mask_item_id=mask_item_id, generator=generator)
    reordered = reorder_items(input_ids, attention_mask, reorder, generator)
    choice = torch.randint(3, (input_ids.shape[0], 1), generator=generator, device=input_ids.device)
    ids = torch.where(choice == 0, cropped, torch.where(choice == 1, masked, reordered))
    mask = torch.where(choice == 0, cropped_mask, attention_mask)
    return ids, mask
