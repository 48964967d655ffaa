"""A pretraining run: a folder with config.yaml, checkpoints/, metrics.csv — created or resumed."""

from __future__ import annotations

import logging
from dataclasses import asdict
import warnings
from datetime import timedelta
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml

from ..config import RunConfig, validate
from ..encoders import build_encoder, check_encoder_settings
from ..errors import SelfSupError
from ..modalities import get_modality, get_modality_info, modality_infos
from ..probe import check_probe, load_probe, loaded_in_training
from ..registry import get_method
from ..runtime import resolve_precision, retain_freed_memory
from ..teachers import adopt_teacher_data, build_teacher, parameter_count, save_teacher_record
from ..trackers import check_tracker
from .checkpoint import AtomicCheckpointIO, RunCheckpoint, check_resume, load_checkpoint, load_run_checkpoint
from .health import CollapseStopped, HealthMonitor, HealthRecord, collapse_hints
from .lock import LOCK_FILE, RunLock
from .logger import log_settings, run_loggers
from .module import NonFiniteLossError, PretrainModule
from .online_probe import OnlineProbe
from .optimizers import choose_optimizer, default_lr_and_decay
from .pretrained import encoder_lr_scale, frozen_norm_stats
from .sources import TrainData

log = logging.getLogger("selfsup")

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
RESUME_FIX = "move the damaged files out of checkpoints/ to start over in this folder, or use a new --out folder"


def prepared_first() -> frozenset[str]:
    """Names written into a run folder before its config.yaml: the lock, and what data preparation saves (a
    tokenizer, an item map)."""
    return frozenset({LOCK_FILE}).union(*(info.prepared_files for info in modality_infos()))


def resolve(config: RunConfig) -> RunConfig:
    """Check every setting (names, types, ranges: one line for the first mistake, before any data is read or
    any folder written) and fill in the method's defaults (hyper-parameters, encoder)."""
    validate(config)
    modality = get_modality_info(config.data.modality)
    info = get_method(config.method.get("name") or modality.default_method, modality.name)
    hparams = {k: v for k, v in config.method.items() if k != "name"}
    config.method = {"name": info.name, **asdict(info.cls.parse_hparams(hparams))}
    config.encoder = {"name": info.cls.encoder_for(modality.name), **config.encoder}
    config.optim.optimizer = choose_optimizer(info.cls, config.optim.optimizer)
    check_encoder_settings(config.encoder)  # fail on a typo or a bad number before any data is read
    check_tracker(config.trainer.logger)  # --logger's extra installed
    if config.trainer.probe:
        check_probe(modality.name, config.trainer.probe)
    if info.cls.teacher_from_init:  # before the data is prepared: the student reads the teacher's inputs
        adopt_teacher_data(config, info.cls)
    return config


def check_resumable(run_dir: Path, config: RunConfig) -> bool:
    """True when ``run_dir`` holds a checkpoint of the same method and encoder to resume from."""
    last = run_dir / CHECKPOINT_DIR / "last.ckpt"
    saved_path = run_dir / CONFIG_FILE
    if not last.exists() and not last.with_name("best.ckpt").exists():
        return False
    if not saved_path.exists():
        raise SelfSupError(f"{run_dir}: has checkpoints but no {CONFIG_FILE}; choose a new --out folder")
    saved = yaml.safe_load(saved_path.read_text()) or {}
    for section in ("method", "encoder"):
        before, now = (saved.get(section) or {}).get("name"), getattr(config, section).get("name")
        if before != now:
            raise SelfSupError(
                f"{run_dir} was made by {section} {before!r}, not {now!r}; "
                f"use a new --out folder, or --{section} {before} to resume it"
            )
    before = (saved.get("optim") or {}).get("optimizer") or "adamw"
    if before != config.optim.optimizer:  # its saved state would not fit another optimiser
        raise SelfSupError(
            f"{run_dir} was trained with optimizer {before!r}, not {config.optim.optimizer!r}; use a new --out "
            f"folder, or --set optim.optimizer={before} to resume it"
        )
    return True


def load_teacher(method: str, setting: str, source: str):
    """The frozen encoder a method learns from, stored in the run or export folder ``source`` (the method's
    ``teacher_setting``, e.g. HuBERT's ``targets_from``): loaded here, by the engine, not by the method."""
    from ..artifacts import load

    try:
        return load(source).encoder
    except SelfSupError as exc:
        raise SelfSupError(f"{method}: method.{setting}={source}: {exc}") from None


def build_method(config: RunConfig, data: TrainData, resume: bool = False):
    """Encoder + method exactly as the (resolved) config describes them, sized for ``data``. The encoder
    settings the data decides (image size, vocabulary) are written into ``config.encoder``; a teacher the
    method names (``Method.teacher_setting``) is loaded and handed to it: a stored run or export, or (a method
    with ``teacher_from_init``) any ``--init`` source, given the same data settings as the student. A run started
    with ``--init RUN`` loads that run's weights only when it starts (``resume``: the run's own checkpoint replaces
    them)."""
    info = get_method(config.method["name"], config.data.modality)
    config.encoder = {**config.encoder, **data.encoder_kwargs}
    encoder = build_encoder(config.encoder, initial_weights=not resume)
    hparams = {k: v for k, v in config.method.items() if k != "name"}
    setting = info.cls.teacher_setting
    if info.cls.teacher_from_init:
        built = build_teacher(config, info.cls, data.encoder_kwargs)
        log.info("%s: student %s with %d parameters, teacher %s with %d", info.name, config.encoder["name"],
                 parameter_count(encoder), hparams[setting], parameter_count(built))
        teacher = {"teacher_model": built}
    else:
        teacher = {"teacher": load_teacher(info.name, setting, hparams[setting])} if setting and hparams.get(setting) \
            else {}
    method = info.cls(encoder, data.input_size, **teacher, **hparams)
    # as built: a checkpoint may decide some (wav2vec2 continuing a checkpoint's quantiser takes its sizes)
    config.method = {"name": info.name, **asdict(method.hp)}
    return method


def load_data(config: RunConfig, run_dir: Path) -> TrainData:
    """The training data of the run's modality."""
    return get_modality(config.data.modality).load_train_data(config.data, run_dir,
                                                              progress=config.trainer.progress_bar)


def fit_to_data(method, examples, device: str) -> None:
    """Run a method's ``prepare(examples)`` (e.g. HuBERT's k-means) on ``device``: the engine moves the method
    there and back, and every example batch there."""

    def placed(count: int, seed: int):
        for batch in examples(count, seed):
            yield {key: value.to(device) for key, value in batch.items()}

    method.to(device)
    try:
        method.prepare(placed)
    finally:
        method.to("cpu")


def _devices(devices: str | int) -> str | int:
    """``"4"`` (from the CLI or YAML) means four devices; ``"0,1"`` and ``"auto"`` pass through to Lightning."""
    return int(devices) if isinstance(devices, str) and devices.strip().isdigit() else devices


def _fit_device(accelerator: str) -> str:
    """Where a method fits its targets before training (k-means): the GPU when training will use one."""
    return "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"


def pretrain_run(config: RunConfig, run_dir: str | Path) -> Path:
    """Pretrain (or resume) into ``run_dir``, holding its lock from before anything is written there until the
    run ends (see ``lock.py``); returns the path of the last checkpoint. ``--method auto`` pilots the modality's
    shortlist first (``auto.py``)."""
    from .auto import auto_run, is_auto

    if is_auto(config):
        return auto_run(config, run_dir)
    config = resolve(config)  # every setting checked before the run folder (or its lock) is touched
    with RunLock(Path(run_dir).expanduser()) as lock:
        return _pretrain_locked(config, lock.run_dir)


def _pretrain_locked(config: RunConfig, run_dir: Path) -> Path:
    resume = check_resumable(run_dir, config)
    if not resume and run_dir.exists() and not (run_dir / CONFIG_FILE).exists() and \
            any(p.name not in prepared_first() for p in run_dir.iterdir()):
        raise SelfSupError(f"{run_dir}: folder exists and is not a selfsup run; choose a new --out folder")
    # a resumed run must not replay the first epochs' shuffles and augmentations
    resumed_from, resumed = load_run_checkpoint(run_dir / CHECKPOINT_DIR, "resuming from", RESUME_FIX) if resume else (None, {})
    resumed_step = int(resumed.get("global_step", 0))
    pl.seed_everything(config.trainer.seed + resumed_step, verbose=False)
    if config.trainer.accelerator in ("auto", "cpu") and not torch.cuda.is_available():
        retain_freed_memory()

    data = load_data(config, run_dir)  # data.cache: memory or stream
    method = build_method(config, data, resume=resume)
    tc = config.trainer
    batch_size = min(tc.batch_size, data.num_samples)
    if batch_size < 2:
        raise SelfSupError(f"{config.data.path}: only {data.num_samples} {data.unit}; self-supervised training needs at least 2")

    prepare = getattr(method, "prepare", None)
    if prepare is not None and not resume:  # fitted once; a resumed run restores the fit from its checkpoint
        if data.examples is None:
            raise SelfSupError(f"method {config.method['name']!r} fits targets to the data, which "
                               f"{config.data.modality} data does not offer yet")
        fit_to_data(method, data.examples, _fit_device(tc.accelerator))
    tc.precision = resolve_precision(tc.precision, tc.accelerator)  # resolved, for config.yaml
    callbacks = []
    if tc.probe:  # read before training starts: a bad labels file fails here, in one line
        probe = load_probe(loaded_in_training(config, method.encoder, run_dir), tc.probe,
                           getattr(config.data, "encoding", "utf-8"), tc.seed)
        callbacks.append(OnlineProbe(probe, tc.probe_every or 5 * tc.health_every))
    run_dir.mkdir(parents=True, exist_ok=True)
    health = HealthRecord.read(run_dir) if resume else HealthRecord()
    health.stop = tc.on_collapse == "stop"
    monitor = HealthMonitor(tc.health_every, tc.collapse_patience, run_dir, health)
    checkpoints = RunCheckpoint(run_dir / CHECKPOINT_DIR, tc.checkpoint_every, health)
    trainer = pl.Trainer(
        max_epochs=tc.epochs,
        max_time=timedelta(minutes=tc.max_minutes) if tc.max_minutes else None,
        max_steps=tc.max_steps if tc.max_steps else -1,
        precision=tc.precision,
        accelerator=tc.accelerator,
        devices=_devices(tc.devices),
        num_nodes=tc.num_nodes,
        strategy=tc.strategy,
        sync_batchnorm=tc.sync_batchnorm and tc.accelerator != "cpu" and torch.cuda.is_available(),
        logger=run_loggers(run_dir, tc.logger, flush_every=tc.log_every * 5),
        callbacks=[monitor, checkpoints, *callbacks],  # a step's health check comes before its checkpoint
        plugins=[AtomicCheckpointIO()],
        log_every_n_steps=tc.log_every,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=tc.progress_bar,
        num_sanity_val_steps=0,
        default_root_dir=str(run_dir),
    )
    loader = data.make_loader(method.pretext(config.data.modality), batch_size, tc, trainer.world_size)
    # --batch-size is per process (as in PyTorch DDP); the default lr scales with the global batch
    global_batch = batch_size * trainer.world_size
    lr, weight_decay = default_lr_and_decay(type(method), config.optim, global_batch)
    config.optim.lr, config.optim.weight_decay = lr, weight_decay  # resolved, for config.yaml
    monitor.hints = collapse_hints(method, lr, weight_decay)
    module = PretrainModule(method, config.data.modality, config.optim, lr, weight_decay,
                            pretext_in_loader=data.pretext_in_loader,
                            encoder_scale=encoder_lr_scale(config.optim, method.encoder.config),
                            frozen_norm_stats=frozen_norm_stats(tc, method.encoder.config))
    if trainer.is_global_zero:
        config.save(run_dir / CONFIG_FILE)
        log_settings(trainer.loggers, config.to_dict())
        if type(method).teacher_from_init:  # what --baseline teacher rebuilds it with, and the parameter counts
            save_teacher_record(run_dir, config.method[type(method).teacher_setting], method.teacher,
                                method.encoder, data.encoder_kwargs)
    if resume:
        check_resume(resumed_from, resumed, module, RESUME_FIX)  # Lightning would fail on it with a traceback
        log.info("resuming %s from %s", run_dir, resumed_from)
    if resume and int(resumed.get("epoch", 0)) > tc.epochs:  # Lightning would stop with a traceback
        raise SelfSupError(f"{run_dir} has trained {resumed['epoch']} epochs already and --epochs {tc.epochs} counts "
                           f"all of them (across resumes); give --epochs above {resumed['epoch']} to train on")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
        try:
            trainer.fit(module, loader, ckpt_path=str(resumed_from) if resume else None,
                        weights_only=True)
        except NonFiniteLossError as exc:
            kept = checkpoints.last_path
            step = load_checkpoint(kept).get("global_step") if kept.exists() else None
            where = f"last good checkpoint kept: {kept} (step {step})" if kept.exists() else "no checkpoint was written yet"
            precision = "" if config.trainer.precision.startswith("32") else " or use --precision 32-true"
            raise SelfSupError(
                f"{exc}; training stopped, {where}. Lower the learning rate and run the same command "
                f"again to resume: --set optim.lr={lr / 10:.2g}{precision}"
            ) from None
    if trainer.is_global_zero:
        health.write(run_dir)
    if health.stopped_at is not None:
        raise CollapseStopped(health.summary(run_dir))
    return checkpoints.last_path
