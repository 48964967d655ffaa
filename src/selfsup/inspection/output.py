"""What ``selfsup inspect`` writes: the ``--json`` document, the ``--write-clean`` list and the short summary
printed on stdout."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SelfSupError
from .findings import Findings
from .items import InspectedItems

EXAMPLES = 3  # examples printed per finding


def write_json(findings: Findings, path: str | Path) -> Path:
    """The findings as JSON at ``path`` (written atomically: a ``.tmp`` file renamed over it)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(findings.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def write_clean(items: InspectedItems, findings: Findings, path: str | Path) -> int:
    """The items to keep, one line each, at ``path``: every readable item except the later copies of exact
    duplicates, the second item of each near-duplicate pair and the DATA items that leak into ``--against``
    (outliers are kept: they are listed for a look, not judged). Returns the lines written."""
    if any(line is None for line in items.clean_lines):
        raise SelfSupError(f"--write-clean {path}: the samples of tar shards cannot be listed as DATA; inspect the "
                           "folder the shards were made from, or use the findings in --json to filter")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [line for i, line in enumerate(items.clean_lines) if i not in findings.drop]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return len(lines)


def summary_lines(findings: Findings) -> list[str]:
    """A few lines for a person: the counts, then the strongest examples of each finding."""
    counts, thresholds = findings.summary["counts"], findings.summary["thresholds"]
    lines = [f"{counts['readable']} readable item(s) of {counts['items']}; similarity: {findings.summary['embedding']} "
             f"(near-duplicate from cosine {thresholds['near_duplicate_cosine']})"]

    def section(title: str, rows: list[str], total: int) -> None:
        lines.append(f"{title}: {total}")
        lines.extend(f"  {row}" for row in rows[:EXAMPLES])
        if total > EXAMPLES and rows:
            lines.append(f"  ... ({total - min(EXAMPLES, len(rows))} more in --json)")

    reasons = findings.summary["unreadable_reasons"]
    section("unreadable", [f"{name}: {reasons[name]}" for name, _ in findings.unreadable], len(findings.unreadable))
    section("exact duplicate groups", [" = ".join(g) for g in findings.exact_duplicates], len(findings.exact_duplicates))
    section("near-duplicate pairs", [f"{p['similarity']:.3f}  {p['a']} ~ {p['b']}" for p in findings.near_duplicates],
            len(findings.near_duplicates))
    if "leaked_against_items" in counts:
        section(f"--against items with a near-duplicate in DATA ({100 * counts['leak_rate']:.2f} % of "
                f"{counts['against_items'] - counts['against_unreadable']})",
                [f"{p['similarity']:.3f}  {p['against']} ~ {p['data']}" for p in findings.leaks], len(findings.leaks))
    section("outliers", [f"{p['score']:.3f}  {p['path']}" for p in findings.outliers], len(findings.outliers))
    balance = findings.summary.get("class_balance")
    if balance:
        lines.append("classes: " + ", ".join(f"{name} {count}" for name, count in balance.items()))
    for name, d in findings.summary["distributions"].items():
        lines.append(f"{name}: min {d['min']:g}, median {d['median']:g}, max {d['max']:g}")
    return lines
