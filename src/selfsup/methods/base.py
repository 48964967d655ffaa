"""The Method interface: a pretext task + encoder + heads + loss (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import check_fields, coerce_setting, setting, spec_of
from ..encoders.base import Encoder
from ..errors import SelfSupError, did_you_mean
from ..types import Family, LossOutput, Modality

Pretext = Callable[[torch.Tensor, "torch.Generator | None"], dict[str, torch.Tensor]]
"""Turns a raw batch (uint8 images [B, C, H, W] on the training device) into inputs + pseudo-labels."""

Examples = Callable[[int, int], Iterator[Any]]
"""``(count, seed) -> batches of up to count raw samples chosen by seed``, the same in every process: what a
method with a ``prepare(examples, device)`` step fits to before training (HuBERT's k-means)."""


MAX_WIDTH = 65536  # widths of heads and projections: a 65536 x 65536 float32 layer alone is 16 GiB
MAX_PROTOTYPES = 2**20


def width(default: int | None, **kw: Any) -> Any:
    """A layer width or count of units: a whole number in [1, 65536]."""
    return setting(default, kind=int, low=1, high=MAX_WIDTH, **kw)


def count(default: int | None, high: int, low: int = 1, **kw: Any) -> Any:
    """A whole number in [low, high] (iterations, negatives, layers...)."""
    return setting(default, kind=int, low=low, high=high, **kw)


def probability(default: float, **kw: Any) -> Any:
    """A probability or momentum in [0, 1]."""
    return setting(default, kind=float, low=0, high=1, **kw)


def ratio(default: float, **kw: Any) -> Any:
    """A share strictly between 0 and 1 (a mask ratio: 0 masks nothing, 1 leaves nothing to see)."""
    return setting(default, kind=float, low=0, high=1, low_open=True, high_open=True, **kw)


def scale(default: float, **kw: Any) -> Any:
    """A positive share of at most 1 (a crop's smallest area, a span-start probability)."""
    return setting(default, kind=float, low=0, high=1, low_open=True, **kw)


def softmax_temperature(default: float | None, **kw: Any) -> Any:
    """A softmax temperature: a number in (0, 100]."""
    return setting(default, kind=float, low=0, high=100, low_open=True, **kw)


def loss_weight(default: float, **kw: Any) -> Any:
    """A loss weight: a number in [0, 1e6]."""
    return setting(default, kind=float, low=0, high=1e6, **kw)


def distinct_numbers(default_factory: Callable[[], list[float]], low: float, high: float, **kw: Any) -> Any:
    """A list of 2 to 64 distinct numbers, each in (low, high]."""
    def valid(values: Any) -> bool:
        return (isinstance(values, list) and 2 <= len(values) <= 64 and len(set(values)) == len(values)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and low < v <= high for v in values))

    return setting(default_factory=default_factory, kind=list, valid=valid,
                   expect=f"a list of 2 to 64 distinct numbers in ({low:g}, {high:g}]", **kw)


@dataclass
class Hparams:
    """Base of each method's hyper-parameters (paper defaults, scaled for small images). Each field is
    declared with its valid values (:func:`selfsup.config.setting`, or the shorthands above)."""


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
    # True: that setting is required and names any --init SOURCE, built by the engine as the modality's
    # init_settings say (selfsup.teachers) and handed over as teacher_model=; False: an optional selfsup run or
    # export folder, handed over as teacher= (HuBERT's targets_from)
    teacher_from_init: ClassVar[bool] = False
    teacher_encoder_setting: ClassVar[str | None] = None  # teacher_from_init: the hyper-parameter naming its --encoder
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
        """The method's hyper-parameters from ``values`` (names, types and ranges checked: one line per mistake)."""
        declared = {f.name: f for f in fields(cls.Hparams)}
        for key in values:
            if key not in declared:
                raise SelfSupError(
                    f"method {cls.name!r} has no setting {key!r}{did_you_mean(key, declared)}; "
                    f"its settings are: {', '.join(sorted(declared)) or 'none'}"
                )
        source = f"method {cls.name!r}"
        coerced = {}
        for key, value in values.items():
            f = declared[key]
            default = f.default if f.default is not MISSING else None
            spec = spec_of(f)
            label = f"method.{key} ({cls.name})" if spec is not None else key
            coerced[key] = coerce_setting(value, default, label, source, spec)
            if spec is not None and spec.valid is None and not spec.is_kind(coerced[key]):
                raise SelfSupError(spec.message(coerced[key], label))
        hp = cls.Hparams(**coerced)  # the ranges after its own checks (__post_init__), the more specific
        check_fields(hp, "method", cls.name)
        return hp

    def pretext(self, modality: Modality | str) -> Pretext:  # pragma: no cover - interface
        """How a raw batch of ``modality`` (a name) becomes inputs + pseudo-labels. A method that runs on
        several modalities asks the modality (``selfsup.modalities.get_modality``) for views or masks."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def on_step_end(self, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1] (EMA updates etc.)."""
