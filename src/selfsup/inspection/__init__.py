"""``selfsup inspect``: data quality before (or after) pretraining, for every modality.

The modality reads its items once (:meth:`~selfsup.modalities.base.Modality.inspect_items` →
:class:`~.items.InspectedItems`); everything else is modality-free: exact duplicates by content digest,
near-duplicates, outliers and train/test leaks by blocked cosine k-nearest-neighbour search
(:mod:`.neighbors`, memory linear in the number of items), class balance and distributions
(:mod:`.findings`), the JSON, clean list and summary (:mod:`.output`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SelfSupError
from .findings import Findings, Settings, inspect_items
from .items import InspectedItems
from .output import summary_lines, write_clean, write_json

INSPECTION_FILE = "inspection.json"
"""What ``selfsup inspect DATA --run RUN`` writes into the run folder (the ``--json`` document)."""

__all__ = ["INSPECTION_FILE", "Findings", "InspectedItems", "Settings", "inspect_data", "summary_lines"]


def _data_settings(stored, modality: str, encoding: str | None):
    """The data settings items are read with: the run's (columns, sample rate, text field) when a run is given,
    else the defaults; ``encoding`` when given."""
    from ..config import RunConfig, apply_dict, set_value

    config = RunConfig()
    if stored is not None and stored.data:
        known = set(config.data.__dataclass_fields__)
        apply_dict(config, {"data": {k: v for k, v in stored.data.items() if k in known}}, str(stored.folder))
    set_value(config, "data.modality", modality, source="--modality")
    if encoding is not None:
        set_value(config, "data.encoding", encoding, source="--encoding")
    return config.data


def _read(modality, what: str, data: str | Path, settings, loaded, device: str, batch_size: int) -> InspectedItems:
    """The modality's items of ``data``; ``what`` (DATA, --against) is named in the one-line errors."""
    from ..shards.sources import is_pattern_or_url

    if not is_pattern_or_url(data) and not Path(data).expanduser().exists():
        raise SelfSupError(f"{what} {data}: no such file or folder; give {modality.info.data_help}")
    try:
        items = modality.inspect_items(data, settings, loaded, device, batch_size)
    except SelfSupError as exc:
        if what == "DATA":
            raise
        raise SelfSupError(f"--against {data}: {exc} (--against holds the same kind of data as DATA: "
                           f"{modality.info.unit})") from None
    if not items.ids:
        found = f"; all {len(items.unreadable)} are unreadable, first: {items.unreadable[0][0]}" if items.unreadable else ""
        raise SelfSupError(f"{what} {data}: no readable {modality.info.unit}{found}; check the files or --modality")
    return items


def inspect_data(data: str | Path, *, run: str | Path | None = None, against: str | Path | None = None,
                 modality: str | None = None, json_path: str | Path | None = None,
                 clean_path: str | Path | None = None, settings: Settings | None = None, encoding: str | None = None,
                 device: str = "cpu", batch_size: int = 256) -> tuple[Findings, dict[str, Path]]:
    """Inspect ``data`` (and its leaks into ``against``); returns the findings and the files written by label
    (``json``, ``run``: ``RUN/inspection.json``, ``clean``)."""
    from ..artifacts import find_stored
    from ..artifacts import load as load_stored
    from ..config import DataConfig
    from ..modalities import get_modality

    stored = loaded = None
    if run is not None:
        stored = find_stored(run)
        if stored is None:
            raise SelfSupError(f"--run {run}: not a selfsup run or export folder (no config.yaml or selfsup.json); "
                               "give the folder `selfsup pretrain --out` wrote, or leave --run out")
    implementation = get_modality(modality or (stored.modality if stored else DataConfig().modality))
    if stored is not None:
        implementation.require_stored(stored, f"--run {run}")
        loaded = load_stored(run)
    data_settings = _data_settings(stored, implementation.name, encoding)
    items = _read(implementation, "DATA", data, data_settings, loaded, device, batch_size)
    other = (_read(implementation, "--against", against, data_settings, loaded, device, batch_size)
             if against is not None else None)
    findings = inspect_items(items, other, settings)
    findings.summary = {"modality": implementation.name, "data": str(data),
                        "against": None if against is None else str(against),
                        "run": None if run is None else str(run), **findings.summary}
    written: dict[str, Path] = {}
    if json_path is not None:
        written["json"] = write_json(findings, json_path)
    if stored is not None and not stored.export:
        written["run"] = write_json(findings, stored.folder / INSPECTION_FILE)
        from ..report import refresh_report

        refresh_report(stored.folder)  # the run's page shows the findings
    if clean_path is not None:
        write_clean(items, findings, clean_path)
        written["clean"] = Path(clean_path)
    return findings, written
