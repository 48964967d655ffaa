"""Spoken-digit benchmark: selfsup audio methods vs the same network from scratch, by label budget.

Free Spoken Digit Dataset (Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset): 3000 recordings
of the digits 0-9 by 6 speakers at 8 kHz. Official split: recordings with index 0-4 are the test set (300),
5-49 the training set (2700). Each method pretrains on the training recordings WITHOUT their labels
(resampled to 16 kHz), then kNN, a linear probe and fine-tuning are scored at label fractions 0.005, 0.02,
0.1 and 1.0 of the training set (class-balanced: about 1, 5, 27 and 270 recordings per class) against the
randomly initialised network under the same protocol, and against MFCC statistics + logistic regression
on the same labels.

    .venv/bin/python benchmarks/speech_digits.py                      # ~30 min on 2 CPU cores
    .venv/bin/python benchmarks/speech_digits.py --methods hubert --minutes 2 --protocols knn,linear

Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "audio" / "fsdd"


def prepare(data: Path, work: Path) -> tuple[Path, Path]:
    """``train/<digit>/`` and ``test/<digit>/`` folders of links to the recordings (official split)."""
    recordings = sorted((data / "recordings").glob("*.wav"))
    if not recordings:
        raise SystemExit(f"{data}/recordings: no .wav files; pass --data FOLDER with the FSDD recordings/")
    for path in recordings:
        digit, _speaker, index = path.stem.split("_")
        split = "test" if int(index) < 5 else "train"
        link = work / split / digit / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path.resolve())
    return work / "train", work / "test"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the FSDD folder (with recordings/)")
    p.add_argument("--methods", default="wav2vec2,hubert,data2vec,speed,simclr")
    p.add_argument("--encoder", default="wav2vec2_tiny")
    p.add_argument("--minutes", type=float, default=3.0, help="pretraining time per method")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--clip-seconds", type=float, default=1.0)
    add_label_arguments(p, fractions="0.005,0.02,0.1,1.0", finetune_steps=100)
    args = p.parse_args()

    work = work_folder(args.work, "selfsup-speech-")
    train, test = prepare(args.data, work)
    start = time.time()

    rows = []
    for i, method in enumerate(args.methods.split(",")):
        run = work / f"run-{method}"
        t0 = time.time()
        selfsup.pretrain(train, method, run, modality="audio", encoder=args.encoder, epochs=args.epochs,
                         max_minutes=args.minutes, batch_size=args.batch_size, clip_seconds=args.clip_seconds,
                         seed=args.seed, progress_bar=sys.stderr.isatty())
        t1 = time.time()
        steps = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"]
        # scratch depends only on the architecture and the seed: scored once
        results = selfsup.evaluate(run, train, test, protocols=args.protocols.split(","),
                                   label_fractions=[float(f) for f in args.fractions.split(",")],
                                   baseline="scratch,mfcc" if i == 0 else "none", seed=args.seed,
                                   finetune_steps=args.finetune_steps)
        table = format_table(results)
        print(f"\n{method}\n{table}", flush=True)
        print(f"{method}: pretraining {t1 - t0:.0f} s ({steps} steps), evaluation {time.time() - t1:.0f} s", flush=True)
        rows.append((method, t1 - t0, steps, time.time() - t1, table, [r.to_dict() for r in results]))

    encoder = yaml.safe_load((work / f"run-{rows[0][0]}" / "config.yaml").read_text())["encoder"]
    lines = [f"\n## Spoken digits (FSDD) — {dt.date.today().isoformat()}\n",
             f"- machine: {machine()}",
             f"- command: {provenance()}; total {(time.time() - start) / 60:.1f} min",
             f"- pretraining: the 2700 training recordings without labels, resampled to 16 kHz, random crops of at most "
             f"{args.clip_seconds:g} s, batch {args.batch_size}, {args.minutes:g} min per method, encoder {encoder}; "
             f"evaluation on the 300 official test recordings; finetune {args.finetune_steps} steps. The scratch "
             f"and mfcc columns are printed with the first method only (same architecture and seed for all).\n"]
    for method, t_pre, steps, t_eval, table, _ in rows:
        lines += [f"### {method} (pretraining {t_pre / 60:.1f} min, {steps} steps; evaluation {t_eval / 60:.1f} min)\n",
                  "```", table, "```\n"]
    with open(args.results, "a") as f:
        f.write("\n".join(lines) + "\n")
    (work / "results.json").write_text(json.dumps([(m, r) for m, *_, r in rows], indent=2))
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
