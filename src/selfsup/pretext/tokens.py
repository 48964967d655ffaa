"""Pretext operations on batches of token ids (pure, vectorised tensor ops; CPU or CUDA).

A batch is ``input_ids`` [B, T] (right-padded) with ``attention_mask`` [B, T] (1 = real token,
including [CLS]/[SEP]; 0 = padding). Every op takes an optional ``generator`` (None = the global
RNG); its device must be the device of the tensors.

- :func:`mlm_mask`: BERT's masked-language-model corruption (Devlin et al. 2019, "BERT:
  Pre-training of Deep Bidirectional Transformers for Language Understanding", §3.1), token-level
  or whole-word (Cui et al. 2021, "Pre-Training with Whole Word Masking for Chinese BERT";
  Google's BERT whole-word-masking release).
- :func:`delete_tokens`: TSDAE's deletion noise (Wang, Reimers & Gurevych 2021, "TSDAE: Using
  Transformer-based Sequential Denoising Auto-Encoder for Unsupervised Sentence Embedding
  Learning").
- :func:`causal_lm_targets`: next-token labels (Radford et al. 2018, "Improving Language
  Understanding by Generative Pre-Training").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["IGNORE_INDEX", "causal_lm_targets", "delete_tokens", "mlm_mask"]

IGNORE_INDEX = -100
"""Label of positions without a target (``torch.nn.functional.cross_entropy``'s default ``ignore_index``)."""


def _check_batch(input_ids: Tensor, attention_mask: Tensor) -> None:
    if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"expected input_ids and attention_mask of the same shape [B, T], got "
            f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
        )


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"the generator is on {generator.device} but the tokens are on {device}; use one on {device}")


def _special_mask(input_ids: Tensor, special_ids: Sequence[int]) -> Tensor:
    """bool [B, T]: True where the token is one of ``special_ids``."""
    ids = torch.as_tensor(list(special_ids), dtype=input_ids.dtype, device=input_ids.device)
    return torch.isin(input_ids, ids)


def _rand(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(like.shape, generator=generator, device=like.device)


def _pick_one(candidates: Tensor, generator: torch.Generator | None) -> Tensor:
    """bool [B, T]: one uniformly random True of ``candidates`` per row (none in rows without any)."""
    score = _rand(candidates, generator).masked_fill(~candidates, -1.0)
    picked = torch.zeros_like(candidates)
    picked.scatter_(1, score.argmax(dim=1, keepdim=True), True)
    return picked & candidates


def mlm_mask(
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    rate: float = 0.15,
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
    word_starts: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's masking: returns ``(corrupted input_ids, labels)``, both [B, T].

    Each real, non-special token is chosen independently with probability ``rate`` (as in HF's
    ``DataCollatorForLanguageModeling``). Each chosen token becomes [MASK] with probability
    ``mask_prob``, a random id drawn uniformly from the non-special ids of ``range(vocab_size)``
    with probability ``random_prob``, and stays unchanged otherwise. ``labels`` holds the original
    id at chosen positions and -100 elsewhere. A sequence with at least one maskable token always
    gets at least one chosen (a uniformly random one when the draw chose none), so no sequence
    has an empty loss; this raises the chosen rate above ``rate`` only for very short sequences.

    Whole-word masking when ``word_starts`` (bool [B, T]) is given: a word is a word-start token
    plus the non-start tokens that follow it (a maskable token right after a special/padding
    token also starts a word). Each word is chosen with probability ``rate`` and ALL its tokens
    are labelled; the 80/10/10 replacement is then decided per token, independently (as Google's
    BERT ``create_pretraining_data.py`` and HF 4.x ``DataCollatorForWholeWordMask`` do; HF 5's
    ``whole_word_mask`` uses [MASK] only, which is ``mask_prob=1.0, random_prob=0.0`` here).
    Special tokens and padding are never chosen.
    """
    _check_batch(input_ids, attention_mask)
    _check_generator(generator, input_ids.device)
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    if mask_prob < 0 or random_prob < 0 or mask_prob + random_prob > 1.0 + 1e-9:
        raise ValueError(f"need mask_prob, random_prob >= 0 with a sum <= 1, got {mask_prob} and {random_prob}")
    specials = set(int(i) for i in special_ids)
    if int(mask_token_id) not in specials:
        specials.add(int(mask_token_id))
    every_id = torch.arange(vocab_size, dtype=input_ids.dtype, device=input_ids.device)
    allowed = every_id[~_special_mask(every_id, specials)]  # vectorised: vocabularies of 1M+ item ids
    if random_prob > 0 and allowed.numel() == 0:
        raise ValueError(f"random replacement needs a non-special token id below vocab_size={vocab_size}")

    maskable = attention_mask.bool() & ~_special_mask(input_ids, specials)
    if word_starts is None:
        chosen = (_rand(input_ids, generator) < rate) & maskable
        fallback = _pick_one(maskable, generator)
    else:
        if word_starts.shape != input_ids.shape:
            raise ValueError(f"word_starts must be [B, T] like input_ids, got {tuple(word_starts.shape)}")
        prev_maskable = torch.zeros_like(maskable)
        prev_maskable[:, 1:] = maskable[:, :-1]
        starts = maskable & (word_starts.bool() | ~prev_maskable)
        word_id = (starts.long().cumsum(dim=1) - 1).clamp(min=0)  # ordinal of each token's word
        # word k of a row is chosen by that row's k-th draw: one independent draw per word.
        chosen = (_rand(input_ids, generator).gather(1, word_id) < rate) & maskable
        first = _pick_one(starts, generator)
        picked_word = torch.where(first, word_id, -1).amax(dim=1, keepdim=True)
        fallback = (word_id == picked_word) & maskable
    needs_one = ~chosen.any(dim=1, keepdim=True)
    chosen = chosen | (fallback & needs_one)

    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    u = _rand(input_ids, generator)
    to_mask = chosen & (u < mask_prob)
    to_random = chosen & (u >= mask_prob) & (u < mask_prob + random_prob)
    corrupted = input_ids.masked_fill(to_mask, mask_token_id)
    if allowed.numel():
        pick = torch.randint(allowed.numel(), input_ids.shape, generator=generator, device=input_ids.device)
        corrupted = torch.where(to_random, allowed[pick], corrupted)
    return corrupted, labels


def delete_tokens(
    input_ids: Tensor,
    attention_mask: Tensor,
    *,
    rate: float = 0.6,
    special_ids: Sequence[int],
    pad_token_id: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """TSDAE's deletion noise: returns the shortened ``(input_ids, attention_mask)``.

    Each real non-special token is deleted independently with probability ``rate`` (TSDAE's best
    noise, deletion at 0.6; applied here to tokens rather than words). Special tokens are kept,
    and every sequence that had a non-special token keeps at least one. Survivors are moved to
    the left in their original order, the rest is padded with ``pad_token_id``, and the batch is
    trimmed to its new longest sequence.
    """
    _check_batch(input_ids, attention_mask)
    _check_generator(generator, input_ids.device)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    real = attention_mask.bool()
    deletable = real & ~_special_mask(input_ids, special_ids)
    delete = deletable & (_rand(input_ids, generator) < rate)
    lost_all = ~(deletable & ~delete).any(dim=1, keepdim=True)
    delete = delete & ~(_pick_one(deletable, generator) & lost_all)
    keep = real & ~delete

    batch, width = input_ids.shape
    counts = keep.sum(dim=1)
    length = int(counts.max()) if batch else 0
    # survivors go to their rank among the kept; the deleted to a spare column cut off below
    target = torch.where(keep, keep.long().cumsum(dim=1) - 1, torch.full_like(input_ids, width))
    out = torch.full((batch, width + 1), pad_token_id, dtype=input_ids.dtype, device=input_ids.device)
    out.scatter_(1, target, input_ids)
    positions = torch.arange(length, device=input_ids.device)
    mask = (positions.unsqueeze(0) < counts.unsqueeze(1)).to(attention_mask.dtype)
    return out[:, :length], mask


def causal_lm_targets(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Next-token labels [B, T]: ``labels[:, t] = input_ids[:, t + 1]`` where token ``t + 1`` is real,
    -100 elsewhere and at the last position (already shifted: compare with logits at ``t`` directly)."""
    _check_batch(input_ids, attention_mask)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = torch.where(attention_mask[:, 1:].bool(), input_ids[:, 1:], IGNORE_INDEX)
    return labels
