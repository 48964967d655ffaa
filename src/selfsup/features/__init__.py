"""Classical features (log-mel, MFCC) shared by encoders, pretexts and baselines."""

from selfsup.features.audio import delta, log_mel, mel_filters, mfcc

__all__ = ["delta", "log_mel", "mel_filters", "mfcc"]
