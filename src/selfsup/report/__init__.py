"""``RUN/report.html``: everything a run knows on one self-contained page (issue 19).

Written at the end of ``selfsup pretrain``, refreshed by ``selfsup evaluate`` (and ``selfsup inspect --run``),
rebuilt by ``selfsup report RUN``. It reads what the run folder holds: config.yaml (settings, the ``auto:`` method
choice), metrics.csv and health.json (curves, collapse alarms), inspection.json (data quality), eval.json (label
efficiency), embedding_sample.npz (test embeddings kept by ``evaluate``; otherwise a sample of the training data is
embedded through the modality). A part whose file is missing says what to run to get it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import SelfSupError
from .embeddings import SAMPLE_LIMIT, EmbeddingSample, load_test_sample
from .page import Section, render_page, unavailable
from .sections import (embedding_sections, label_efficiency_section, method_section, quality_section,
                       settings_section, training_section)

REPORT_FILE = "report.html"
log = logging.getLogger("selfsup")


def write_report(run_dir: str | Path, device: str | None = None) -> Path:
    """Build ``RUN/report.html`` from the run folder ``run_dir`` and return its path. A part that cannot be built
    shows why instead; only a folder that is no run (no config.yaml) is an error."""
    import yaml

    from ..modalities import get_modality_info

    run_dir = Path(run_dir).expanduser()
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise SelfSupError(f"{run_dir}: not a selfsup run folder (no config.yaml); pass the --out folder of "
                           "`selfsup pretrain`")
    config_text = config_path.read_text(encoding="utf-8")
    config = yaml.safe_load(config_text) or {}
    data = config.get("data") or {}
    from ..config import DataConfig

    unit = get_modality_info(data.get("modality") or DataConfig().modality).unit
    seed = int((config.get("trainer") or {}).get("seed") or 0)
    sample, show, why_not = _embedding_sample(run_dir, data, seed, device)
    total = sample.total if sample is not None else None
    sections = [
        _guarded("settings", "Settings and data",
                 lambda: settings_section(run_dir, config, config_text, total, unit)),
        _guarded("quality", "Data quality", lambda: quality_section(run_dir)),
        _guarded("training", "Training curves and health", lambda: training_section(run_dir)),
        _guarded("method", "Method choice", lambda: method_section(config)),
        _guarded("evaluation", "Label efficiency", lambda: label_efficiency_section(run_dir)),
    ]
    try:
        sections += embedding_sections(sample, why_not, show, seed)
    except Exception as exc:  # noqa: BLE001 - one part failing leaves the others
        sections += [_failed("map", "Embedding map", exc), _failed("neighbours", "Nearest neighbours", exc)]
    method = (config.get("method") or {}).get("name")
    subtitle = f"{data.get('modality')} · {method} · {(config.get('encoder') or {}).get('name')} · {data.get('path')}"
    out = run_dir / REPORT_FILE
    partial = out.with_name(f".{REPORT_FILE}.{os.getpid()}.tmp")
    partial.write_text(render_page(f"selfsup run {run_dir.resolve().name}", subtitle, sections), encoding="utf-8")
    partial.replace(out)  # a reader never sees half a page
    return out


def refresh_report(run_dir: str | Path) -> Path | None:
    """:func:`write_report` for the commands that end with it (pretrain, evaluate, inspect): a failure is a
    warning, never their failure."""
    try:
        return write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - the run or evaluation itself succeeded
        log.warning("%s/%s was not written (%s: %s); `selfsup report %s` retries", run_dir, REPORT_FILE,
                    type(exc).__name__, exc, run_dir)
        return None


def _guarded(anchor: str, title: str, build: Callable[[], Section]) -> Section:
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - a damaged file spoils its own part only
        return _failed(anchor, title, exc)


def _failed(anchor: str, title: str, exc: Exception) -> Section:
    log.warning("report: %s could not be built (%s: %s)", title.lower(), type(exc).__name__, exc)
    return Section(anchor, title, unavailable(f"could not be built ({type(exc).__name__}: {exc})"))


def _embedding_sample(run_dir: Path, data: dict, seed: int, device: str | None
                      ) -> tuple[EmbeddingSample | None, Callable[[list[str]], list] | None, str]:
    """The sample to map (evaluate's test embeddings, else the training data's through the modality), how the
    modality shows samples, and why there is no sample when there is none."""
    import torch

    from ..artifacts import load
    from ..modalities import get_modality

    try:
        loaded = load(run_dir)
    except SelfSupError as exc:
        return None, None, f"the run's encoder cannot be loaded ({exc})"
    modality = get_modality(loaded.modality)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sample = load_test_sample(run_dir)
    if sample is None:
        try:
            drawn = modality.report_sample(loaded, data["path"], SAMPLE_LIMIT, seed, data, device)
        except Exception as exc:  # noqa: BLE001 - e.g. DATA moved since training
            log.warning("report: the training data was not embedded (%s: %s)", type(exc).__name__, exc)
            return None, None, (f"the training data {data.get('path')} could not be embedded ({exc}); "
                                f"run `selfsup evaluate {run_dir} --train LABELED --test LABELED`")
        sample = EmbeddingSample(drawn.features.float().numpy(), drawn.references, None,
                                 f"the training data {data.get('path')}", drawn.total)
    return sample, lambda references: modality.report_items(loaded, references, data), ""


__all__ = ["REPORT_FILE", "refresh_report", "write_report"]
