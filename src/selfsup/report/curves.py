"""Training curves from ``RUN/metrics.csv``: loss, learning rate, throughput, and every health (``health/*``) and
online-probe (``probe/*``) column, one panel each, with the collapse alarms of ``RUN/health.json`` marked."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

LEADING = ("loss_step", "loss", "loss_epoch", "lr", "samples_per_s")
GROUPS = ("health/", "probe/")
STEP = "step"


def read_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Every numeric column of a Lightning CSV log as (step, value) points, in file order; blank cells skipped.
    A row without a step takes the last step seen (Lightning writes epoch metrics on their own rows)."""
    series: dict[str, list[tuple[float, float]]] = {}
    step = 0.0
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            step = _number(row.get(STEP)) if _number(row.get(STEP)) is not None else step
            for column, cell in row.items():
                value = _number(cell)
                if column and column not in (STEP, "epoch") and value is not None:
                    series.setdefault(column, []).append((step, value))
    return series


def _number(cell: Any) -> float | None:
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def plotted_columns(series: dict[str, list]) -> list[str]:
    """The columns drawn, in order: the loss (per step when logged so, else per epoch), learning rate and throughput,
    then the health and probe columns, then the method's own metrics."""
    losses = [c for c in ("loss_step", "loss", "loss_epoch") if c in series][:1]
    leading = losses + [c for c in ("lr", "samples_per_s") if c in series]
    grouped = [c for group in GROUPS for c in sorted(series) if c.startswith(group)]
    others = sorted(c for c in series if c not in LEADING and c not in grouped)
    return leading + grouped + others


def curves_figure(series: dict[str, list[tuple[float, float]]], alarms: list[dict[str, Any]]):
    """A grid of panels (three per row), one per :func:`plotted_columns` column against the step; an alarm of
    ``health.json`` on a column is drawn at its step (red dashed) with its floor (grey dotted)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = plotted_columns(series)
    rows = max(1, math.ceil(len(columns) / 3))
    fig = Figure(figsize=(12, 3.0 * rows), dpi=90)
    FigureCanvasAgg(fig)
    for i, column in enumerate(columns):
        ax = fig.add_subplot(rows, 3, i + 1)
        steps, values = zip(*series[column])
        ax.plot(steps, values, marker="." if len(steps) < 30 else None, color="C0")
        for alarm in alarms:
            if alarm.get("metric") in (column, column.split("/")[-1]):
                ax.axvline(float(alarm.get("step", 0)), color="C3", linestyle="--", linewidth=1)
                if alarm.get("floor") is not None:
                    ax.axhline(float(alarm["floor"]), color="0.5", linestyle=":", linewidth=1)
        if column == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set_title(column, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig
