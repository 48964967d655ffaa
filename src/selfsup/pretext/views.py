"""Generic view plumbing of the two-view methods, whatever the modality: pair two augmentations into
a pretext (:func:`two_views`), SimCSE's dropout views of a token batch (:func:`dropout_views`), and
two batches of views as one for a single encoder pass (:func:`concat_views`).

The image augmentations themselves are in ``pretext.image_ops`` (colour, blur, solarize ops),
``pretext.image_augment`` (``ImageAugment``), ``pretext.image_recipes`` (SimCLR / BYOL / MAE
recipes) and ``pretext.image_eval`` (the evaluation transform).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["concat_views", "dropout_views", "sample_as_is", "two_views"]


def two_views(augment_1: Callable[..., Tensor], augment_2: Callable[..., Tensor]) -> Callable[..., dict[str, Tensor]]:
    """The two-view pretext of the siamese methods (SimCLR, MoCo, BYOL, SimSiam, Barlow Twins, VICReg):
    ``{"view1": augment_1(x), "view2": augment_2(x)}``, each view drawn independently per sample."""

    def pretext(images: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return {"view1": augment_1(images, generator=generator), "view2": augment_2(images, generator=generator)}

    return pretext


def dropout_views() -> Callable[..., dict[str, dict[str, Tensor]]]:
    """The text views of SimCSE (Gao, Yao, Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence
    Embeddings", §3): the same token batch twice; the encoder's dropout, drawn independently for every
    row, makes the two views differ."""

    def pretext(batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, dict[str, Tensor]]:
        return {"view1": batch, "view2": batch}

    return pretext


def sample_as_is() -> Callable[..., dict]:
    """One view that is the sample itself, ``{"view": batch}`` (text: the encoder's dropout is the only noise).
    The pretext is marked ``deterministic``: what a frozen teacher computes from a sample may be reused."""

    def pretext(batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, dict[str, Tensor]]:
        return {"view": batch}

    pretext.deterministic = True  # type: ignore[attr-defined]
    return pretext


def concat_views(first: Tensor | dict[str, Tensor], second: Tensor | dict[str, Tensor]) -> Tensor | dict[str, Tensor]:
    """Two batches of views as one (rows of ``first`` first), so one encoder pass sees both: image tensors
    are concatenated; token and waveform batches (dicts of [B, T] tensors) key by key, the shorter right-padded
    with 0 (the attention mask is 0 there, so the encoder ignores the padding)."""
    if isinstance(first, Tensor):
        return torch.cat([first, second])
    length = max(max(v.shape[1] for v in first.values()), max(v.shape[1] for v in second.values()))
    return {key: torch.cat([F.pad(first[key], (0, length - first[key].shape[1])),
                            F.pad(second[key], (0, length - second[key].shape[1]))])
            for key in first}
