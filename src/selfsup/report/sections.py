"""The report's sections, each from the run-folder files it reads; a missing file gives the one line saying what
to run (:func:`~.page.unavailable`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .curves import curves_figure, read_metrics
from .embeddings import EmbeddingSample, map_figure, nearest_neighbours, tsne_map
from .page import Section, esc, figure_png, img, picture_png, table, unavailable

SHOWN = 10  # examples listed per data-quality finding


def settings_section(run_dir: Path, config: dict[str, Any], config_text: str, total: int | None, unit: str) -> Section:
    """What was trained on what: modality, DATA and its size, method, encoder, the main optimisation settings,
    and the whole config.yaml."""
    data, trainer, optim = config.get("data", {}), config.get("trainer", {}), config.get("optim", {})
    rows = [
        ("modality", data.get("modality")),
        ("DATA", data.get("path")),
        ("DATA holds", f"{total:,} {unit}" if total is not None else f"not counted (the map shows {unit} of the test set)"),
        ("method", config.get("method", {}).get("name")),
        ("encoder", config.get("encoder", {}).get("name")),
        ("budget", ", ".join(f"{key} {trainer[key]}" for key in ("epochs", "max_steps", "max_minutes")
                             if trainer.get(key) not in (None, 0))),
        ("batch size", trainer.get("batch_size")),
        ("optimiser", f"{optim.get('optimizer')}, lr {optim.get('lr')}, weight decay {optim.get('weight_decay')}"),
        ("precision", trainer.get("precision")),
        ("seed", trainer.get("seed")),
    ]
    body = table(["setting", "value"], rows)
    body += f"<details><summary>config.yaml</summary><pre>{esc(config_text)}</pre></details>"
    return Section("settings", "Settings and data", body)


def quality_section(run_dir: Path) -> Section:
    """The findings of ``selfsup inspect DATA --run RUN`` (``RUN/inspection.json``): counts, the first examples of
    each, and the summary keys."""
    path = run_dir / "inspection.json"
    if not path.is_file():
        return Section("quality", "Data quality", unavailable(f"run `selfsup inspect DATA --run {run_dir}`"))
    found = json.loads(path.read_text(encoding="utf-8"))
    lists = {
        "unreadable": (["file"], lambda x: [x]),
        "exact_duplicates": (["files with the same content"], lambda x: [", ".join(map(str, x))]),
        "near_duplicates": (["a", "b", "similarity"], lambda x: [x.get("a"), x.get("b"), _number(x.get("similarity"))]),
        "leaks": (["data", "against", "similarity"],
                  lambda x: [x.get("data"), x.get("against"), _number(x.get("similarity"))]),
        "outliers": (["file", "score"], lambda x: [x.get("path"), _number(x.get("score"))]),
    }
    counts = [(name.replace("_", " "), len(found.get(name) or [])) for name in lists]
    body = table(["finding", "count"], counts, numeric_from=1)
    for name, (header, row) in lists.items():
        items = found.get(name) or []
        if items:
            more = f" (first {SHOWN} of {len(items)})" if len(items) > SHOWN else ""
            body += f"<h3>{esc(name.replace('_', ' '))}{esc(more)}</h3>" + table(header, [row(x) for x in items[:SHOWN]])
    summary = {key: value for key, value in found.items() if key not in lists}
    if summary:
        body += "<h3>summary</h3>" + table(["key", "value"], [(key, _summary_value(value))
                                                            for key, value in summary.items()])
    return Section("quality", "Data quality", body)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


def _summary_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)[:2000]


def training_section(run_dir: Path) -> Section:
    """Loss, learning rate, throughput and health curves of ``RUN/metrics.csv``, with the alarms of
    ``RUN/health.json``."""
    body = ""
    health_path = run_dir / "health.json"
    health = json.loads(health_path.read_text(encoding="utf-8")) if health_path.is_file() else None
    alarms = (health or {}).get("alarms") or []
    metrics = run_dir / "metrics.csv"
    series = read_metrics(metrics) if metrics.is_file() else {}
    if series:
        body += img(figure_png(curves_figure(series, alarms)), "training curves")
    else:
        body += unavailable("metrics.csv (written by `selfsup pretrain` with the csv logger, the default)")
    if health is None:
        body += unavailable("collapse alarms (health.json, written by `selfsup pretrain` when it checks the run's health)")
    elif not alarms:
        body += "<p>No collapse alarm: the health metrics stayed above their floors.</p>"
    else:
        body += '<p class="alarm">Collapse alarms:</p>' + table(
            ["step", "metric", "value", "floor", "message"],
            [[a.get("step"), a.get("metric"), _number(a.get("value")), _number(a.get("floor")), a.get("message")]
             for a in alarms])
    if health and health.get("stopped_at") is not None:
        body += (f'<p class="alarm">Stopped at step {esc(health["stopped_at"])}; last healthy checkpoint: '
                 f'{esc(health.get("healthy_checkpoint"))}</p>')
    return Section("training", "Training curves and health", body)


def method_section(config: dict[str, Any]) -> Section:
    """The candidates ``--method auto`` piloted, their label-free scores and the choice (config.yaml ``auto:``)."""
    auto = config.get("auto")
    if not auto:
        method = config.get("method", {}).get("name")
        return Section("method", "Method choice", unavailable(
            f"the method was given ({method}); `selfsup pretrain DATA --method auto` pilots the candidates and "
            "scores them here"))
    scores = auto.get("scores") or {}
    keys = [key for key in ("rankme", "alpha_req", "probe_knn", "score")
            if any(key in (s or {}) for s in scores.values())]
    rows = [[("✔ " if name == auto.get("chosen") else "") + str(name),
             *(_number((scores.get(name) or {}).get(key)) for key in keys)] for name in auto.get("candidates") or scores]
    body = (f"<p>Chosen: <b>{esc(auto.get('chosen'))}</b>. {esc(auto.get('reason', ''))}</p>"
            + table(["candidate", *keys], rows, numeric_from=1))
    if auto.get("pilot_minutes") is not None:
        body += f"<p>Pilots took {esc(_number(auto['pilot_minutes']))} minutes of the budget.</p>"
    if isinstance(auto.get("heldout"), dict):
        body += (f"<p>Scored on {esc(auto['heldout'].get('count'))} inputs held out of training "
                 f"({esc(auto['heldout'].get('path'))}).</p>")
    return Section("method", "Method choice", body)


def label_efficiency_section(run_dir: Path) -> Section:
    """The plot and the table of ``RUN/eval.json``, every baseline row included (the evaluation's own code)."""
    from ..evaluation.label_efficiency import EvalResult, label_efficiency_figure, table_cells

    path = run_dir / "eval.json"
    if not path.is_file():
        return Section("evaluation", "Label efficiency", unavailable(
            f"run `selfsup evaluate {run_dir} --train LABELED --test LABELED`"))
    results = [EvalResult(**row) for row in json.loads(path.read_text(encoding="utf-8"))["results"]]
    body = ""
    if any(r.n_labels > 0 for r in results):
        body += img(figure_png(label_efficiency_figure(results)), "label efficiency")
    header, rows = table_cells(results)
    numeric = header.index("fraction") if "fraction" in header else None
    return Section("evaluation", "Label efficiency", body + table(header, rows, numeric_from=numeric))


def embedding_sections(sample: EmbeddingSample | None, why_not: str, show: Callable[[list[str]], list] | None,
                       seed: int = 0) -> list[Section]:
    """The t-SNE map of the sample and its nearest-neighbour examples (``show``: the modality's view of the samples
    of some references, :meth:`~selfsup.modalities.base.Modality.report_items`)."""
    if sample is None or sample.features.shape[0] < 5:
        reason = why_not or "fewer than 5 samples to map"
        return [Section("map", "Embedding map", unavailable(reason)),
                Section("neighbours", "Nearest neighbours", unavailable(reason))]
    n = sample.features.shape[0]
    coloured = "coloured by label" if sample.labels else "no labels known: run `selfsup evaluate` to colour it"
    title = f"t-SNE of {n} embeddings from {sample.source} ({coloured})"
    body = f"<p>{esc(title)}</p>" + img(figure_png(map_figure(tsne_map(sample.features, seed), sample.labels,
                                                              "t-SNE")), "embedding map")
    map_section = Section("map", "Embedding map", body)
    if show is None:
        return [map_section, Section("neighbours", "Nearest neighbours", unavailable(why_not))]
    found = nearest_neighbours(sample.features, seed=seed)
    shown = sorted({i for query, neighbours in found for i in (query, *(j for j, _ in neighbours))})
    try:
        views = dict(zip(shown, show([sample.references[i] for i in shown])))
    except Exception as exc:  # noqa: BLE001 - the map stands without the examples
        return [map_section, Section("neighbours", "Nearest neighbours",
                                     unavailable(f"the samples could not be shown ({type(exc).__name__}: {exc})"))]
    rows = []
    for query, neighbours in found:
        cells = [_item(views[query], sample.labels[query] if sample.labels else None, None, None, query=True)]
        for j, similarity in neighbours:
            label = sample.labels[j] if sample.labels else None
            same = None if label is None else label == sample.labels[query]
            cells.append(_item(views[j], label, similarity, same))
        rows.append(f'<div class="items">{"".join(cells)}</div><hr>')
    body = ("<p>Each row: a sample (left) and its 5 nearest neighbours by cosine similarity of the embeddings"
            + (", green when they share its label" if sample.labels else "") + ".</p>" + "".join(rows))
    return [map_section, Section("neighbours", "Nearest neighbours", body)]


def _item(view, label: str | None, similarity: float | None, same: bool | None, query: bool = False) -> str:
    picture = img(picture_png(view.picture), view.caption, "thumb") if view.picture is not None else ""
    lines = [f"<figcaption>{esc(view.caption)}</figcaption>"]
    if label is not None:
        css = "" if same is None else (' class="match"' if same else ' class="miss"')
        lines.append(f"<div{css}>label: {esc(label)}</div>")
    if similarity is not None:
        lines.append(f"<div>cosine {similarity:.3f}</div>")
    css = ' class="query"' if query else ""
    return f"<figure{css}>{picture}{''.join(lines)}</figure>"
