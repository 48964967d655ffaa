"""Speech recognition from self-supervised pretraining on LibriSpeech utterances (``evaluate --protocol asr``).

Data: ``../shared/data/audio/librispeech`` (3 speakers of train-clean-100, 70 min; read its SOURCE.txt). The
split is speaker-disjoint: the test speaker (default 27, 20 min) is held out, the other two (about 50 min) are
both the unlabeled pretraining data (their recordings, no transcripts) and the transcribed fine-tuning data.

1. ``wav2vec2``, ``hubert`` and ``data2vec`` each pretrain selfsup's default audio encoder (``wav2vec2_tiny``)
   for ``--pretrain-minutes`` on the training speakers' recordings.
2. Each run's encoder gets a character CTC head (transformers' ``Wav2Vec2ForCTC``, convolutional feature encoder
   frozen) fine-tuned for ``--finetune-steps`` on label budgets of ``--label-minutes`` (speaker-balanced, nested);
   greedy decoding, CER and WER on every utterance of the test speaker. The wav2vec2 run also fine-tunes the
   ``scratch`` (same network, random weights) and ``mfcc`` (MFCC + conv CTC from scratch) baselines; the hubert
   and data2vec runs are fine-tuned on the ``--other-minutes`` budgets only (CPU time).

Results are appended to benchmarks/RESULTS.md.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/asr_librispeech.py        # ~35 min on a shared 2-core CPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import selfsup  # noqa: E402

from common import append_results, global_steps, machine, provenance, work_folder  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "audio" / "librispeech"
METHODS = ("wav2vec2", "hubert", "data2vec")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def prepare(data: Path, work: Path, test_speaker: str) -> tuple[Path, Path, Path, dict]:
    """(list file of the training speakers' recordings, train table path,transcript,speaker, test folder, sizes)."""
    import soundfile as sf

    corpus = data / "train-clean-100"
    if not corpus.is_dir():
        raise SystemExit(f"{corpus}: not found; pass --data DIR (the folder holding train-clean-100)")
    rows, files, seconds = [], [], 0.0
    for trans in sorted(corpus.rglob("*.trans.txt")):
        speaker = trans.parent.parent.name
        if speaker == test_speaker:
            continue
        for line in trans.read_text().splitlines():
            utterance, _, text = line.partition(" ")
            audio = trans.parent / f"{utterance}.flac"
            rows.append(f"{audio}\t{text}\t{speaker}")
            files.append(str(audio))
            seconds += sf.info(str(audio)).duration
    table, unlabeled = work / "train.tsv", work / "unlabeled.txt"
    table.write_text("path\ttranscript\tspeaker\n" + "\n".join(rows) + "\n")
    unlabeled.write_text("\n".join(files) + "\n")
    test = corpus / test_speaker
    test_seconds = sum(sf.info(str(p)).duration for p in test.rglob("*.flac"))
    return unlabeled, table, test, {"train_utterances": len(rows), "train_minutes": seconds / 60,
                                    "test_utterances": len(list(test.rglob("*.flac"))), "test_minutes": test_seconds / 60}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--test-speaker", default="27")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--pretrain-minutes", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=16, help="pretraining: 2 s clips per batch")
    p.add_argument("--finetune-steps", type=int, default=300)
    p.add_argument("--label-minutes", type=_floats, default=[10, 30, 60])
    p.add_argument("--other-minutes", type=_floats, default=[60], help="budgets for the runs after the first")
    p.add_argument("--frontend", default="conv", choices=("conv", "mel"),
                   help="the encoders' front end: wav2vec 2.0's convolutions on the waveform, or log-mel frames "
                        "(fine-tuned with a linear CTC head; the scratch baseline gets the same front end)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path)
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--title", default="Speech recognition on LibriSpeech speakers, CTC fine-tuning")
    args = p.parse_args()
    work = work_folder(args.work, "selfsup-asr-")
    unlabeled, train, test, sizes = prepare(args.data, work, args.test_speaker)
    print(sizes, flush=True)
    rows, timing, losses, final = [], {}, {}, {}

    def progress(line: str) -> None:
        """Print; keep each model's CTC loss (mean of its last 10 steps) at its last logged step, by utterances."""
        print(line, flush=True)
        if step := re.match(r"\[asr\] (\S+) \((.+)\) step \d+/\d+: ctc loss ([0-9.]+)", line):
            losses[step.group(1), step.group(2)] = float(step.group(3))
        if scored := re.match(r"\[asr\] (\S+) on (.+) \((\d+) utterances\)", line):
            final[scored.group(1), int(scored.group(3))] = losses.get((scored.group(1), scored.group(2)))

    for number, method in enumerate(args.methods.split(",")):
        run = work / (f"run-{method}" if args.frontend == "conv" else f"run-{method}-{args.frontend}")
        start = time.time()
        if not (run / "checkpoints" / "last.ckpt").exists():
            selfsup.pretrain(unlabeled, method, run, modality="audio", max_minutes=args.pretrain_minutes,
                             batch_size=args.batch_size, seed=args.seed, progress_bar=False,
                             overrides=[f"encoder.frontend={args.frontend}"])
        pretrained = time.time() - start
        start = time.time()
        budgets = args.label_minutes if number == 0 else args.other_minutes
        results = selfsup.evaluate(run, train, test, protocols=["asr"], label_minutes=budgets,
                                   baseline="scratch,mfcc" if number == 0 else "none", seed=args.seed,
                                   finetune_steps=args.finetune_steps, json_path=work / f"eval-{method}.json",
                                   progress=progress)
        timing[method] = {"pretrain_min": pretrained / 60, "steps": global_steps(run),
                          "finetune_min": (time.time() - start) / 60}
        for r in results:
            name = method if r.encoder == "pretrained" else r.encoder
            rows.append({"encoder": name, "minutes": r.label_fraction * sizes["train_minutes"],
                         "utterances": r.n_labels, "metric": r.metric, "value": r.value,
                         "final_loss": final.get((r.encoder, r.n_labels)) or float("nan")})
        final.clear()
        print(timing[method], flush=True)
    table = {}
    for r in rows:
        entry = table.setdefault((r["encoder"], round(r["minutes"], 1), r["utterances"]), {})
        entry[r["metric"]], entry["loss"] = r["value"], r["final_loss"]
    lines = [
        "", f"## {args.title} ({dt.date.today().isoformat()})", "",
        f"Machine: {machine()}; shared with other jobs. Command: {provenance()}.", "",
        f"Train (unlabeled pretraining and transcribed budgets): {sizes['train_utterances']} utterances, "
        f"{sizes['train_minutes']:.1f} min; test: speaker {args.test_speaker}, {sizes['test_utterances']} utterances, "
        f"{sizes['test_minutes']:.1f} min. Pretraining {args.pretrain_minutes:g} min per method (batches of "
        f"{args.batch_size} clips of 2 s); fine-tuning "
        f"{args.finetune_steps} steps per budget.", "",
        "| encoder | label minutes | utterances | CER | WER | CTC loss at the end (per char) |",
        "|---|---|---|---|---|---|",
        *(f"| {enc} | {mins:.1f} | {n} | {m.get('cer', float('nan')):.3f} | {m.get('wer', float('nan')):.3f} "
          f"| {m['loss']:.3f} |"
          for (enc, mins, n), m in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0]))), "",
        "| method | pretraining steps | pretraining min | fine-tuning + decoding min |", "|---|---|---|---|",
        *(f"| {m} | {t['steps']} | {t['pretrain_min']:.1f} | {t['finetune_min']:.1f} |" for m, t in timing.items()),
    ]
    print("\n".join(lines))
    append_results(args.results, lines, work, {"sizes": sizes, "rows": rows, "timing": timing})


if __name__ == "__main__":
    main()
