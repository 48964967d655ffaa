"""Every schedule of the toolkit, once: pure functions of training progress (or of the step).

``progress`` is the fraction of training done, in [0, 1] (the engine passes it to
``Method.on_step_end``); values outside are clamped, so a schedule holds its end value after
training and its start value before. Each function names the paper its shape comes from.

- :func:`warmup_cosine`: the learning-rate multiplier (linear warmup, then cosine decay to 0).
- :func:`cosine_momentum`: an EMA teacher's momentum rising from a base to 1 on a cosine (BYOL,
  MoCo v3, DINO).
- :func:`linear_ramp`: a linear change over the first part of training, then constant (data2vec's
  EMA momentum, DINO's teacher temperature).
- :func:`geometric_decay`: an exponential (geometric) interpolation (wav2vec 2.0's Gumbel
  temperature).
- :func:`in_first`: whether training is still inside its first fraction (DINO's frozen last layer,
  SwAV's frozen prototypes).
"""

from __future__ import annotations

import math

__all__ = ["cosine_momentum", "geometric_decay", "in_first", "linear_ramp", "warmup_cosine"]


def _clamp01(progress: float) -> float:
    return min(max(progress, 0.0), 1.0)


def warmup_cosine(step: int, total: int, warmup: int = 0) -> float:
    """Learning-rate multiplier at ``step`` of ``total``: linear warmup to 1 over ``warmup`` steps
    (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §2.2), then cosine decay to 0 at ``total``
    without restarts (Loshchilov & Hutter 2017, "SGDR", Eq. 5); 0 after ``total``.

    During warmup the multiplier is ``(step + 1) / warmup``, so step 0 already trains. With
    ``warmup = 0`` it is ``0.5 * (1 + cos(pi * min(step, total) / total))``.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def cosine_momentum(progress: float, base: float) -> float:
    """EMA momentum from ``base`` at the start to 1 at the end (Grill et al. 2020, "Bootstrap Your
    Own Latent", §3.2)::

        tau = 1 - (1 - base) * (cos(pi * progress) + 1) / 2
    """
    return 1.0 - (1.0 - base) * (math.cos(math.pi * _clamp01(progress)) + 1.0) / 2.0


def linear_ramp(progress: float, start: float, end: float, ramp: float) -> float:
    """``start`` -> ``end`` linearly over the first ``ramp`` fraction of training, then ``end``;
    ``ramp <= 0`` gives ``end`` throughout.

    data2vec's teacher EMA (Baevski et al. 2022, §3.3: tau from 0.999 to 0.9999 over the first
    updates) and DINO's teacher temperature (Caron et al. 2021, §4, "Implementation details":
    0.04 -> 0.07 over the first 30 epochs).
    """
    if ramp <= 0:
        return end
    return start + (end - start) * min(1.0, max(progress, 0.0) / ramp)


def geometric_decay(progress: float, start: float, end: float) -> float:
    """``start * (end / start) ** progress``: a constant factor per step from ``start`` to ``end``,
    clamped between the two (both must be > 0).

    wav2vec 2.0's Gumbel-softmax temperature (Baevski et al. 2020, §4.2: from 2 to 0.5, by a factor
    0.999995 per update), here spread over however many steps the run has.
    """
    if start <= 0 or end <= 0:
        raise ValueError(f"geometric_decay needs start and end > 0, got {start} and {end}")
    value = start * (end / start) ** _clamp01(progress)
    return min(max(value, min(start, end)), max(start, end))


def in_first(progress: float, fraction: float) -> bool:
    """True while ``progress < fraction``: the opening phase in which a part stays frozen (SwAV's
    prototypes and DINO's last layer during the first epoch, Caron et al. 2020 §4 and 2021 §3.1 / A)."""
    return progress < fraction
