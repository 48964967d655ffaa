"""One validated run configuration: data, method, encoder, optim, trainer.

A config is built from defaults, then a YAML file (``--config``), then CLI flags, then
``--set section.key=value`` overrides, and is written resolved to ``RUN_DIR/config.yaml``.
The ``method`` and ``encoder`` sections are open: besides ``name`` they take the method's
hyper-parameters and the encoder builder's arguments, validated when those are built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import SelfSupError, did_you_mean


@dataclass
class DataConfig:
    path: str = ""
    modality: str = "image"
    image_size: int = 32
    strict: bool = False
    cache: str = "auto"  # memory: decode/tokenize once and keep in RAM; stream: read per sample; auto: by size
    # text
    encoding: str = "utf-8"  # of the text files (e.g. latin-1)
    text_field: str = "text"  # the field holding the text in .jsonl / .csv / .tsv files
    tokenizer: str = "wordpiece"  # wordpiece | bpe (trained on DATA, saved in the run folder) | a tokenizer folder
    vocab_size: int = 8000  # of a trained tokenizer
    lowercase: bool = True  # a trained tokenizer lowercases (and strips accents for wordpiece)
    max_length: int = 128  # tokens per text (longer texts are truncated)
    # audio
    sample_rate: int = 16000  # every recording is resampled to this rate (Hz) and mixed down to mono
    clip_seconds: float = 2.0  # training crops (random) and evaluation clips (centre) are at most this long
    max_seconds: float = 60.0  # longer recordings are centre-cropped to this when read
    # behaviour sequences (interaction logs; data.max_length is the history length)
    user_column: str = "user"
    item_column: str = "item"
    timestamp_column: str = "timestamp"
    rating_column: str = ""  # optional; with min_rating, rows rated below it are dropped (implicit feedback)
    min_rating: float | None = None


@dataclass
class OptimConfig:
    optimizer: str | None = None  # adamw | sgd | lars; None: the method's recipe (adamw, lars for byol)
    lr: float | None = None  # None: the method's default for batch 256, scaled by batch_size / 256
    weight_decay: float | None = None  # None: the method's default
    warmup: float = 0.05  # fraction of all steps spent in linear warmup, then cosine decay
    momentum: float = 0.9  # sgd only


@dataclass
class TrainerConfig:
    epochs: int = 100
    max_minutes: float | None = None
    max_steps: int | None = None  # stop after this many optimiser steps in all (with epochs: whichever comes first)
    batch_size: int = 256
    precision: str = "auto"  # auto: bf16-mixed on GPUs and on CPUs with native bf16, else 32-true
    seed: int = 0
    accelerator: str = "auto"
    devices: str | int = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...
    sync_batchnorm: bool = True  # global BatchNorm statistics across GPUs (as SimCLR/BYOL); GPU only
    num_workers: int = 0
    log_every: int = 10
    health_every: int = 50
    checkpoint_every: int = 200
    progress_bar: bool = True


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    method: dict[str, Any] = field(default_factory=lambda: {"name": ""})  # "": the modality's default method
    encoder: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        tmp.replace(path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> RunConfig:
        config = cls()
        apply_dict(config, raw, source)
        return config

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise SelfSupError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise SelfSupError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise SelfSupError(f"{path}: expected a mapping of sections (data, method, encoder, optim, trainer)")
        return cls.from_dict(raw, source=str(path))


_SECTIONS = ("data", "method", "encoder", "optim", "trainer")
_OPTIONAL_FLOATS = frozenset({"optim.lr", "optim.weight_decay", "trainer.max_minutes", "data.min_rating"})
_OPTIONAL_INTS = frozenset({"trainer.max_steps"})


def coerce_setting(value: Any, current: Any, key: str, source: str) -> Any:
    """Convert ``value`` to the type of the field's current/default value where that is clear."""
    if current is None or value is None:
        return value
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(current, int) and not isinstance(value, bool) and isinstance(value, (int, float, str)):
            return int(value) if float(value) == int(float(value)) else float(value)
        if isinstance(current, float) and isinstance(value, (int, float, str)):
            return float(value)
    except ValueError:
        raise SelfSupError(f"{source}: {key}={value!r} is not a valid {type(current).__name__}") from None
    return value


def set_value(config: RunConfig, dotted: str, value: Any, source: str = "--set") -> None:
    """Set ``section.key`` to ``value`` (validated against the section's fields)."""
    section, _, key = dotted.partition(".")
    if section not in _SECTIONS or not key:
        raise SelfSupError(
            f"{source}: {dotted!r} is not section.key{did_you_mean(section, _SECTIONS)}; "
            f"sections are {', '.join(_SECTIONS)}"
        )
    target = getattr(config, section)
    if isinstance(target, dict):
        target[key] = value
        return
    names = {f.name for f in fields(target)}
    if key not in names:
        raise SelfSupError(
            f"{source}: unknown setting {section}.{key}{did_you_mean(key, names, prefix=section + '.')}; "
            f"{section} settings are: {', '.join(sorted(names))}"
        )
    reference = getattr(target, key)
    if reference is None and f"{section}.{key}" in _OPTIONAL_FLOATS:
        reference = 0.0
    elif reference is None and f"{section}.{key}" in _OPTIONAL_INTS:
        reference = 0
    setattr(target, key, coerce_setting(value, reference, f"{section}.{key}", source))


def apply_dict(config: RunConfig, raw: dict[str, Any], source: str) -> None:
    for section, values in raw.items():
        if section not in _SECTIONS:
            raise SelfSupError(f"{source}: unknown section {section!r}{did_you_mean(str(section), _SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise SelfSupError(f"{source}: section {section!r} must be a mapping of key: value")
        for key, value in values.items():
            set_value(config, f"{section}.{key}", value, source)


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``["optim.lr=0.1", "method.temperature=0.2"]`` → [(key, YAML-parsed value), ...]."""
    parsed = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SelfSupError(f"--set {item!r}: expected section.key=value, e.g. --set optim.lr=0.001")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        parsed.append((key.strip(), value))
    return parsed
