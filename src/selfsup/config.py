"""One validated run configuration: data, method, encoder, optim, trainer.

A config is built from defaults, then a YAML file (``--config``), then CLI flags, then
``--set section.key=value`` overrides, and is written resolved to ``RUN_DIR/config.yaml``.
The ``method`` and ``encoder`` sections are open: besides ``name`` they take the method's
hyper-parameters and the encoder builder's arguments, validated when those are built.

Every setting declares its valid values next to its default (:func:`setting`: a dataclass field whose
metadata holds a :class:`Setting`); :func:`validate` checks a whole config, :func:`check_fields` any
dataclass of declared fields (a method's ``Hparams``, a modality's data settings), before any data is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import SelfSupError, did_you_mean
from .modalities.image import MAX_IMAGE_SIZE  # noqa: F401  (image sizes anywhere: encoders, crops)
from .settings import SETTING, Setting, check_fields, format_bytes, setting, setting_label, spec_of  # noqa: F401
from .trackers import LOGGERS

CACHE_MODES = ("auto", "memory", "stream")
OPTIMIZERS = ("adamw", "sgd", "lars")
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "64", "16",
              "bf16", "transformer-engine", "transformer-engine-float16")  # Lightning's, plus auto
MAX_STEPS = 10**9  # steps, and every-N-steps intervals


def _devices_valid(value: Any) -> bool:
    def count(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and (x == -1 or 1 <= x <= 4096)

    if isinstance(value, list):
        return bool(value) and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 4096 for x in value)
    if not isinstance(value, str):
        return count(value)
    text = value.strip()
    if text == "auto" or (text.lstrip("-").isdigit() and count(int(text))):
        return True
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return "," in text and bool(parts) and all(p.isdigit() and int(p) <= 4096 for p in parts)


def _modality_names() -> list[str]:
    from .modalities import modality_names

    return modality_names()


def _lightning_names(kind: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        if kind == "strategy":
            from lightning.pytorch.strategies import StrategyRegistry

            return ["auto", *StrategyRegistry.available_strategies()]
        from lightning.pytorch.accelerators import AcceleratorRegistry

        return ["auto", "gpu", "tpu", *AcceleratorRegistry.available_accelerators()]

    return names




_COMMON_DATA = [
    ("path", str, setting("")),
    ("modality", str, setting("image", choices=_modality_names, flag="--modality")),
    ("strict", bool, setting(False, flag="--strict")),
    # memory: decode/tokenize once and keep in RAM; stream: read per sample; auto: by size
    ("cache", str, setting("auto", choices=CACHE_MODES, flag="--cache")),
    ("shuffle_buffer", int, setting(1000, low=0, high=10_000_000, help="sharded DATA: samples shuffled at a time "
                                    "within the epoch's shard order (0 or 1: each shard's own order)")),
]


def _data_fields() -> list[tuple[str, Any, Field]]:
    """The ``data`` section's fields: the settings every modality shares, then each modality's own (declared in
    its package as ``SETTINGS``, with defaults and ranges); a setting two modalities share (``max_length``:
    tokens per text, items per history) is declared alike by both."""
    from .modalities import modality_settings

    declared: dict[str, tuple[str, Any, Field]] = {name: (name, kind, spec) for name, kind, spec in _COMMON_DATA}
    for modality, settings in modality_settings().items():
        for f in fields(settings):
            if f.name in declared and declared[f.name][2].default != f.default:
                raise TypeError(f"data.{f.name} is declared twice with different defaults (modality {modality})")
            declared.setdefault(f.name, (f.name, f.type, field(default=f.default, metadata=f.metadata)))
    return list(declared.values())


DataConfig = make_dataclass("DataConfig", _data_fields())
DataConfig.__module__ = __name__
DataConfig.__doc__ = ("The data section: what DATA is and how it is read. Shared settings (path, modality, strict, "
                      "cache) and every modality's own (``SETTINGS`` in ``selfsup/modalities/<name>/``).")


def rebuild_data_config() -> None:
    """Recompose the ``data`` section after a modality registered or left (a plug-in): ``DataConfig`` stays the
    same class object, with the registered modalities' settings as its fields."""
    rebuilt = make_dataclass("DataConfig", _data_fields())
    for f in fields(DataConfig):
        if f.name not in rebuilt.__dataclass_fields__ and f.default is not MISSING:
            delattr(DataConfig, f.name)
    for name in ("__init__", "__repr__", "__eq__", "__dataclass_fields__", "__dataclass_params__", "__match_args__",
                 "__annotations__"):
        if name in vars(rebuilt):
            setattr(DataConfig, name, vars(rebuilt)[name])
    for f in fields(rebuilt):
        if f.default is not MISSING:
            setattr(DataConfig, f.name, f.default)


@dataclass
class OptimConfig:
    # None: the method's recipe (adamw, lars for byol)
    optimizer: str | None = setting(None, kind=str, valid=lambda v: isinstance(v, str) and v.lower() in OPTIMIZERS,
                                    expect=f"one of {', '.join(OPTIMIZERS)}")
    # None: the method's default for batch 256, scaled by batch_size / 256
    lr: float | None = setting(None, kind=float, low=0, high=1e9, help="null: the method's default")
    weight_decay: float | None = setting(None, kind=float, low=0, high=10, help="null: the method's default")
    warmup: float = setting(0.05, low=0, high=1, high_open=True)  # fraction of all steps spent in linear warmup, then cosine decay
    # the encoder's learning rate as a multiple of lr when it starts from a checkpoint (--init): pretrained weights
    # take small steps, new heads full ones (discriminative learning rates, Howard & Ruder 2018)
    init_lr_scale: float | None = setting(None, kind=float, low=0, high=1e3, low_open=True,
                                          help="null: 0.1 for an encoder started from a checkpoint (--init), else 1")
    momentum: float = setting(0.9, low=0, high=1, high_open=True)  # sgd only


@dataclass
class TrainerConfig:
    epochs: int = setting(100, low=1, high=10**6, flag="--epochs")
    max_minutes: float | None = setting(None, kind=float, low=0, high=525600, low_open=True, flag="--max-minutes",
                                        help="null: no time limit")
    # stop after this many optimiser steps in all (with epochs: whichever comes first)
    max_steps: int | None = setting(None, kind=int, low=1, high=MAX_STEPS, flag="--max-steps", help="null: no step limit")
    batch_size: int = setting(256, low=2, high=2**20, flag="--batch-size",
                              help="per device; self-supervised losses compare at least 2 samples")
    # auto: bf16-mixed on GPUs and on CPUs with native bf16, else 32-true
    precision: str = setting("auto", choices=PRECISIONS, flag="--precision")
    seed: int = setting(0, low=0, high=2**32 - 1, flag="--seed")
    accelerator: str = setting("auto", choices=_lightning_names("accelerator"), flag="--accelerator")
    devices: str | int = setting("auto", kind=object, valid=_devices_valid, flag="--devices",
                                 expect="auto, -1 (all), a count in [1, 4096] or a list of device indices such as 0,1")
    num_nodes: int = setting(1, low=1, high=65536, flag="--num-nodes")
    strategy: str = setting("auto", choices=_lightning_names("strategy"), flag="--strategy")  # Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...
    sync_batchnorm: bool = setting(True)  # global BatchNorm statistics across GPUs (as SimCLR/BYOL); GPU only
    # keep a pretrained encoder's BatchNorm running statistics (its layers normalise with them while training;
    # their weights still train): statistics of augmented views replace what a checkpoint measured on clean images
    frozen_norm_stats: bool | None = setting(None, kind=bool, help="null: true for an encoder started from a "
                                             "checkpoint (--init), else false")
    num_workers: int = setting(0, low=0, high=1024, flag="--num-workers")
    log_every: int = setting(10, low=1, high=MAX_STEPS)
    health_every: int = setting(50, low=1, high=MAX_STEPS)
    checkpoint_every: int = setting(200, low=1, high=MAX_STEPS)
    progress_bar: bool = setting(True)
    # where metrics go besides metrics.csv (always written): TensorBoard, MLflow or Weights & Biases, offline in RUN
    logger: str = setting("csv", choices=LOGGERS, flag="--logger")
    # collapse alarms (train/health.py): warn, or stop keeping the last healthy checkpoint, after this many checks
    on_collapse: str = setting("warn", choices=("warn", "stop"), flag="--on-collapse")
    collapse_patience: int = setting(3, low=1, high=MAX_STEPS)
    # a labelled set (as `evaluate --train` takes) scored by kNN and a linear probe every probe_every steps
    probe: str | None = setting(None, kind=str, flag="--probe", help="null: no online probe")
    probe_every: int | None = setting(None, kind=int, low=1, high=MAX_STEPS, help="null: 5 x health_every")


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
        """Write the settings to ``path``, keeping the record sections (:data:`RECORDS`) the file already has."""
        kept = {}
        if path.exists():
            old = yaml.safe_load(path.read_text()) or {}
            kept = {key: old[key] for key in RECORDS if isinstance(old, dict) and key in old}
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump({**self.to_dict(), **kept}, sort_keys=False))
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
RECORDS = ("auto",)  # what a run recorded besides its settings (``--method auto``'s choice): kept, never applied


def coerce_setting(value: Any, current: Any, key: str, source: str, spec: Setting | None = None) -> Any:
    """Convert ``value`` to the type of the field's current/default value (or of its declared ``spec``) where
    that is clear: ``"4"`` -> 4, ``2.0`` -> 2 for whole numbers, ``"yes"`` -> True. A value that cannot be
    converted raises a one-line error (with the valid values when ``spec`` is given)."""
    if value is None:
        return value
    if current is None and spec is not None and spec.kind in (int, float, bool):
        current = spec.kind()
    if current is None:
        return value
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError
            if isinstance(value, (bool, int, float)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if isinstance(current, int) and not isinstance(value, bool) and isinstance(value, (int, float, str)):
            number = float(value)
            return int(number) if math.isfinite(number) and number == int(number) else number
        if isinstance(current, float) and not isinstance(value, bool) and isinstance(value, (int, float, str)):
            return float(value)
    except ValueError:
        if spec is not None:
            raise SelfSupError(spec.message(value, key)) from None
        raise SelfSupError(f"{source}: {key}={value!r} is not a valid {type(current).__name__}") from None
    return value


def set_value(config: RunConfig, dotted: str, value: Any, source: str = "--set") -> None:
    """Set ``section.key`` to ``value`` (converted to the field's type; its range is checked by :func:`validate`)."""
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
    declared = {f.name: f for f in fields(target)}
    if key not in declared:
        raise SelfSupError(
            f"{source}: unknown setting {section}.{key}{did_you_mean(key, declared, prefix=section + '.')}; "
            f"{section} settings are: {', '.join(sorted(declared))}"
        )
    spec = spec_of(declared[key])
    setattr(target, key, coerce_setting(value, getattr(target, key), setting_label(section, key, spec), source, spec))
    target.__dict__.setdefault(GIVEN, set()).add(key)  # not a field: never saved, kept by copies


GIVEN = "_given_settings"


def was_given(section: Any, key: str) -> bool:
    """Whether ``key`` of the settings ``section`` (e.g. ``config.data``) was set by the user (a flag, ``--set``, a
    config file), even to its default value."""
    return key in section.__dict__.get(GIVEN, ())


COMMAND_SETTINGS: dict[str, Setting] = {
    # the numeric arguments of the commands other than pretrain (they are not part of a run's config)
    "evaluate.label_fractions": Setting(float, 0, 1, low_open=True, flag="--label-fractions",
                                        help="each, a share of the labeled train split"),
    "evaluate.label_minutes": Setting(float, 0, 10**7, low_open=True, flag="--label-minutes",
                                      help="each, minutes of transcribed audio"),
    "evaluate.seed": Setting(int, 0, 2**32 - 1, flag="--seed"),
    "evaluate.finetune_steps": Setting(int, 1, 10**7, optional=True, flag="--finetune-steps"),
    "embed.batch_size": Setting(int, 1, 2**20, flag="--batch-size"),
    "embed.part_rows": Setting(int, 1, 2**31, flag="--part-rows", help="inputs per parquet part"),
    "inspect.threshold": Setting(float, -1, 1, optional=True, flag="--threshold", help="a cosine similarity"),
    "inspect.batch_size": Setting(int, 1, 2**20, flag="--batch-size"),
    "inspect.outlier_k": Setting(int, 1, 1000, flag="--outlier-k"),
    "inspect.max_outliers": Setting(int, 0, 10**6, flag="--max-outliers"),
    "inspect.block": Setting(int, 1, 2**20, flag="--block"),
}


def check_arguments(command: str, **values: Any) -> None:
    """One line for a numeric argument of ``command`` out of its range (:data:`COMMAND_SETTINGS`); a list or
    tuple is checked item by item."""
    for key, value in values.items():
        spec = COMMAND_SETTINGS[f"{command}.{key}"]
        label = setting_label(command, key, spec)
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise SelfSupError(f"{label} must be {spec.expected()}; got none")
        for item in items:
            spec.check(item, label)


def validate(config: RunConfig) -> RunConfig:
    """Check every declared setting of the data, optim and trainer sections (one line for the first invalid
    one). The method and encoder sections are checked where they are parsed (``Method.parse_hparams``,
    ``encoders.check_encoder_settings``)."""
    for section in ("data", "optim", "trainer"):
        check_fields(getattr(config, section), section)
    return config


def apply_dict(config: RunConfig, raw: dict[str, Any], source: str) -> None:
    for section, values in raw.items():
        if section in RECORDS:
            continue
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
