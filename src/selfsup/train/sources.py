"""What the engine needs from a modality's training data, whatever the modality."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader

from ..config import TrainerConfig
from ..methods.base import Examples, Pretext

LoaderFactory = Callable[[Pretext, int, TrainerConfig, int], DataLoader]
"""``(pretext, batch_size per process, trainer settings, world size) -> the shuffled training loader``."""


@dataclass
class TrainData:
    """A modality's prepared training data.

    ``input_size`` is what the method is built with (image side in pixels, tokens per text);
    ``encoder_kwargs`` are what the encoder builder needs from the data (image size; vocabulary size and
    special token ids) and override the user's encoder settings; ``pretext_in_loader`` says whether
    the loader already applied the method's pretext per sample (else the engine applies it to whole
    batches on the training device); ``examples`` gives a fixed sample of raw batches to methods that fit
    something to the data before training (HuBERT's k-means targets).
    """

    num_samples: int
    input_size: int
    encoder_kwargs: dict[str, Any]
    make_loader: LoaderFactory
    pretext_in_loader: bool
    unit: str = "samples"  # what a sample is, for messages: images, texts, recordings
    examples: Examples | None = None
