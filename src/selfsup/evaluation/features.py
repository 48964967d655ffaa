"""Frozen-encoder feature extraction for kNN and linear evaluation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from selfsup.encoders.base import Encoder


def extract_features(
    encoder: Encoder | nn.Module,
    inputs: Tensor,
    transform: Callable[[Tensor], Tensor],
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Pooled embeddings ``encoder.embed(transform(batch))`` of every input, as float32 [N, D] on CPU.

    Runs under ``torch.inference_mode()`` with the encoder in eval mode (its previous mode is
    restored afterwards). Batches of raw ``inputs`` are moved to ``device`` before ``transform``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = encoder.training
    encoder.eval()
    chunks: list[Tensor] = []
    try:
        with torch.inference_mode():
            for start in range(0, inputs.shape[0], batch_size):
                batch = inputs[start : start + batch_size].to(device, non_blocking=True)
                feats = encoder.embed(transform(batch))
                chunks.append(feats.float().cpu())
    finally:
        encoder.train(was_training)
    if not chunks:
        return torch.empty(0, int(getattr(encoder, "dim", 0)), dtype=torch.float32)
    return torch.cat(chunks)
