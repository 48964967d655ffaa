"""Sentence sentiment benchmark: selfsup text methods vs the same network from scratch vs TF-IDF.

Pretrain on the unlabeled sentences of MR (Pang & Lee 2005) and SST-2 (Socher et al. 2013) — the
training parts only: neither evaluation's test sentences are seen during pretraining — then evaluate
on SST-2 (its train/test split, sentence level) and MR (a fixed, seeded 90/10 split) at label
fractions 0.01, 0.1 and 1.0 with kNN, a linear probe and fine-tuning, against the randomly initialised
network under the same protocol and TF-IDF + logistic regression on the same labels.

    .venv/bin/python benchmarks/text_sentiment.py                       # ~30 min on 2 CPU cores
    .venv/bin/python benchmarks/text_sentiment.py --methods mlm --minutes 2 --protocols knn,linear   # quicker

Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import selfsup  # noqa: E402
from selfsup.evaluation import format_table  # noqa: E402

from common import add_label_arguments, machine, provenance, work_folder  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "text"


def read_labeled(path: Path, encoding: str) -> list[tuple[str, str]]:
    """Lines ``<label> <text>`` (the harvardnlp files) → (label, text); splits on '\\n' only (MR's Latin-1
    text holds byte 0x85, which str.splitlines would treat as a line break)."""
    rows = []
    for line in path.read_bytes().decode(encoding).split("\n"):
        label, _, text = line.strip().partition(" ")
        if text.strip():
            rows.append((label, text.strip()))
    return rows


def write_tsv(rows: list[tuple[str, str]], path: Path) -> Path:
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


def prepare(data: Path, work: Path, seed: int) -> dict[str, tuple[Path, Path]]:
    """Labeled train/test TSVs of both tasks and the unlabeled pretraining corpus (train sentences only)."""
    sst_train = read_labeled(data / "sst2" / "stsa.binary.train", "utf-8")
    sst_dev = read_labeled(data / "sst2" / "stsa.binary.dev", "utf-8")
    sst_test = read_labeled(data / "sst2" / "stsa.binary.test", "utf-8")
    mr = read_labeled(data / "mr" / "labeled" / "rt-polarity.all", "latin-1")
    random.Random(seed).shuffle(mr)
    cut = int(0.9 * len(mr))
    mr_train, mr_test = mr[:cut], mr[cut:]
    corpus = [text for _, text in sst_train + sst_dev + mr_train]
    (work / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    return {
        "SST-2": (write_tsv(sst_train, work / "sst2_train.tsv"), write_tsv(sst_test, work / "sst2_test.tsv")),
        "MR": (write_tsv(mr_train, work / "mr_train.tsv"), write_tsv(mr_test, work / "mr_test.tsv")),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with sst2/ and mr/")
    p.add_argument("--methods", default="mlm,clm,simcse,tsdae")
    p.add_argument("--encoder", default=None, help="default: each method's (bert_tiny; gpt_tiny for clm)")
    p.add_argument("--minutes", type=float, default=4.0, help="pretraining time per method")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--max-length", type=int, default=64)
    add_label_arguments(p, fractions="0.01,0.1,1.0", finetune_steps=100)
    args = p.parse_args()

    work = work_folder(args.work, "selfsup-text-")
    tasks = prepare(args.data, work, args.seed)
    corpus_lines = sum(1 for _ in open(work / "corpus.txt", encoding="utf-8"))

    rows = []
    seen_encoders: set[str] = set()
    for i, method in enumerate(args.methods.split(",")):
        run = work / f"run-{method}"
        t0 = time.time()
        selfsup.pretrain(work / "corpus.txt", method, run, modality="text", encoder=args.encoder,
                         epochs=args.epochs, max_minutes=args.minutes, batch_size=args.batch_size,
                         vocab_size=args.vocab_size, max_length=args.max_length, seed=args.seed,
                         progress_bar=sys.stderr.isatty())
        t1 = time.time()
        steps = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"]
        # the baselines do not depend on the method, only on the architecture (same seed and tokenizer): TF-IDF
        # once, scratch once per encoder
        encoder = yaml.safe_load((run / "config.yaml").read_text())["encoder"]["name"]
        baseline = ",".join((["scratch"] if encoder not in seen_encoders else []) + (["tfidf"] if i == 0 else [])) or "none"
        seen_encoders.add(encoder)
        for task, (train, test) in tasks.items():
            results = selfsup.evaluate(run, train, test, protocols=args.protocols.split(","),
                                       label_fractions=[float(f) for f in args.fractions.split(",")],
                                       baseline=baseline, json_path=run / f"eval-{task}.json", seed=args.seed,
                                       finetune_steps=args.finetune_steps)
            table = format_table(results)
            print(f"\n{method} on {task}\n{table}", flush=True)
            rows.append((method, task, t1 - t0, steps, table, [r.to_dict() for r in results]))
        print(f"{method}: pretraining {t1 - t0:.0f} s, evaluation {time.time() - t1:.0f} s", flush=True)

    lines = [f"\n## Sentence sentiment (SST-2, MR) — {dt.date.today().isoformat()}\n",
             f"- machine: {machine()}",
             f"- command: {provenance()}",
             f"- pretraining corpus: {corpus_lines} unlabeled sentences (SST-2 train + dev, MR's 90 % train part); "
             f"tokenizer wordpiece {args.vocab_size}, max {args.max_length} tokens, batch {args.batch_size}, "
             f"{args.minutes:g} min per method; finetune {args.finetune_steps} steps. The tfidf column is printed "
             f"with the first method only, scratch with the first method of each encoder.\n"]
    for method, task, t_pre, steps, table, _ in rows:
        lines += [f"### {method} on {task} (pretraining {t_pre / 60:.1f} min, {steps} steps)\n", "```", table, "```\n"]
    with open(args.results, "a") as f:
        f.write("\n".join(lines) + "\n")
    (work / "results.json").write_text(json.dumps([(m, t, r) for m, t, *_, r in rows], indent=2))
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
