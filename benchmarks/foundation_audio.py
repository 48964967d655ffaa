"""Transferring selfsup's own speech checkpoints: FSDD -> LibriSpeech with ``--init``, then distillation.

1. ``source``: a ``wav2vec2_mini`` pretrained with wav2vec 2.0 (Baevski et al. 2020) on the Free Spoken Digit
   Dataset's training recordings (no labels).
2. ``source+librispeech``: that run continued on the unlabeled LibriSpeech utterances in
   ``../shared/data/audio/librispeech`` (``--init RUN``), against ``librispeech-only``: the same network and
   budget from random weights.
3. ``distill``: a ``wav2vec2_tiny`` student trained to reproduce the continued run's representation of the same
   unlabeled utterances (``--method distill --set method.teacher=RUN``), with both models' speed (clips/s).

Downstream task: speaker identification among LibriSpeech's 3 speakers (utterances split 70/30 per speaker,
seeded), linear probe at label fractions 0.05, 0.2 and 1.0, with ``init`` (the FSDD run as is), ``scratch``
(random init) and ``mfcc`` (MFCC statistics + logistic regression) as references. Results are appended to
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/foundation_audio.py                 # ~30 min on one CPU core
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import selfsup  # noqa: E402

from common import add_label_arguments, append_results, global_steps, machine, provenance, work_folder  # noqa: E402
from foundation_text import table  # noqa: E402
from speech_digits import DEFAULT_DATA as FSDD, prepare as prepare_fsdd  # noqa: E402

LIBRISPEECH = FSDD.parent / "librispeech"


def prepare_librispeech(data: Path, work: Path, seed: int) -> tuple[Path, Path, Path]:
    """(unlabeled folder of every utterance, labeled train, labeled test): ``<split>/<speaker>/`` links, 70/30
    per speaker."""
    unlabeled, rng = work / "libri-unlabeled", random.Random(seed)
    for speaker in sorted(p for p in (data / "train-clean-100").iterdir() if p.is_dir()):
        files = sorted(speaker.rglob("*.flac"))
        rng.shuffle(files)
        cut = int(0.7 * len(files))
        for i, path in enumerate(files):
            for link in (unlabeled / path.name, work / ("libri-train" if i < cut else "libri-test") / speaker.name /
                         path.name):
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to(path.resolve())
    return unlabeled, work / "libri-train", work / "libri-test"


def clips_per_second(run: Path, seconds: float, sample_rate: int = 16000, clips: int = 64) -> float:
    """Pooled embeddings per second of ``clips`` random ``seconds``-long clips (batches of 16, best of 2)."""
    from selfsup.artifacts import load
    from selfsup.evaluation.features import extract_features

    encoder = load(run).encoder
    waves = torch.randn(clips, int(seconds * sample_rate))

    def batch(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_values": x, "attention_mask": torch.ones_like(x, dtype=torch.long)}

    extract_features(encoder, waves[:16], batch, batch_size=16)
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        extract_features(encoder, waves, batch, batch_size=16)
        best = min(best, time.perf_counter() - t0)
    return clips / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fsdd", type=Path, default=FSDD)
    p.add_argument("--librispeech", type=Path, default=LIBRISPEECH)
    p.add_argument("--teacher-encoder", default="wav2vec2_mini")
    p.add_argument("--student", default="wav2vec2_tiny")
    p.add_argument("--method", default="wav2vec2")
    p.add_argument("--minutes", type=float, default=3.0, help="training budget of every run")
    p.add_argument("--clip-seconds", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=16)
    add_label_arguments(p, fractions="0.05,0.2,1.0", finetune_steps=50, protocols="linear")
    args = p.parse_args()
    protocols = args.protocols.split(",")
    fractions = [float(f) for f in args.fractions.split(",")]

    work = work_folder(args.work, "selfsup-foundation-audio-")
    fsdd_train, _ = prepare_fsdd(args.fsdd, work / "fsdd")
    unlabeled, train, test = prepare_librispeech(args.librispeech, work, args.seed)
    common = dict(modality="audio", max_minutes=args.minutes, epochs=1000, batch_size=args.batch_size,
                  clip_seconds=args.clip_seconds, seed=args.seed, progress_bar=sys.stderr.isatty())

    plan = [("source (FSDD)", fsdd_train, {"encoder": args.teacher_encoder, "method": args.method}, None),
            ("source+librispeech", unlabeled, {"init": work / "run-source", "method": args.method},
             "init,scratch,mfcc"),
            ("librispeech-only", unlabeled, {"encoder": args.teacher_encoder, "method": args.method}, "none"),
            ("distill", unlabeled, {"encoder": args.student, "method": "distill",
                                    "overrides": [f"method.teacher={work / 'run-continued'}"]}, "none")]
    folders = ["run-source", "run-continued", "run-scratch", "run-distill"]
    results: dict[str, list[dict]] = {}
    timing: dict[str, tuple[float, int]] = {}
    for (label, data, extra, baseline), folder in zip(plan, folders):
        run = work / folder
        extra = dict(extra)
        method = extra.pop("method")
        t0 = time.time()
        selfsup.pretrain(data, method, run, **common, **extra)
        steps = global_steps(run)
        timing[label] = (time.time() - t0, steps)
        print(f"{label}: {timing[label][0]:.0f} s, {steps} steps", flush=True)
        if baseline is None:
            continue
        scores = selfsup.evaluate(run, train, test, protocols=protocols, label_fractions=fractions,
                                  baseline=baseline, json_path=run / "eval.json", seed=args.seed,
                                  finetune_steps=args.finetune_steps)
        for r in scores:
            name = label if r.encoder == "pretrained" else ("source (FSDD), as is" if r.encoder == "init" else r.encoder)
            results.setdefault(name, []).append(r.to_dict())
        print(table(results, protocols, fractions), flush=True)

    teacher = clips_per_second(work / "run-continued", args.clip_seconds)
    student = clips_per_second(work / "run-distill", args.clip_seconds)
    lines = [f"\n## Speech: selfsup's own checkpoint, FSDD -> LibriSpeech speakers, and distillation — "
             f"{dt.date.today().isoformat()}\n",
             f"- machine: {machine()}",
             f"- command: {provenance()}",
             f"- every run {args.minutes:g} min, batch {args.batch_size}, clips of at most {args.clip_seconds:g} s; "
             "speaker identification on LibriSpeech's 3 speakers, 70/30 split per speaker",
             "- runs: " + "; ".join(f"{label} {sec / 60:.1f} min, {steps} steps" for label, (sec, steps) in timing.items()),
             f"- speed ({args.clip_seconds:g} s clips, batches of 16): teacher {args.teacher_encoder} {teacher:.1f} "
             f"clips/s, student {args.student} {student:.1f} clips/s ({student / teacher:.2f}x)",
             "", table(results, protocols, fractions)]
    append_results(args.results, lines, work, {"results": results, "timing": timing})


if __name__ == "__main__":
    main()
