"""Does `--method auto`'s label-free choice pick good methods? Every candidate of each modality's shortlist is
pretrained to the same budget on CIFAR-10 (a subset), SST-2, FSDD and MovieLens-100k; each is scored without labels
(RankMe, α-ReQ, their rank-average: what auto ranks by; here on a fixed sample of the training data, while auto
itself scores a part of DATA held out of its pilots' training) and by its
downstream quality (linear-probe accuracy with all labels; HR@10 of leave-one-out next-item ranking for sequences).
Reported: the Spearman correlation of each label-free score with the downstream figure per dataset, and whether
`--method auto` run with the same whole budget (pilots included) picks the best or second-best method.

    OMP_NUM_THREADS=1 python benchmarks/auto_method.py --minutes 1.5     # ≈ 40 min on one core

Data (read as the other benchmarks do, never copied into the repository): ../shared/data/images/cifar10 (tars),
text/sst2, audio/fsdd/recordings, sequences/ml-100k/u.data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

import selfsup
from selfsup.config import RunConfig
from selfsup.evaluation.label_free import alpha_quality, combined_scores
from selfsup.modalities import get_modality_info
from selfsup.train.auto import read_record, score_pilot

from cifar10_label_efficiency import cifar_subsets
from common import HERE, machine, provenance, work_folder
from movielens import prepare as prepare_movielens
from speech_digits import prepare as prepare_fsdd
from text_sentiment import read_labeled, write_tsv



def prepare(name: str, work: Path, args: argparse.Namespace) -> dict:
    """DATA to pretrain on, the modality, the pretrain keywords and the downstream protocol's inputs."""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        train, test = cifar_subsets(args.shared / "images" / "cifar10", folder, args.cifar_train, args.cifar_test, args.seed)
        return {"data": train, "modality": "image", "train": train, "test": test, "kwargs": {"batch_size": 128}}
    if name == "sst2":
        rows = read_labeled(args.shared / "text" / "sst2" / "stsa.binary.train", "utf-8")
        test = read_labeled(args.shared / "text" / "sst2" / "stsa.binary.test", "utf-8")
        corpus = folder / "corpus.txt"
        corpus.write_text("\n".join(text for _, text in rows) + "\n", encoding="utf-8")
        return {"data": corpus, "modality": "text", "train": write_tsv(rows, folder / "train.tsv"),
                "test": write_tsv(test, folder / "test.tsv"), "kwargs": {"batch_size": 64, "max_length": 64}}
    if name == "fsdd":
        train, test = prepare_fsdd(args.shared / "audio" / "fsdd", folder)
        return {"data": train, "modality": "audio", "train": train, "test": test,
                "kwargs": {"batch_size": 32, "clip_seconds": 1.0}}
    if name == "ml100k":
        log, _ = prepare_movielens(args.shared / "sequences" / "ml-100k", folder)
        return {"data": log, "modality": "sequence", "train": None, "test": None,
                "kwargs": {"batch_size": 128, "max_length": 50}}
    raise SystemExit(f"unknown dataset {name}")


def downstream(run: Path, task: dict) -> float:
    """Linear-probe accuracy with every training label; HR@10 (test) for a sequence run."""
    if task["train"] is None:
        results = selfsup.evaluate(run, protocols=["ranking"], baseline="none", json_path=run / "ranking.json")
        return next(r.value for r in results if r.encoder == "pretrained" and r.protocol == "ranking"
                    and r.metric == "hr@10")
    results = selfsup.evaluate(run, task["train"], task["test"], protocols=["linear"], label_fractions=[1.0],
                               baseline="none", json_path=run / "linear.json")
    return next(r.value for r in results if r.encoder == "pretrained")


def spearman(x: list[float], y: list[float]) -> float | None:
    finite = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    if len(finite) < 3 or len({a for a, _ in finite}) < 2:
        return None
    return float(spearmanr([a for a, _ in finite], [b for _, b in finite]).statistic)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="cifar10,sst2,fsdd,ml100k")
    p.add_argument("--minutes", type=float, default=1.5, help="pretraining budget per method, and auto's whole budget")
    p.add_argument("--cifar-train", type=int, default=2000)
    p.add_argument("--cifar-test", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data",
                   help="the shared data folder (images/, text/, audio/, sequences/)")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--render", type=Path, help="only write the RESULTS.md section from this results.json")
    args = p.parse_args()
    if args.render:
        report = json.loads(args.render.read_text())
        for key, r in report.items():
            if not key.startswith("_"):
                summarise(r)
        write_results(args, report, args.render.parent)
        return
    work = work_folder(args.work, "selfsup-auto-")
    start = time.time()
    report = {}
    for name in args.datasets.split(","):
        task = prepare(name, work, args)
        modality = task["modality"]
        common = dict(modality=modality, max_minutes=args.minutes, epochs=1000, seed=args.seed,
                      progress_bar=False, **task["kwargs"])
        rows = {}
        for method in get_modality_info(modality).auto_methods:
            run = work / name / f"run-{method}"
            t0 = time.time()
            selfsup.pretrain(task["data"], method, run, **common)
            config = RunConfig.load(run / "config.yaml")
            scores = score_pilot(run, config, "cpu")
            rows[method] = {**scores, "downstream": downstream(run, task), "seconds": round(time.time() - t0, 1)}
            print(f"{name} {method}: {rows[method]}", flush=True)
        names = list(rows)
        combined = combined_scores({"rankme": [rows[n]["rankme"] for n in names],
                                    "alpha": [alpha_quality(rows[n]["alpha_req"]) for n in names]})
        for n, c in zip(names, combined):
            rows[n]["combined"] = c
        auto_run = work / name / "run-auto"
        t0 = time.time()
        selfsup.pretrain(task["data"], "auto", auto_run, **common)
        record = read_record(auto_run)
        auto_downstream = downstream(auto_run, task)
        report[name] = {"rows": rows, "auto_pick": record["chosen"], "auto_scores": record["scores"],
                        "auto_downstream": auto_downstream, "auto_seconds": round(time.time() - t0, 1)}
        summarise(report[name])
        print(f"{name}: auto picked {record['chosen']} (place {report[name]['auto_place']} of {len(names)})", flush=True)
    report["_seconds"] = time.time() - start
    write_results(args, report, work)


def place(rows: dict, method: str) -> int:
    """1 + the candidates with a strictly better downstream figure (ties share the better place)."""
    return 1 + sum(row["downstream"] > rows[method]["downstream"] for row in rows.values())


def summarise(r: dict) -> None:
    """Add the places of auto's pick and of the full-budget pick, and the Spearman correlations, to ``r``."""
    rows, names = r["rows"], list(r["rows"])
    r["full_budget_pick"] = max(names, key=lambda n: (rows[n]["combined"], rows[n]["rankme"]))  # as auto breaks ties
    r["auto_place"], r["full_budget_place"] = place(rows, r["auto_pick"]), place(rows, r["full_budget_pick"])
    values = {"rankme": [rows[n]["rankme"] for n in names],
              "alpha_req": [alpha_quality(rows[n]["alpha_req"]) for n in names],
              "combined": [rows[n]["combined"] for n in names]}
    r["spearman"] = {score: spearman(v, [rows[n]["downstream"] for n in names]) for score, v in values.items()}


def write_results(args: argparse.Namespace, report: dict, work: Path) -> None:
    seconds = report.pop("_seconds", None) or sum(
        r["auto_seconds"] + sum(row["seconds"] for row in r["rows"].values()) for r in report.values())

    def f(x: float | None, digits: int = 3) -> str:
        return "n/a" if x is None else f"{x:.{digits}f}"

    lines = [f"\n## `--method auto`: label-free choice against downstream quality — {dt.date.today().isoformat()}\n",
             f"- machine: {machine()}; `OMP_NUM_THREADS=1` (one core)",
             f"- command: {provenance()}; total {seconds / 60:.1f} min",
             f"- every candidate {args.minutes:g} min of pretraining; `--method auto` the same {args.minutes:g} min in "
             f"all (pilots {100 * 0.4:.0f} % of it, shared equally). Scores on a fixed sample of ≤ 2048 training inputs "
             "(not held out of pretraining). Downstream: linear probe with all labels (CIFAR-10: "
             f"{args.cifar_train} train / {args.cifar_test} test images, balanced; SST-2: 6,920 / 1,821 sentences; "
             "FSDD: official split), HR@10 of leave-one-out next-item ranking for MovieLens-100k. α quality = −|log α|.\n"]
    picks = {"auto best": 0, "auto top-2": 0, "full best": 0, "full top-2": 0}
    for name, r in report.items():
        lines += [f"### {name}\n", "| method | RankMe | α-ReQ α | combined | downstream | minutes (pretrain + eval) |",
                  "|---|---|---|---|---|---|"]
        for method, row in sorted(r["rows"].items(), key=lambda kv: -kv[1]["downstream"]):
            lines.append(f"| {method} | {f(row['rankme'], 1)} | {f(row['alpha_req'], 2)} | {f(row['combined'], 2)} | "
                         f"{f(row['downstream'])} | {row['seconds'] / 60:.1f} |")
        rho = r["spearman"]
        lines += ["", f"Spearman with downstream: RankMe {f(rho['rankme'], 2)}, α-ReQ {f(rho['alpha_req'], 2)}, "
                      f"combined {f(rho['combined'], 2)}. `auto` picked **{r['auto_pick']}** (place {r['auto_place']} of "
                      f"{len(r['rows'])} by downstream; its own run: {f(r['auto_downstream'])}, pilot scores "
                      + ", ".join(f"{m} {s['score']:.2f}" for m, s in r["auto_scores"].items())
                      + f"); the combined score at the full budget picks {r['full_budget_pick']} (place "
                      f"{r['full_budget_place']}).\n"]
        picks["auto best"] += r["auto_place"] == 1
        picks["auto top-2"] += r["auto_place"] <= 2
        picks["full best"] += r["full_budget_place"] == 1
        picks["full top-2"] += r["full_budget_place"] <= 2
    n = len(report)
    lines.append(f"**Summary**: `auto` picked the best method on {picks['auto best']} of {n} datasets and the best or "
                 f"second-best on {picks['auto top-2']} of {n}; ranking the fully trained candidates by the same "
                 f"combined score: best {picks['full best']} of {n}, top-2 {picks['full top-2']} of {n}. With 3–4 "
                 "candidates per dataset a Spearman coefficient takes only a few values (±1, ±0.8, ±0.4, ...): "
                 "one dataset says little on its own.\n")
    with open(args.results, "a") as out:
        out.write("\n".join(lines) + "\n")
    (work / "results.json").write_text(json.dumps({**report, "_seconds": seconds}, indent=2, default=str))
    print("\n".join(lines))
    print(f"appended to {args.results}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
