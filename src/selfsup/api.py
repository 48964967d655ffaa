"""The Python face of selfsup: pretrain, evaluate, embed, export, load.

Each function assembles inputs and calls the layer that does the work; the CLI calls these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig, apply_dict, parse_overrides, set_value
from .encoders import Encoder, build_encoder
from .errors import SelfSupError


def _device(device: str | None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def pretrain(
    data: str | Path,
    method: str | None = None,
    out: str | Path = "runs/selfsup",
    *,
    encoder: str | None = None,
    epochs: int | None = None,
    max_minutes: float | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    image_size: int | None = None,
    seed: int | None = None,
    precision: str | None = None,
    strict: bool | None = None,
    cache: str | None = None,
    accelerator: str | None = None,
    devices: int | str | None = None,
    num_nodes: int | None = None,
    strategy: str | None = None,
    num_workers: int | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    progress_bar: bool | None = None,
) -> Path:
    """Pretrain an encoder on unlabeled data into the run folder ``out`` (resumes if it exists).

    Settings are layered: defaults < ``config`` (YAML path or dict) < keyword arguments <
    ``overrides`` (``{"optim.lr": 1e-3}`` or ``["optim.lr=1e-3"]``). Returns the run folder.
    """
    from .train.run import pretrain_run

    cfg = RunConfig()
    if isinstance(config, Mapping):
        apply_dict(cfg, dict(config), "config")
    elif config is not None:
        cfg = RunConfig.load(config)
    flags = {
        "data.path": str(data), "method.name": method, "encoder.name": encoder, "trainer.epochs": epochs,
        "trainer.max_minutes": max_minutes, "trainer.max_steps": max_steps, "trainer.batch_size": batch_size, "data.image_size": image_size,
        "trainer.seed": seed, "trainer.precision": precision, "data.strict": strict, "trainer.progress_bar": progress_bar,
        "data.cache": cache, "trainer.accelerator": accelerator, "trainer.devices": devices,
        "trainer.num_nodes": num_nodes, "trainer.strategy": strategy, "trainer.num_workers": num_workers,
    }
    for key, value in flags.items():
        if value is not None:
            set_value(cfg, key, value, source="argument")
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:  # "key=value" strings, as on the command line
        items = parse_overrides([overrides] if isinstance(overrides, str) else list(overrides or []))
    for key, value in items:
        set_value(cfg, key, value)
    pretrain_run(cfg, out)
    return Path(out)


def load(path: str | Path) -> Encoder:
    """The encoder stored in a run folder or a safetensors export, rebuilt from safe formats only.

    ``encoder.config`` describes its architecture and input size.
    """
    from .artifacts import load as load_stored

    return load_stored(path).encoder


def evaluate(
    run: str | Path,
    train: str | Path,
    test: str | Path,
    *,
    protocols: Iterable[str] = ("knn", "linear", "finetune"),
    label_fractions: Iterable[float] = (0.01, 0.1, 1.0),
    baseline: str | None = "scratch",
    json_path: str | Path | None = None,
    seed: int = 0,
    finetune_steps: int | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
):
    """Label-efficiency evaluation of a run's encoder (and a scratch baseline) on labeled data.

    Writes ``json_path`` (default ``RUN/eval.json``) and ``RUN/plots/label_efficiency.png``;
    returns the list of :class:`selfsup.evaluation.EvalResult`.
    """
    from .data.images import load_labeled
    from .artifacts import load as load_stored
    from .evaluation import plot_label_efficiency, run_label_efficiency, write_json
    from .pretext.views import eval_transform, light_augment

    run = Path(run).expanduser()
    loaded = load_stored(run)
    if baseline not in (None, "none", "scratch"):
        raise SelfSupError(f"--baseline {baseline!r} is not available for {loaded.modality} data; use scratch or none")
    size = loaded.input_size
    train_set = load_labeled(train, size)
    test_set = load_labeled(test, size, classes=train_set.classes)
    encoders = {"pretrained": loaded.encoder}
    if baseline == "scratch":
        torch.manual_seed(seed)
        encoders["scratch"] = build_encoder(loaded.encoder.config)
    augment = light_augment(size, scale=(0.5, 1.0))
    results = run_label_efficiency(
        encoders, train_set.images, train_set.labels, test_set.images, test_set.labels,
        protocols=list(protocols), fractions=[float(f) for f in label_fractions],
        train_transform=augment, eval_transform=eval_transform(size), seed=seed, device=_device(device),
        finetune_kwargs={"steps": finetune_steps} if finetune_steps else None, progress=progress,
    )
    write_json(results, Path(json_path) if json_path else run / "eval.json")
    plot_label_efficiency(results, run / "plots" / "label_efficiency.png")
    return results


def embed(run: str | Path, data: str | Path, out: str | Path, *, batch_size: int = 256,
          device: str | None = None, strict: bool = False) -> Path:
    """Embeddings of every image under ``data`` with the run's encoder, to ``.npy`` or ``.parquet``."""
    from .data.images import load_unlabeled
    from .artifacts import load as load_stored
    from .artifacts import write_embeddings
    from .evaluation import extract_features
    from .pretext.views import eval_transform

    loaded = load_stored(run)
    dataset = load_unlabeled(data, loaded.input_size, strict=strict)
    feats = extract_features(loaded.encoder, dataset.images, eval_transform(loaded.input_size),
                             batch_size=batch_size, device=_device(device))
    return write_embeddings(feats, dataset.paths, out)


EXPORT_FORMATS = ("safetensors",)


def export(run: str | Path, out: str | Path, *, format: str = "safetensors") -> Path:
    """Write the run's encoder in ``format`` to the folder ``out``."""
    from .artifacts import export_safetensors, load as load_stored

    if format not in EXPORT_FORMATS:
        raise SelfSupError(f"export format {format!r} is not supported yet; available: {', '.join(EXPORT_FORMATS)}")
    return export_safetensors(load_stored(run), out)
