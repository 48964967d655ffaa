"""Label-efficiency evaluation: a pretrained encoder against the same architecture from scratch.

For each fraction of the labels (a class-balanced subset, as in SimCLR, Chen et al. 2020 §B.5,
and Hénaff et al. 2020), each encoder is scored with the weighted kNN (Wu et al. 2018), a
linear probe (Kolesnikov et al. 2019) and/or end-to-end fine-tuning. The gap between the
pretrained and the scratch curves is what pretraining buys at each label budget.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from selfsup.encoders.base import Encoder

from .features import extract_features
from .finetune import finetune_accuracy
from .knn import knn_accuracy
from .linear import linear_probe_accuracy
from .subsets import class_balanced_subset
from .tasks import lower_is_better

PROTOCOLS: tuple[str, ...] = ("knn", "linear", "finetune")


@dataclass
class EvalResult:
    """One score: ``encoder`` ("pretrained", "scratch", or a baseline: "pixels", "tfidf", "mfcc", ...) under
    ``protocol``."""

    protocol: str
    label_fraction: float
    n_labels: int
    encoder: str
    metric: str
    value: float

    def to_dict(self) -> dict:
        """Plain dict with exactly the dataclass fields (JSON-ready)."""
        return asdict(self)


def run_label_efficiency(
    encoders: dict[str, Encoder],
    train_inputs: Tensor,
    train_labels: Tensor,
    test_inputs: Tensor,
    test_labels: Tensor,
    protocols: list[str],
    fractions: list[float],
    train_transform: Callable[[Tensor, torch.Generator], Tensor],
    eval_transform: Callable[[Tensor], Tensor],
    seed: int = 0,
    device: str | torch.device = "cpu",
    knn_k: int = 200,
    knn_temperature: float = 0.1,
    finetune_kwargs: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[EvalResult]:
    """Score every encoder under every protocol at every label fraction.

    Frozen features are extracted once per encoder (only if "knn" or "linear" is asked for);
    the class-balanced subset of each fraction is drawn once and shared by every encoder and
    protocol. ``finetune_kwargs`` are passed to :func:`finetune_accuracy` (steps, batch_size,
    lr, weight_decay). Returns one :class:`EvalResult` per (encoder, fraction, protocol).
    """
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; valid protocols are {list(PROTOCOLS)}")
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"label fractions must be in (0, 1], got {f}")
    say = progress or (lambda _line: None)
    train_labels = train_labels.reshape(-1).long().cpu()
    test_labels = test_labels.reshape(-1).long().cpu()
    num_classes = int(max(train_labels.max().item(), test_labels.max().item())) + 1
    subsets = {f: class_balanced_subset(train_labels, f, seed) for f in fractions}
    ft_kwargs = dict(finetune_kwargs or {})

    results: list[EvalResult] = []
    for name, encoder in encoders.items():
        if any(p in ("knn", "linear") for p in protocols):
            say(f"[{name}] extracting features ({train_inputs.shape[0]} train, {test_inputs.shape[0]} test)")
            train_feats = extract_features(encoder, train_inputs, eval_transform, device=device)
            test_feats = extract_features(encoder, test_inputs, eval_transform, device=device)
        for fraction in fractions:
            idx = subsets[fraction]
            n_labels = int(idx.numel())
            for protocol in protocols:
                say(f"[{name}] {protocol} @ {fraction:g} of labels ({n_labels} labels)")
                if protocol == "knn":
                    value = knn_accuracy(
                        train_feats[idx], train_labels[idx], test_feats, test_labels,
                        k=knn_k, temperature=knn_temperature, num_classes=num_classes,
                    )
                elif protocol == "linear":
                    value = linear_probe_accuracy(
                        train_feats[idx], train_labels[idx], test_feats, test_labels, seed=seed
                    )
                else:
                    value = finetune_accuracy(
                        encoder, train_inputs[idx], train_labels[idx], test_inputs, test_labels,
                        num_classes, train_transform, eval_transform,
                        seed=seed, device=device, **ft_kwargs,
                    )
                results.append(EvalResult(protocol, float(fraction), n_labels, name, "accuracy", float(value)))
    return results


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def table_cells(results: Sequence[EvalResult]) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of :func:`format_table`, as text cells (the run report shows them as HTML)."""
    encoders = _unique(r.encoder for r in results)
    protocols = _unique(r.protocol for r in results)
    cells = {(r.protocol, r.metric, r.label_fraction, r.n_labels, r.encoder): r.value for r in results}
    rows = sorted(
        _unique((r.protocol, r.metric, r.label_fraction, r.n_labels) for r in results),
        key=lambda row: (protocols.index(row[0]), row[2], row[3]),  # stable: metrics keep their order
    )
    gains = [(ref, label) for ref, label in (("scratch", "gain"), ("init", "gain_init"), ("teacher", "gain_teacher"))
             if "pretrained" in encoders and ref in encoders]
    with_metric = {r.metric for r in results} != {"accuracy"}  # e.g. spearman: say so, or it reads as an accuracy
    header = ["protocol", *(["metric"] if with_metric else []), "fraction", "n_labels", *encoders, *(label for _, label in gains)]
    body: list[list[str]] = []
    for row in rows:
        protocol, metric, fraction, n_labels = row
        values = [cells.get((*row, e)) for e in encoders]
        line = [protocol, *([metric] if with_metric else []), f"{fraction:g}", str(n_labels)]
        line += ["-" if v is None else f"{v:.4f}" for v in values]
        for ref, _ in gains:
            p, s = cells.get((*row, "pretrained")), cells.get((*row, ref))
            line.append("-" if p is None or s is None else f"{p - s:+.4f}")
        body.append(line)
    return header, body


def format_table(results: Sequence[EvalResult]) -> str:
    """Fixed-width table: one row per (protocol, metric, fraction, n_labels), one column per encoder,
    plus ``gain`` = pretrained − scratch, ``gain_init`` = pretrained − init (the checkpoint a run started
    from: did the domain pretraining beat it?) and ``gain_teacher`` = pretrained − teacher (what a distilled student
    gives up) when both are present, and a ``metric`` column when a metric
    other than accuracy appears."""
    header, body = table_cells(results)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(row) for row in body)]
    lower = _unique(r.metric for r in results if lower_is_better(r.metric))
    if lower:
        lines.append(f"{', '.join(lower)}: lower is better (a negative gain is an improvement)")
    return "\n".join(lines)


def write_json(results: Sequence[EvalResult], path: str | Path) -> None:
    """Write ``{"results": [r.to_dict(), ...]}`` (indented) to ``path``, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"results": [r.to_dict() for r in results]}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


_LINESTYLES = {"pretrained": "-", "scratch": "--"}
_OTHER_LINESTYLES = (":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 3)), (0, (3, 1, 1, 1)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _encoder_styles(encoders: Sequence[str]) -> dict[str, tuple[object, str]]:
    """(line style, marker) of every encoder, all different: solid for pretrained, dashed for scratch, and the
    others (baselines such as pixels, tfidf, mfcc) their own dotted/dash-dotted pattern, in order of appearance."""
    others = [e for e in encoders if e not in _LINESTYLES]
    return {e: (_LINESTYLES.get(e) or _OTHER_LINESTYLES[others.index(e) % len(_OTHER_LINESTYLES)],
                _MARKERS[i % len(_MARKERS)]) for i, e in enumerate(encoders)}


def curves(results: Sequence[EvalResult]) -> list[tuple[list[int], list[float], dict]]:
    """The plot's lines, one per (encoder, protocol) that has a finite score: number of labels, values, and the
    matplotlib style (``label`` ``protocol · encoder``; colour per protocol; line style and marker per encoder:
    solid for pretrained, dashed for scratch, dotted/dash-dotted for every other row such as a pixels, tfidf
    or mfcc baseline)."""
    palette = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]
    protocols = _unique((r.protocol, r.metric) for r in results)
    several_metrics = len(_unique(r.metric for r in results)) > 1
    styles = _encoder_styles(_unique(r.encoder for r in results))
    lines = []
    for encoder, (linestyle, marker) in styles.items():
        for i, (protocol, metric) in enumerate(protocols):
            points = sorted(
                (r.n_labels, r.value)
                for r in results
                if r.encoder == encoder and (r.protocol, r.metric) == (protocol, metric) and not math.isnan(r.value)
            )
            if points:
                xs, ys = zip(*points)
                name = f"{protocol} {metric}" if several_metrics else protocol
                lines.append((list(xs), list(ys), {"linestyle": linestyle, "marker": marker,
                                                   "color": palette[i % len(palette)],
                                                   "label": f"{name} · {encoder}"}))
    return lines


def metric_axis_label(results: Sequence[EvalResult]) -> str:
    """The y axis of the label-efficiency plot: its metrics, each error rate marked "lower is better"."""
    return ", ".join(f"{m} (lower is better)" if lower_is_better(m) else m
                     for m in _unique(r.metric for r in results)) or "accuracy"


def plot_label_efficiency(results: Sequence[EvalResult], path: str | Path) -> None:
    """PNG of accuracy against the number of labels (log x), the :func:`curves` of ``results``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    label_efficiency_figure(results).savefig(path, format="png")


def label_efficiency_figure(results: Sequence[EvalResult]):
    """The matplotlib Figure of :func:`plot_label_efficiency` (Agg canvas, no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for xs, ys, style in curves(results):
        ax.plot(xs, ys, **style)
    ax.set_xscale("log")
    ax.set_xlabel("number of labels")
    ax.set_ylabel(metric_axis_label(results))
    ax.set_title(f"Label efficiency: {' vs '.join(_unique(r.encoder for r in results))}")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # beside the axes: with several baselines it would hide the lines
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig
