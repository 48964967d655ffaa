"""The Method interface: a pretext task + encoder + heads + loss (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import coerce_setting
from ..encoders.base import Encoder
from ..errors import SelfSupError, did_you_mean
from ..types import Family, LossOutput, Modality

Pretext = Callable[[torch.Tensor, "torch.Generator | None"], dict[str, torch.Tensor]]
"""Turns a raw batch (uint8 images [B, C, H, W] on the training device) into inputs + pseudo-labels."""

Examples = Callable[[int, int], Iterator[Any]]
"""``(count, seed) -> batches of up to count raw samples chosen by seed``, the same in every process: what a
method with a ``prepare(examples, device)`` step fits to before training (HuBERT's k-means)."""


@dataclass
class Hparams:
    """Base of each method's hyper-parameters (paper defaults, scaled for small images)."""


class Method(nn.Module):
    """Base class. Subclasses set the class attributes and implement ``pretext`` and ``loss``.

    ``optim_defaults`` are the optimiser settings the method's paper recipe suggests for short runs
    (``optimizer``, adamw when absent; ``lr`` for batch size 256, scaled linearly by the engine;
    ``weight_decay``); the user's config wins. ``lr_multipliers`` maps submodule names to a multiple of the
    learning rate they train with (e.g. a faster predictor).
    """

    name: ClassVar[str]
    family: ClassVar[Family]
    modalities: ClassVar[frozenset[Modality]]
    paper: ClassVar[str]
    default_encoder: ClassVar[str | None] = None  # None: the modality's default for ``encoder_kind``
    encoder_kind: ClassVar[str] = "any"  # what the method needs of an encoder: "any", "transformer"
    teacher_setting: ClassVar[str | None] = None  # the hyper-parameter naming a stored encoder to learn from
    optim_defaults: ClassVar[dict[str, float | str]] = {"lr": 1e-3, "weight_decay": 1e-4}
    lr_multipliers: ClassVar[dict[str, float]] = {}
    Hparams: ClassVar[type[Hparams]] = Hparams

    def __init__(self, encoder: Encoder, input_size: int, **hparams: Any) -> None:
        super().__init__()
        self.encoder = encoder
        self.input_size = input_size
        self.hp = self.parse_hparams(hparams)

    @classmethod
    def encoder_for(cls, modality: Modality | str) -> str:
        """The encoder the method trains on ``modality`` when none is named: its own default, else the
        modality's default encoder of the method's ``encoder_kind``."""
        from ..modalities import get_modality_info

        return cls.default_encoder or get_modality_info(modality).default_encoder(cls.encoder_kind)

    @classmethod
    def parse_hparams(cls, values: dict[str, Any]) -> Hparams:
        valid = {f.name for f in fields(cls.Hparams)}
        for key in values:
            if key not in valid:
                raise SelfSupError(
                    f"method {cls.name!r} has no setting {key!r}{did_you_mean(key, valid)}; "
                    f"its settings are: {', '.join(sorted(valid)) or 'none'}"
                )
        defaults = {f.name: f.default for f in fields(cls.Hparams) if f.default is not MISSING}
        source = f"method {cls.name!r}"
        coerced = {}
        for key, value in values.items():
            default = defaults.get(key)
            coerced[key] = coerce_setting(value, default, key, source)
            if isinstance(default, int) and not isinstance(default, bool) and not isinstance(coerced[key], int):
                raise SelfSupError(f"{source}: {key}={value!r} must be a whole number, e.g. {key}={default}")
        return cls.Hparams(**coerced)

    def pretext(self, modality: Modality | str) -> Pretext:  # pragma: no cover - interface
        """How a raw batch of ``modality`` (a name) becomes inputs + pseudo-labels. A method that runs on
        several modalities asks the modality (``selfsup.modalities.get_modality``) for views or masks."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def on_step_end(self, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1] (EMA updates etc.)."""
