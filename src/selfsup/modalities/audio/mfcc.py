"""The classical audio baseline: MFCC statistics + logistic regression, no learned features.

Each recording becomes the mean and standard deviation over time of its 13 MFCCs with deltas and
delta-deltas (78 numbers; Davis & Mermelstein 1980's coefficients, the usual input of spoken-digit and
keyword classifiers before neural front ends), then the same standardised logistic regression as the
linear probe is trained on the same class-balanced label subsets as the encoders.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...features.audio import mfcc


def mfcc_statistics(waves: Tensor, sample_rate: int) -> Tensor:
    """[N, 78]: per recording of ``waves`` [N, L] (NaN-padded), the mean and std over time of its MFCC + deltas
    (25 ms windows, 10 ms hop)."""
    rows = []
    for wave in waves:
        real = wave[~torch.isnan(wave)][None].float()
        feats = mfcc(real, sample_rate, win_length=int(0.025 * sample_rate), hop_length=int(0.010 * sample_rate))[0]
        rows.append(torch.cat([feats.mean(0), feats.std(0, unbiased=False)]))
    return torch.stack(rows)
