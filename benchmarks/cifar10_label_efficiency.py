"""CIFAR-10 label-efficiency benchmark: selfsup methods vs the same network from scratch and raw pixels.

Budget for a 2-core CPU (about 30 minutes for two methods): pretrain `tiny_cnn` on a class-balanced
subset of the CIFAR-10 train split (labels ignored), then evaluate kNN (k=200, T=0.1), linear probe
and fine-tuning with 1 %, 10 % and 100 % of that subset's labels, on a class-balanced subset of the
test split, against the randomly initialised network under the same protocol and budget, and the
classical reference: logistic regression on the raw pixels shrunk to 8 px (`--baselines`).

    .venv/bin/python benchmarks/cifar10_label_efficiency.py                       # defaults below
    .venv/bin/python benchmarks/cifar10_label_efficiency.py --methods simclr,byol,rotation,mae \
        --train-subset 50000 --epochs 200 --encoder resnet18_cifar                # a GPU-sized run

Results go to benchmarks/RESULTS.md (appended) and a JSON file per method next to the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tarfile
import time
from pathlib import Path

import torch

import selfsup
from selfsup.evaluation import format_table

from common import add_label_arguments, machine, provenance, work_folder

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "images" / "cifar10"


def extract(tar_path: Path, into: Path) -> Path:
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / tar_path.stem


def balanced_subset(split_dir: Path, per_class: int, into: Path, seed: int) -> Path:
    """Symlink ``per_class`` random images of every class folder into ``into/<class>/``."""
    rng = random.Random(seed)
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        files = sorted(class_dir.glob("*.jpg"))
        (into / class_dir.name).mkdir(parents=True, exist_ok=True)
        for f in rng.sample(files, min(per_class, len(files))):
            os.symlink(f, into / class_dir.name / f.name)
    return into


def cifar_subsets(data: Path, work: Path, train_subset: int, test_subset: int, seed: int) -> tuple[Path, Path]:
    """Class-balanced train and test folders (links) of ``train_subset`` / ``test_subset`` images, the tars
    extracted once into ``work/raw``."""
    raw = work / "raw"
    if not (raw / "train").exists():
        extract(data / "train.tar", raw)
        extract(data / "test.tar", raw)
    train, test = work / f"train{train_subset}", work / f"test{test_subset}"
    if not train.exists():
        balanced_subset(raw / "train", train_subset // 10, train, seed)
        balanced_subset(raw / "test", test_subset // 10, test, seed)
    return train, test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.tar and test.tar")
    p.add_argument("--methods", default="simclr,byol")
    p.add_argument("--encoder", default="tiny_cnn")
    p.add_argument("--train-subset", type=int, default=5000, help="images from the train split (balanced)")
    p.add_argument("--test-subset", type=int, default=2000, help="images from the test split (balanced)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-minutes", type=float, default=12.0, help="pretraining cap per method")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--baselines", default="scratch,pixels",
                   help="comma list for selfsup evaluate: scratch (same network, random init), pixels "
                        "(logistic regression on 8 px raw pixels)")
    add_label_arguments(p, fractions="0.01,0.1,1.0", finetune_steps=150)
    args = p.parse_args()

    work = work_folder(args.work, "selfsup-cifar10-")
    train, test = cifar_subsets(args.data, work, args.train_subset, args.test_subset, args.seed)

    rows = []
    for method in args.methods.split(","):
        run = work / f"run-{method}-{args.encoder}"
        t0 = time.time()
        selfsup.pretrain(train, method, run, encoder=args.encoder, epochs=args.epochs,
                         max_minutes=args.max_minutes, batch_size=args.batch_size, image_size=32,
                         seed=args.seed, progress_bar=sys.stderr.isatty())
        t1 = time.time()
        results = selfsup.evaluate(run, train, test, protocols=args.protocols.split(","),
                                   label_fractions=[float(f) for f in args.fractions.split(",")],
                                   baseline=args.baselines, json_path=run / "eval.json", seed=args.seed,
                                   finetune_steps=args.finetune_steps)
        t2 = time.time()
        table = format_table(results)
        print(f"\n{method}: pretrain {t1 - t0:.0f} s, evaluate {t2 - t1:.0f} s\n{table}")
        steps = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"]
        rows.append((method, t1 - t0, t2 - t1, steps, table, [r.to_dict() for r in results]))

    lines = [f"\n## CIFAR-10 label efficiency — {dt.date.today().isoformat()}\n",
             f"- machine: {machine()}",
             f"- command: {provenance()}",
             f"- data: {args.train_subset} train images (balanced, labels hidden during pretraining) / "
             f"{args.test_subset} test images; encoder {args.encoder}, 32 px, batch {args.batch_size}, "
             f"{args.epochs} epochs capped at {args.max_minutes} min; finetune {args.finetune_steps} steps\n"]
    for method, t_pre, t_eval, steps, table, _ in rows:
        lines += [f"### {method}: pretraining {t_pre / 60:.1f} min ({steps} steps), evaluation {t_eval / 60:.1f} min\n",
                  "```", table, "```\n"]
    with open(args.results, "a") as f:
        f.write("\n".join(lines) + "\n")
    (work / "results.json").write_text(json.dumps({m: r for m, *_, r in rows}, indent=2))
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
