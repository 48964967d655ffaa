"""The audio encoder as ``--format onnx`` exports it: ``waveform`` (float32 [B, T], mono at the run's sample rate,
zero-padded, before selfsup's per-clip normalisation, which is inside the graph) and ``attention_mask`` (int64
[B, T], 1 on real samples) in; the embedding is the mean over the frames that hold real samples, as
``selfsup embed`` computes it. ``selfsup embed`` centre-crops each recording to the run's clip length first."""

from __future__ import annotations

import torch
from torch import nn


class WaveToEmbedding(nn.Module):
    """(waveform, attention_mask) -> (embedding [B, D] as ``encoder.embed``, frame states [B, T', D])."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, waveform: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {"input_values": waveform, "attention_mask": attention_mask}
        frames = self.encoder(inputs)
        return self.encoder.pool(frames, self.encoder.frame_mask(inputs, frames.shape[1])), frames


def audio_graph(loaded):
    """:meth:`~selfsup.modalities.base.Modality.onnx_graph` for audio: two example clips, one a full clip of the
    run's length and one shorter (zero-padded, masked)."""
    from ...onnx_export import OnnxGraph

    encoder, length = loaded.encoder, max(loaded.input_size, 2 * loaded.encoder.frame_window)
    waveform = torch.randn(2, length, generator=torch.Generator().manual_seed(0)) * 0.1
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, length // 2:] = 0
    waveform = waveform * mask
    axes = {0: "batch", 1: "samples"}
    return OnnxGraph(WaveToEmbedding(encoder), {"waveform": waveform, "attention_mask": mask},
                     {"waveform": axes, "attention_mask": axes},
                     {"sample_rate": encoder.sample_rate, "clip_samples": loaded.input_size,
                      "min_samples": encoder.frame_window, "normalize_per_clip_in_graph": bool(encoder.normalize)})
