"""The findings of ``selfsup inspect``, computed from :class:`~.items.InspectedItems` alone (no modality here):
exact duplicates (equal digests), near-duplicates and outliers (one k-nearest-neighbour pass over the distinct
items), leaks (each ``--against`` item's nearest DATA item), class balance and the distributions of the
per-item statistics."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .items import InspectedItems
from .neighbors import DEFAULT_BLOCK, nearest

DEFAULT_NEIGHBOURS = 10
"""Neighbours kept per item: near-duplicates of an item beyond its 10 most similar are not listed."""
DEFAULT_OUTLIER_K = 5
"""An item's outlier score is 1 - cosine to its 5th nearest distinct item."""
OUTLIER_MADS = 3.5
"""An item is an outlier when its score exceeds the median score by more than 3.5 scaled median absolute
deviations (1.4826 x MAD): the modified z-score cut of Iglewicz & Hoaglin 1993 ("How to Detect and Handle
Outliers"), robust to the outliers themselves."""
DEFAULT_MAX_OUTLIERS = 20


@dataclass
class Settings:
    """The knobs of one inspection (all documented in ``selfsup inspect --help``)."""

    threshold: float | None = None  # near-duplicate cosine; None: the embedding's default
    outlier_k: int = DEFAULT_OUTLIER_K
    max_outliers: int = DEFAULT_MAX_OUTLIERS
    neighbours: int = DEFAULT_NEIGHBOURS
    block: int = DEFAULT_BLOCK


@dataclass
class Findings:
    """Everything ``inspect`` found; :meth:`to_json` is the ``--json`` document."""

    unreadable: list[tuple[str, str]]
    exact_duplicates: list[list[str]]
    near_duplicates: list[dict[str, Any]]
    leaks: list[dict[str, Any]]
    outliers: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    drop: set[int] = field(default_factory=set)  # item indices --write-clean leaves out

    def to_json(self) -> dict[str, Any]:
        return {"unreadable": [name for name, _ in self.unreadable], "exact_duplicates": self.exact_duplicates,
                "near_duplicates": self.near_duplicates, "leaks": self.leaks, "outliers": self.outliers,
                **self.summary}


def duplicate_groups(digests: list[str]) -> list[list[int]]:
    """Indices of items sharing a digest, groups of two or more, each in item order, groups by first item."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(digests):
        groups[d].append(i)
    return [g for g in groups.values() if len(g) > 1]


def _representatives(digests: list[str]) -> tuple[list[int], dict[str, int]]:
    """The first item of every distinct digest, and digest -> that item."""
    first: dict[str, int] = {}
    for i, d in enumerate(digests):
        first.setdefault(d, i)
    return list(first.values()), first


def distribution(values: list[float]) -> dict[str, float]:
    """min, 5 %, 25 %, median, 75 %, 95 %, max and mean of ``values``."""
    a = np.asarray(values, dtype=np.float64)
    q = np.quantile(a, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return {name: round(float(v), 4) for name, v in zip(("min", "p5", "p25", "median", "p75", "p95", "max"), q)} | {
        "mean": round(float(a.mean()), 4)}


def _round(x: float) -> float:
    return round(float(x), 4)


def inspect_items(data: InspectedItems, against: InspectedItems | None = None,
                  settings: Settings | None = None) -> Findings:
    """Every finding on ``data`` (and its leaks into ``against``)."""
    settings = settings or Settings()
    threshold = data.threshold if settings.threshold is None else settings.threshold
    groups = duplicate_groups(data.digests)
    drop = {i for g in groups for i in g[1:]}
    reps, first_of = _representatives(data.digests)

    near: list[dict[str, Any]] = []
    outliers: list[dict[str, Any]] = []
    cutoff = None
    vectors = data.embeddings[reps]
    k = max(settings.neighbours, settings.outlier_k)
    if len(reps) > 1:
        found = nearest(vectors, None, min(k, len(reps) - 1), settings.block)
        seen: set[tuple[int, int]] = set()
        sims, idx = found.similarities, found.indices
        rows, cols = torch.nonzero(sims >= threshold, as_tuple=True)
        for r, c in zip(rows.tolist(), cols.tolist()):
            a, b = reps[r], reps[int(idx[r, c])]
            pair = (min(a, b), max(a, b))
            if pair not in seen:
                seen.add(pair)
                near.append({"a": data.ids[pair[0]], "b": data.ids[pair[1]], "similarity": _round(sims[r, c]),
                             "_b": pair[1]})
        near.sort(key=lambda p: (-p["similarity"], p["a"], p["b"]))
        drop |= {p.pop("_b") for p in near}
        kth = min(settings.outlier_k, sims.shape[1]) - 1
        scores = (1.0 - sims[:, kth]).clamp(min=0.0).numpy()
        median = float(np.median(scores))
        mad = 1.4826 * float(np.median(np.abs(scores - median)))
        cutoff = median + OUTLIER_MADS * max(mad, 1e-6)
        order = np.argsort(-scores, kind="stable")
        outliers = [{"path": data.ids[reps[i]], "score": _round(scores[i])}
                    for i in order[: settings.max_outliers] if scores[i] > cutoff]

    leaks: list[dict[str, Any]] = []
    leaked_against = 0
    if against is not None and len(against.ids) and len(reps):
        best = nearest(against.embeddings, vectors, 1, settings.block)
        for j in range(len(against.ids)):
            same = first_of.get(against.digests[j])
            if same is not None:
                i, sim = same, 1.0
            elif best.similarities[j, 0] >= threshold:
                i, sim = reps[int(best.indices[j, 0])], float(best.similarities[j, 0])
            else:
                continue
            leaked_against += 1
            leaks.append({"data": data.ids[i], "against": against.ids[j], "similarity": _round(sim), "_i": i})
        leaks.sort(key=lambda p: (-p["similarity"], p["against"]))
        drop |= {p.pop("_i") for p in leaks}

    summary: dict[str, Any] = {
        "counts": {
            "items": len(data.ids) + len(data.unreadable), "readable": len(data.ids), "unreadable": len(data.unreadable),
            "exact_duplicate_groups": len(groups), "exact_duplicate_copies": sum(len(g) - 1 for g in groups),
            "near_duplicate_pairs": len(near), "outliers": len(outliers), "kept_by_write_clean": len(data.ids) - len(drop),
            **({"against_items": len(against.ids) + len(against.unreadable), "against_unreadable": len(against.unreadable),
                "leaked_against_items": leaked_against,
                "leak_rate": _round(leaked_against / max(len(against.ids), 1))} if against is not None else {}),
        },
        "thresholds": {"near_duplicate_cosine": threshold, "neighbours_per_item": k, "outlier_k": settings.outlier_k,
                       "outlier_score": "1 - cosine to the outlier_k-th nearest distinct item",
                       "outlier_cutoff": None if cutoff is None else _round(cutoff)},
        "embedding": data.embedding,
        "unreadable_reasons": {name: reason for name, reason in data.unreadable},
        "distributions": {name: distribution(values) for name, values in data.stats.items() if values},
        "class_balance": dict(sorted(Counter(data.labels).items())) if data.labels is not None else None,
    }
    if against is not None:
        summary["against_unreadable"] = [name for name, _ in against.unreadable]
    return Findings(data.unreadable, [[data.ids[i] for i in g] for g in groups], near, leaks, outliers, summary, drop)
