"""The schedules of ``selfsup.schedules``: endpoints, monotonicity, warmup and clamping (the methods that
follow them are tested in their own files: DINO's teacher temperature, wav2vec 2.0's Gumbel decay)."""

from __future__ import annotations

import math

import pytest

from selfsup.schedules import cosine_momentum, geometric_decay, in_first, linear_ramp, warmup_cosine

PROGRESS = [i / 20 for i in range(21)]


def test_warmup_cosine_shape():
    total, warmup = 100, 10
    values = [warmup_cosine(step, total, warmup) for step in range(total + 1)]
    ramp = values[:warmup]
    assert ramp[0] == pytest.approx(1 / warmup)
    assert all(b > a for a, b in zip(ramp, ramp[1:]))  # linear warmup, strictly increasing
    assert ramp[-1] == pytest.approx(1.0)
    assert values[warmup] == pytest.approx(1.0)  # the peak
    decay = values[warmup:]
    assert all(b <= a for a, b in zip(decay, decay[1:]))  # monotone decay
    assert values[(total + warmup) // 2] == pytest.approx(0.5)  # cosine: half way down at mid-decay
    assert values[total] == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(total + 50, total, warmup) == pytest.approx(0.0, abs=1e-12)  # stays at 0
    assert warmup_cosine(0, total, 0) == pytest.approx(1.0)  # no warmup: starts at the peak
    assert all(0.0 <= v <= 1.0 for v in values)


def test_warmup_cosine_without_warmup_is_the_plain_cosine_of_finetuning():
    steps = 7
    for step in range(steps + 3):
        expected = 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))
        assert warmup_cosine(step, steps) == pytest.approx(expected, abs=1e-12)


def test_cosine_momentum_rises_from_base_to_one():
    values = [cosine_momentum(p, 0.99) for p in PROGRESS]
    assert values[0] == pytest.approx(0.99) and values[-1] == pytest.approx(1.0)
    assert values[10] == pytest.approx(0.995)  # half way up at mid-training
    assert all(b > a for a, b in zip(values, values[1:]))
    assert cosine_momentum(-0.5, 0.99) == pytest.approx(0.99) and cosine_momentum(1.5, 0.99) == pytest.approx(1.0)


def test_linear_ramp_moves_over_its_fraction_then_holds():
    values = [linear_ramp(p, 0.04, 0.07, 0.3) for p in (0.0, 0.15, 0.3, 0.6, 1.0)]
    assert values == pytest.approx([0.04, 0.055, 0.07, 0.07, 0.07])
    assert linear_ramp(0.5, 0.04, 0.07, 0.0) == 0.07  # no ramp: the end value from the start
    assert linear_ramp(-1.0, 0.999, 0.9999, 0.1) == pytest.approx(0.999)  # clamped before training
    ramp = [linear_ramp(p, 0.999, 0.9999, 0.5) for p in PROGRESS[:11]]
    steps = [b - a for a, b in zip(ramp, ramp[1:])]
    assert all(s > 0 for s in steps) and max(steps) - min(steps) < 1e-12  # linear: equal increments


def test_geometric_decay_is_a_constant_factor_between_the_endpoints():
    values = [geometric_decay(p, 2.0, 0.5) for p in PROGRESS]
    assert values[0] == pytest.approx(2.0) and values[10] == pytest.approx(1.0) and values[-1] == pytest.approx(0.5)
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert max(ratios) - min(ratios) < 1e-12 and ratios[0] < 1.0
    assert geometric_decay(3.0, 2.0, 0.5) == pytest.approx(0.5) and geometric_decay(-1.0, 2.0, 0.5) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="> 0"):
        geometric_decay(0.5, 2.0, 0.0)


def test_in_first_marks_the_opening_fraction():
    assert in_first(0.0, 0.01) and in_first(0.009, 0.01)
    assert not in_first(0.01, 0.01) and not in_first(0.5, 0.01)
    assert not in_first(0.0, 0.0)  # a zero fraction freezes nothing
