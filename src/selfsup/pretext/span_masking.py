# Copyright 2021 The Fairseq Authors and the HuggingFace Inc. team. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
#
# Vendored by selfsup from Hugging Face transformers 5.25.0,
# src/transformers/models/wav2vec2/modeling_wav2vec2.py (``_compute_mask_indices`` and
# ``_sample_negative_indices``, private functions with no stability promise). Changes: public
# names, type hints and docstrings, an optional ``random_state``, an ``attention_mask`` given as a
# NumPy array or a tensor, and a clear error for a sequence with fewer than two frames to draw
# distractors from. With the NumPy global RNG the draws are those of transformers 5.25.0
# (``tests/test_span_masking.py`` checks it while transformers is installed).
"""Span masks and distractor indices of wav2vec 2.0 (Baevski, Zhou, Mohamed & Auli 2020, "wav2vec 2.0:
A Framework for Self-Supervised Learning of Speech Representations", NeurIPS, §3.1 masking and §3.2
the contrastive loss's distractors), also HuBERT's and data2vec's masks.

Kept here, not imported from transformers, so that a transformers upgrade cannot silently change
which frames are masked or which frames are negatives. Both draw from NumPy's global RNG (which
the engine seeds) unless a ``random_state`` is given; they run on CPU in the pretext.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["compute_mask_indices", "sample_negative_indices"]


def _lengths(attention_mask: Any, batch_size: int, sequence_length: int) -> list[int]:
    """Real length of each row of a right-padded ``attention_mask`` [B, T] (tensor or array)."""
    if attention_mask is None:
        return [sequence_length] * batch_size
    if hasattr(attention_mask, "detach"):  # a torch tensor
        attention_mask = attention_mask.detach().cpu().numpy()
    return np.asarray(attention_mask).sum(-1).tolist()


def compute_mask_indices(
    shape: tuple[int, int],
    mask_prob: float,
    mask_length: int,
    attention_mask: Any = None,
    min_masks: int = 0,
    random_state: np.random.RandomState | None = None,
) -> np.ndarray:
    """Random spans to mask, a bool array ``shape`` = (batch, sequence length) (wav2vec 2.0 §3.1;
    SpecAugment, Park et al. 2019).

    Each row of real length ``L`` (``attention_mask``, right-padded; all ``T`` frames without one)
    gets ``n = int(mask_prob * L / mask_length + eps)`` span starts (``eps`` uniform in [0, 1),
    drawn once per call: probabilistic rounding), at least ``min_masks``, at most what fits, drawn
    without replacement from ``[0, L - mask_length]``; each start masks ``mask_length`` frames.
    Spans may overlap, so ``mask_prob`` is an upper bound on the masked share.
    """
    rng = np.random if random_state is None else random_state
    batch_size, sequence_length = shape
    if mask_length < 1:
        raise ValueError("`mask_length` has to be bigger than 0.")
    if mask_length > sequence_length:
        raise ValueError(
            f"`mask_length` has to be smaller than `sequence_length`, but got `mask_length`: {mask_length}"
            f" and `sequence_length`: {sequence_length}`"
        )

    epsilon = rng.rand(1).item()  # probabilistic rounding of the number of spans

    def num_spans(input_length: int) -> int:
        count = max(int(mask_prob * input_length / mask_length + epsilon), min_masks)
        if count * mask_length > sequence_length:
            count = sequence_length // mask_length
        if input_length - (mask_length - 1) < count:  # no more starts than the row has
            count = max(input_length - (mask_length - 1), 0)
        return count

    mask = np.zeros((batch_size, sequence_length), dtype=bool)
    max_spans = num_spans(sequence_length)
    if max_spans == 0:
        return mask

    starts = []
    for input_length in _lengths(attention_mask, batch_size, sequence_length):
        count = num_spans(input_length)
        row = rng.choice(np.arange(input_length - (mask_length - 1)), count, replace=False)
        # pad every row to max_spans starts by repeating its first start (or the last frame, padding,
        # when the row has none), so the rows stack into one array
        dummy = sequence_length - 1 if len(row) == 0 else row[0]
        starts.append(np.concatenate([row, np.ones(max_spans - count, dtype=np.int32) * dummy]))

    spans = np.broadcast_to(np.array(starts)[:, :, None], (batch_size, max_spans, mask_length))
    spans = spans.reshape(batch_size, max_spans * mask_length)
    offsets = np.broadcast_to(np.arange(mask_length)[None, None, :], (batch_size, max_spans, mask_length))
    spans = spans + offsets.reshape(batch_size, max_spans * mask_length)
    spans[spans > sequence_length - 1] = sequence_length - 1
    np.put_along_axis(mask, spans, 1, -1)
    return mask


def sample_negative_indices(
    features_shape: tuple[int, int],
    num_negatives: int,
    mask_time_indices: np.ndarray | None = None,
    random_state: np.random.RandomState | None = None,
) -> np.ndarray:
    """Distractor indices [B, T, num_negatives] int32 for wav2vec 2.0's contrastive loss (§3.2):
    for every frame allowed by ``mask_time_indices`` [B, T] (all without it), ``num_negatives``
    other allowed frames of the same row, uniformly, never the frame itself (with replacement).

    Indices are into the flattened [B * T] frames (row ``b`` offset by ``b * T``); frames outside
    ``mask_time_indices`` get row ``b``'s offset. Every row needs at least two allowed frames.
    """
    rng = np.random if random_state is None else random_state
    batch_size, sequence_length = features_shape
    positions = np.arange(sequence_length)
    negatives = np.zeros(shape=(batch_size, sequence_length, num_negatives), dtype=np.int32)
    allowed = (np.ones(features_shape, dtype=bool) if mask_time_indices is None
               else np.asarray(mask_time_indices).astype(bool))

    for b in range(batch_size):
        high = allowed[b].sum() - 1
        if high < 1:
            raise ValueError(f"sample_negative_indices needs at least 2 allowed frames per row, row {b} has {high + 1}")
        frames = positions[allowed[b]]
        own = np.broadcast_to(np.arange(high + 1)[:, None], (high + 1, num_negatives))
        sampled = rng.randint(0, high, size=(high + 1, num_negatives))
        sampled[sampled >= own] += 1  # skip the frame itself, keeping the draw uniform over the others
        negatives[b][allowed[b]] = frames[sampled]
        negatives[b] += b * sequence_length
    return negatives
