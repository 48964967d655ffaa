"""``pretext.span_masking``: wav2vec 2.0's span masks and distractor indices, vendored from transformers.

The first tests pin the vendored copies to the installed transformers' private functions (same NumPy
seed -> the same arrays and the same RNG state afterwards); the rest check the behaviour on its own,
so a future transformers that changes its copies cannot change selfsup's masking unnoticed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

from selfsup.pretext.span_masking import compute_mask_indices, sample_negative_indices


def _attention_mask(lengths: list[int], frames: int) -> torch.Tensor:
    return (torch.arange(frames)[None] < torch.tensor(lengths)[:, None]).long()


MASK_CASES = [  # shape, mask_prob, mask_length, lengths (None: no attention mask), min_masks
    ((4, 50), 0.65, 10, None, 0),
    ((4, 50), 0.65, 10, [50, 31, 12, 10], 2),
    ((3, 40), 0.05, 1, [40, 7, 1], 0),
    ((5, 64), 0.3, 4, [64, 3, 20, 63, 8], 2),  # a row shorter than a span: no starts, padded with a dummy
    ((2, 10), 0.9, 10, None, 1),
    ((2, 12), 0.01, 5, [12, 12], 0),  # rounding may give no span at all
]


@pytest.mark.parametrize("shape, mask_prob, mask_length, lengths, min_masks", MASK_CASES)
def test_compute_mask_indices_matches_transformers(shape, mask_prob, mask_length, lengths, min_masks):
    attention = None if lengths is None else _attention_mask(lengths, shape[1])
    for seed in range(5):
        np.random.seed(seed)
        ours = compute_mask_indices(shape, mask_prob, mask_length, attention_mask=attention, min_masks=min_masks)
        ours_state = np.random.get_state()[1].copy()
        np.random.seed(seed)
        theirs = _compute_mask_indices(shape, mask_prob, mask_length, attention_mask=attention, min_masks=min_masks)
        assert ours.dtype == theirs.dtype == np.bool_ and np.array_equal(ours, theirs)
        assert np.array_equal(ours_state, np.random.get_state()[1])  # same number of draws
        # a RandomState seeded alike draws the same stream
        mine = compute_mask_indices(shape, mask_prob, mask_length, attention_mask=attention, min_masks=min_masks,
                                    random_state=np.random.RandomState(seed))
        assert np.array_equal(mine, theirs)


@pytest.mark.parametrize("lengths, num_negatives", [(None, 5), ([30, 2, 17], 4), ([30, 30, 9], 100)])
def test_sample_negative_indices_matches_transformers(lengths, num_negatives):
    shape = (3, 30)
    allowed = None if lengths is None else _attention_mask(lengths, shape[1]).numpy()
    for seed in range(5):
        np.random.seed(seed)
        ours = sample_negative_indices(shape, num_negatives, mask_time_indices=allowed)
        np.random.seed(seed)
        theirs = _sample_negative_indices(shape, num_negatives, mask_time_indices=allowed)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)


# --------------------------------------------------------------------------- behaviour on its own


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each maximal run of True in ``row``."""
    runs, start = [], None
    for i, value in enumerate([*row.tolist(), False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def test_single_frame_masks_hit_mask_prob():
    rng = np.random.RandomState(0)
    frames = 200
    for mask_prob in (0.05, 0.3, 0.65):
        mask = compute_mask_indices((8, frames), mask_prob, 1, random_state=rng)
        counts = mask.sum(1)
        # int(p * T + eps): every row masks floor(p * T) or that plus one frame, all rows alike
        assert len(set(counts.tolist())) == 1 and counts[0] in (int(mask_prob * frames), int(mask_prob * frames) + 1)


def test_spans_have_mask_length_and_share_stays_below_mask_prob():
    rng = np.random.RandomState(1)
    frames, span = 300, 10
    mask = compute_mask_indices((16, frames), 0.65, span, random_state=rng)
    assert all(length >= span for row in mask for _, length in _runs(row))  # overlapping spans merge
    share = mask.mean()
    assert 0.4 < share <= 0.65 + span / frames  # overlaps make mask_prob an upper bound (expected ~0.48)
    # few spans: each is one run of exactly mask_length frames
    sparse = compute_mask_indices((16, frames), 0.0, span, min_masks=1, random_state=rng)
    assert all([length for _, length in _runs(row)] == [span] for row in sparse)


def test_min_masks_and_attention_mask_are_respected():
    rng = np.random.RandomState(2)
    lengths = [40, 25, 12, 6]
    mask = compute_mask_indices((4, 40), 0.01, 1, attention_mask=_attention_mask(lengths, 40), min_masks=3,
                                random_state=rng)
    assert mask.sum(1).tolist() == [3, 3, 3, 3]  # mask_prob alone would give none
    for row, length in zip(mask, lengths):
        assert not row[length:].any()  # padding is never masked
    spans = compute_mask_indices((4, 40), 0.65, 5, attention_mask=np.array(_attention_mask(lengths, 40)),
                                 random_state=rng)
    for row, length in zip(spans, lengths):
        assert row[:length].any() and not row[length:].any()
    with pytest.raises(ValueError, match="mask_length"):
        compute_mask_indices((2, 8), 0.5, 9)


def test_negatives_are_other_allowed_frames_of_the_same_sequence():
    rng = np.random.RandomState(3)
    frames, lengths = 20, [20, 7, 2]
    allowed = _attention_mask(lengths, frames).numpy()
    negatives = sample_negative_indices((3, frames), 200, mask_time_indices=allowed, random_state=rng)
    assert negatives.shape == (3, frames, 200) and negatives.dtype == np.int32
    for b, length in enumerate(lengths):
        for t in range(length):
            drawn = negatives[b, t]
            assert (drawn != b * frames + t).all()  # never the positive itself
            assert drawn.min() >= b * frames and drawn.max() < b * frames + length  # inside this sequence
        if length > 2:  # uniform over the others: with 200 draws each other frame shows up
            assert set(negatives[b, 0].tolist()) == {b * frames + t for t in range(1, length)}
    with pytest.raises(ValueError, match="at least 2 allowed frames"):
        sample_negative_indices((2, 5), 3, mask_time_indices=np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]))
