"""MovieLens-100k benchmark: selfsup's sequence methods against RecBole's SASRec and BERT4Rec, same protocol.

MovieLens-100k (GroupLens; ``u.data``: 100,000 ratings by 943 users of 1682 movies; ``u.user``: age, gender,
occupation). Its license forbids redistribution, so the files are read from ``--data`` and the derived files
live in the work folder only. Every rating counts as an interaction (implicit feedback, as SASRec and
BERT4Rec preprocess it).

1. Next-item ranking — leave-one-out by time (last item of each user = test, second to last = validation;
   pretraining never sees either), histories of the last 50 items, full ranking over all items with the
   user's earlier items left out, HR@10 and NDCG@10 (``selfsup evaluate RUN --protocol ranking``), next to a
   popularity ranking. RecBole's SASRec and BERT4Rec (``benchmarks/recbole_ml100k.py``, in their own
   environment made by ``benchmarks/recbole_env.sh``) are trained on the same split and scored by the same
   rule, with wall-clock seconds per epoch for both (an epoch predicts every training interaction once in both
   libraries).
2. User attributes with few labels — gender, age band and occupation of ``u.user`` predicted from the user's
   history (knn / linear / finetune on the pooled user embedding at label fractions, against the same
   network from a random init). Users whose id is a multiple of 5 are the test set.

    .venv/bin/python benchmarks/movielens.py                               # ~50 min on 2 CPU cores
    .venv/bin/python benchmarks/movielens.py --methods sasrec --epochs 20 --no-recbole

Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import selfsup  # noqa: E402
from selfsup.evaluation import format_table  # noqa: E402

from common import add_label_arguments, machine, provenance, work_folder  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "sequences" / "ml-100k"
RECBOLE_PYTHON = HERE / ".venv-recbole" / "bin" / "python"
ATTRIBUTES = ("gender", "age", "occupation")


def age_band(age: int) -> str:
    """MovieLens-1M's age groups, merged to five bands so that each has users in ml-100k."""
    for upper, name in ((18, "under 18"), (25, "18-24"), (35, "25-34"), (50, "35-49")):
        if age < upper:
            return name
    return "50+"


def prepare(data: Path, work: Path) -> tuple[Path, dict[str, tuple[Path, Path]]]:
    """The log with a header (``user item rating timestamp``, tab-separated) and a train/test pair of
    ``user,label`` files per attribute."""
    ratings = data / "u.data"
    if not ratings.is_file():
        raise SystemExit(f"{ratings}: not found; pass --data FOLDER holding MovieLens-100k's u.data and u.user")
    log = work / "ml100k.tsv"
    log.write_text("user\titem\trating\ttimestamp\n" + ratings.read_text())
    users = [line.split("|") for line in (data / "u.user").read_text(encoding="latin-1").splitlines() if line]
    files = {}
    for attribute in ATTRIBUTES:
        paths = (work / f"{attribute}_train.csv", work / f"{attribute}_test.csv")
        handles = [open(p, "w", newline="") for p in paths]
        writers = [csv.writer(h) for h in handles]
        for w in writers:
            w.writerow(["user", "label"])
        for user, age, gender, occupation, _zip in users:
            label = {"gender": gender, "age": age_band(int(age)), "occupation": occupation}[attribute]
            writers[int(int(user) % 5 == 0)].writerow([user, label])
        for h in handles:
            h.close()
        files[attribute] = paths
    return log, files


def ranking_cells(results) -> dict[str, float]:
    return {f"{'valid' if r.protocol == 'ranking_valid' else 'test'} {r.metric}": r.value for r in results}


def run_recbole(model: str, args: argparse.Namespace, work: Path) -> dict | None:
    if args.no_recbole:
        return None
    if not RECBOLE_PYTHON.exists():
        print(f"RecBole environment missing ({RECBOLE_PYTHON}); run `bash benchmarks/recbole_env.sh` first, "
              "or pass --no-recbole", flush=True)
        return None
    out = work / f"recbole-{model}.json"
    command = [str(RECBOLE_PYTHON), str(HERE / "recbole_ml100k.py"), "--data", str(args.data), "--work",
               str(work / "recbole"), "--model", model, "--epochs", str(args.recbole_epochs), "--json", str(out)]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ml-100k folder (u.data, u.user)")
    p.add_argument("--methods", default="sasrec,bert4rec,cl4srec")
    p.add_argument("--epochs", type=int, default=50, help="selfsup epochs per method")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-length", type=int, default=50)
    p.add_argument("--recbole-epochs", type=int, default=3, help="RecBole epochs per model (≈ 20× slower each)")
    p.add_argument("--no-recbole", action="store_true", help="selfsup only")
    add_label_arguments(p, fractions="0.05,0.2,1.0", finetune_steps=50)
    args = p.parse_args()

    work = work_folder(args.work, "selfsup-ml100k-")
    log, attributes = prepare(args.data, work)
    start = time.time()

    ranking: list[tuple[str, str, int, float, dict[str, float]]] = []  # library, model, epochs, s/epoch, metrics
    attribute_tables: list[tuple[str, str, str]] = []
    popularity = None
    for method in args.methods.split(","):
        run = work / f"run-{method}"
        t0 = time.time()
        selfsup.pretrain(log, method, run, modality="sequence", epochs=args.epochs, batch_size=args.batch_size,
                         max_length=args.max_length, seed=args.seed, progress_bar=sys.stderr.isatty())
        seconds = time.time() - t0
        results = selfsup.evaluate(run, protocols=["ranking"], baseline="none", json_path=run / "ranking.json")
        print(f"\n{method} ({seconds:.0f} s)\n{format_table(results)}", flush=True)
        ranking.append(("selfsup", method, args.epochs, seconds / args.epochs,
                        ranking_cells(r for r in results if r.encoder == "pretrained")))
        popularity = ranking_cells(r for r in results if r.encoder == "baseline")
        for attribute, (train, test) in attributes.items():
            results = selfsup.evaluate(run, train, test, protocols=args.protocols.split(","),
                                       label_fractions=[float(f) for f in args.fractions.split(",")],
                                       baseline="scratch", seed=args.seed, finetune_steps=args.finetune_steps,
                                       json_path=run / f"{attribute}.json")
            table = format_table(results)
            print(f"\n{method} · {attribute}\n{table}", flush=True)
            attribute_tables.append((method, attribute, table))
    for model in ("SASRec", "BERT4Rec"):
        peer = run_recbole(model, args, work)
        if peer:
            cells = {f"{split} {metric}": peer[split][metric] for split in ("valid", "test") for metric in ("hr@10", "ndcg@10")}
            ranking.append(("RecBole " + peer.get("recbole_version", ""), model, peer["epochs"],
                            peer["seconds_per_epoch"], cells))

    columns = ["valid hr@10", "valid ndcg@10", "test hr@10", "test ndcg@10"]
    lines = ["| library | model | epochs | s / epoch | " + " | ".join(columns) + " |",
             "|---|---|---:|---:|" + "---:|" * len(columns)]
    for library, model, epochs, per_epoch, cells in ranking:
        lines.append(f"| {library} | {model} | {epochs} | {per_epoch:.2f} | "
                     + " | ".join(f"{cells[c]:.4f}" for c in columns) + " |")
    if popularity:
        lines.append("| — | popularity | — | — | " + " | ".join(f"{popularity[c]:.4f}" for c in columns) + " |")
    ranking_table = "\n".join(lines)
    print("\n" + ranking_table, flush=True)

    out = [f"\n## MovieLens-100k: next-item ranking and user attributes — {dt.date.today().isoformat()}\n",
           f"- machine: {machine()}",
           f"- command: {provenance()}; total {(time.time() - start) / 60:.1f} min",
           f"- leave-one-out by time, histories of the last {args.max_length} items, full ranking over all 1682 items "
           f"with each user's earlier items left out (pessimistic ties), 943 users; selfsup batch {args.batch_size}, "
           f"presets sasrec_tiny / bert4rec_tiny (2 layers of width 64). selfsup s / epoch = the whole `pretrain` call (reading the log included) / epochs.\n",
           ranking_table, ""]
    for method, attribute, table in attribute_tables:
        out += [f"### {method} · {attribute} (test: users with id % 5 == 0)\n", "```", table, "```\n"]
    with open(args.results, "a") as f:
        f.write("\n".join(out) + "\n")
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
