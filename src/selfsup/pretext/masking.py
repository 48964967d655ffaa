"""Per-sample random patch masking, as in MAE (He et al. 2022, "Masked Autoencoders Are
Scalable Vision Learners"): each sample shuffles its patches with its own random noise, keeps
the first K, and hides the rest; and SimMIM's masking of larger square blocks of patches (Xie et
al. 2022, "SimMIM: A Simple Framework for Masked Image Modeling"); and spans of frames for audio
(:func:`span_mask`, wav2vec 2.0)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .span_masking import compute_mask_indices

__all__ = ["PatchMask", "gather_tokens", "num_visible", "random_block_mask", "random_patch_mask", "span_mask"]


@dataclass(frozen=True)
class PatchMask:
    """One masking draw for a batch of ``B`` sequences of ``N`` patches.

    ``keep_idx`` [B, K] (int64): indices of the visible patches, in shuffled order.
    ``mask`` [B, N] (bool): True where the patch is masked (hidden), False where visible.
    ``restore_idx`` [B, N] (int64): for a sequence laid out as ``[visible (K), masked (N-K)]``,
    ``gather_tokens(seq, restore_idx)`` puts every token back at its original position.
    """

    keep_idx: Tensor
    mask: Tensor
    restore_idx: Tensor

    @property
    def num_keep(self) -> int:
        return int(self.keep_idx.shape[1])

    @property
    def num_patches(self) -> int:
        return int(self.mask.shape[1])

    @property
    def shuffle_idx(self) -> Tensor:
        """[B, N]: the per-sample shuffle ``[keep_idx, masked_idx]`` (inverse of ``restore_idx``)."""
        return torch.argsort(self.restore_idx, dim=1)

    @property
    def masked_idx(self) -> Tensor:
        """[B, N-K]: indices of the masked patches, in the shuffled order ``restore_idx`` expects."""
        return self.shuffle_idx[:, self.num_keep :]


def num_visible(num_patches: int, mask_ratio: float) -> int:
    """K = round(num_patches * (1 - mask_ratio)), at least 1 (and at most ``num_patches``)."""
    if num_patches < 1:
        raise ValueError(f"num_patches must be positive, got {num_patches}")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return min(num_patches, max(1, int(round(num_patches * (1.0 - mask_ratio)))))


def random_patch_mask(
    batch_size: int,
    num_patches: int,
    mask_ratio: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> PatchMask:
    """Draw an independent random mask per sample (MAE's ``random_masking``).

    Noise is drawn on the generator's device (CPU without a generator, or ``device`` when no
    generator is given) and the result is returned on ``device``.
    """
    k = num_visible(num_patches, mask_ratio)
    device = torch.device(device) if device is not None else torch.device("cpu")
    noise_device = generator.device if generator is not None else device
    noise = torch.rand((batch_size, num_patches), generator=generator, device=noise_device).to(device)
    shuffle_idx = torch.argsort(noise, dim=1)
    restore_idx = torch.argsort(shuffle_idx, dim=1)
    keep_idx = shuffle_idx[:, :k]
    mask = torch.ones((batch_size, num_patches), dtype=torch.bool, device=device)
    mask[:, :k] = False
    mask = torch.gather(mask, 1, restore_idx)
    return PatchMask(keep_idx=keep_idx, mask=mask, restore_idx=restore_idx)


def random_block_mask(
    batch_size: int,
    grid_size: int,
    block: int,
    mask_ratio: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SimMIM's random masking (``MaskGenerator`` of Xie et al. 2022): bool [B, grid_size**2], True = masked.

    The ``grid_size x grid_size`` patch grid is tiled by square "mask patches" of ``block x block``
    patches (the paper: 32 px mask patches over 16 px ViT patches, ``block = 2``); each sample masks
    ``ceil(mask_ratio * number of mask patches)`` of them at random, every patch inside a chosen
    block together. Patches are listed row-major, as :func:`selfsup.losses.patchify` lists them.
    Noise is drawn as in :func:`random_patch_mask`.
    """
    if block < 1 or grid_size % block:
        raise ValueError(f"the patch grid ({grid_size}) must be a positive multiple of the mask block ({block})")
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    side = grid_size // block
    count = math.ceil(side * side * mask_ratio)
    device = torch.device(device) if device is not None else torch.device("cpu")
    noise_device = generator.device if generator is not None else device
    noise = torch.rand((batch_size, side * side), generator=generator, device=noise_device).to(device)
    rank = torch.argsort(torch.argsort(noise, dim=1), dim=1)  # each block's place in a random order
    blocks = (rank < count).view(batch_size, side, side)
    return blocks.repeat_interleave(block, 1).repeat_interleave(block, 2).flatten(1)


def gather_tokens(tokens: Tensor, idx: Tensor) -> Tensor:
    """Select ``tokens`` [B, N, D] at per-sample positions ``idx`` [B, K] -> [B, K, D]."""
    if tokens.ndim != 3 or idx.ndim != 2 or idx.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"expected tokens [B, N, D] and idx [B, K], got {tuple(tokens.shape)} and {tuple(idx.shape)}"
        )
    return torch.gather(tokens, 1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def span_mask(frame_mask: Tensor, mask_prob: float, span: int, min_spans: int = 2) -> Tensor:
    """Masked spans of frames (wav2vec 2.0, Baevski et al. 2020, §3.1; HuBERT; data2vec): about
    ``mask_prob * T / span`` start frames per clip, each masking the ``span`` frames that follow, within the
    clip's real frames (``frame_mask`` [B, T], 1 = real); at least ``min_spans`` spans where the clip allows.
    A clip shorter than a span gets none, unless no clip of the batch is long enough: then the spans shrink
    to the shortest clip, so a batch always has masked frames.

    :func:`~selfsup.pretext.span_masking.compute_mask_indices` (transformers' ``_compute_mask_indices``,
    vendored) draws the spans with NumPy's global RNG, which the engine seeds; returns a bool tensor [B, T]
    on ``frame_mask``'s device.
    """
    if not 0.0 < mask_prob <= 1.0 or span < 1:
        raise ValueError(f"span_mask needs 0 < mask_prob <= 1 and span >= 1, got {mask_prob} and {span}")
    batch, frames = frame_mask.shape
    lengths = frame_mask.sum(1)
    chosen = torch.zeros(batch, frames, dtype=torch.bool)
    for length in (min(span, frames), int(lengths.min())):  # a batch of clips all shorter than a span: shorter spans
        chosen = torch.from_numpy(compute_mask_indices((batch, frames), mask_prob=mask_prob, mask_length=max(1, length),
                                                       attention_mask=frame_mask.long().cpu(), min_masks=min_spans))
        chosen &= frame_mask.bool().cpu()
        if chosen.any():
            break
    return chosen.to(frame_mask.device)
