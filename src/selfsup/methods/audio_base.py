"""Pieces shared by the audio methods: the encoder check and the frame grid of a batch."""

from __future__ import annotations

import torch

from ..encoders.audio import AudioEncoder
from ..errors import SelfSupError


def require_audio_encoder(encoder, method: str) -> AudioEncoder:
    """The method's encoder, which must be an audio encoder (a one-line error otherwise)."""
    if not isinstance(encoder, AudioEncoder):
        raise SelfSupError(f"{method} needs an audio encoder, got {encoder.config.get('name')!r}; "
                           f"use --encoder wav2vec2_tiny, wav2vec2_mini or wav2vec2_base")
    return encoder


def frame_grid(encoder: AudioEncoder, batch: dict[str, torch.Tensor], min_frames: int = 1) -> dict[str, torch.Tensor]:
    """``batch`` padded (with silence) so every clip spans at least ``min_frames`` frames, plus its
    ``frame_mask`` [B, T] (1 = a frame of real samples): the grid masks and frame targets are drawn on."""
    waves, mask = batch["input_values"], batch["attention_mask"]
    need = encoder.frame_window + (min_frames - 1) * encoder.frame_stride
    if waves.shape[1] < need:
        pad = need - waves.shape[1]
        waves = torch.nn.functional.pad(waves, (0, pad))
        mask = torch.nn.functional.pad(mask, (0, pad))
    mask = mask.clone()
    mask[:, :need] = 1  # short clips: their silent padding counts as real, so each has min_frames frames
    batch = {**batch, "input_values": waves, "attention_mask": mask}
    frames = int(encoder.num_frames(torch.tensor([waves.shape[1]]))[0])
    return {**batch, "frame_mask": encoder.frame_mask(batch, frames)}
