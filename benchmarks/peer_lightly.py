"""selfsup against lightly on the same CIFAR-10 images, backbone, batch size, steps and machine.

lightly is installed in its own virtual environment (``benchmarks/.venv-lightly``, made on first use from
the local package index with the same torch/torchvision versions as selfsup's); it is never a dependency
of selfsup. For SimCLR and BYOL, with ResNet-18 once with the standard stem (7x7/2 conv + max-pool) and
once with the CIFAR stem (3x3/1 conv, no max-pool):

1. **Throughput**: both libraries train the same number of steps at the same batch size, alternating
   which goes first; images/s = batch / mean wall time between consecutive steps (data loading,
   augmentation, forward, backward, optimiser; the first step of each epoch is not timed in either).
   selfsup is run as a user runs it (``selfsup.pretrain``: decode-once cache, batched augmentation,
   checkpoints, logging); its one-time decode is reported separately.
2. **kNN accuracy at equal wall-clock**: each trains for the same number of minutes, then frozen
   backbone features of the train subset and the test subset go through one kNN implementation
   (k = 200, T = 0.1, Wu et al. 2018: the peers' protocol).

lightly runs its documented example recipes (see ``peer_lightly_worker.py``, fp32); selfsup its defaults,
including ``--precision auto`` (bf16-mixed on CPUs that multiply bf16 natively, fp32 elsewhere);
``--selfsup-precision 32-true`` runs selfsup in fp32 too, to separate the pipeline from the arithmetic.

    .venv/bin/python benchmarks/peer_lightly.py                  # ~40 min on 2 CPU cores
    .venv/bin/python benchmarks/peer_lightly.py --stems standard --minutes 2 --rounds 1   # quicker
    .venv/bin/python benchmarks/peer_lightly.py --stems "" --work DIR    # kNN at equal wall-clock only
    .venv/bin/python benchmarks/peer_lightly.py --stems "" --accuracy-stems cifar --seeds 0,1,2   # 3 seeds, mean
    .venv/bin/python benchmarks/peer_lightly.py --accuracy-stems "" --selfsup-precision 32-true   # fp32 vs fp32

At these budgets one kNN figure moves by about ±0.01 between training seeds (2000 test images: standard error
≈ 0.01), so compare means over ``--seeds``; the image subsets stay the same for every seed.

Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cifar10_label_efficiency import DEFAULT_DATA, balanced_subset, extract  # noqa: E402
from common import machine, provenance  # noqa: E402

from selfsup.runtime import resolve_precision  # noqa: E402

ENCODERS = {"standard": "resnet18", "cifar": "resnet18_cifar"}


def lightly_python(venv: Path) -> Path:
    """The lightly venv's python, creating the venv (same torch/torchvision as selfsup) if needed."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    import torchvision

    print(f"creating {venv} with lightly (local package index) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pins = [f"torch=={torch.__version__.split('+')[0]}", f"torchvision=={torchvision.__version__.split('+')[0]}"]
    subprocess.run([str(python), "-m", "pip", "install", "-q", "lightly", *pins], check=True)
    return python


def selfsup_worker(args: argparse.Namespace) -> None:
    """One selfsup run (in its own process, like the lightly runs): the user-facing API, then features."""
    import selfsup
    from selfsup.modalities.image.readers import load_labeled
    from selfsup.evaluation.features import extract_features
    from selfsup.pretext.image_eval import eval_transform

    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; quiet them afterwards)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    run = Path(args.out).with_suffix("")
    shutil.rmtree(run, ignore_errors=True)  # a run folder left by an earlier call would be resumed, not retrained
    start = time.perf_counter()
    selfsup.pretrain(args.train, args.method, run, encoder=ENCODERS[args.stem], batch_size=args.batch_size,
                     image_size=32, epochs=10_000, max_steps=args.steps or None, max_minutes=args.minutes or None,
                     seed=args.seed, precision=args.selfsup_precision, progress_bar=False,
                     overrides={"trainer.log_every": 1})
    wall = time.perf_counter() - start
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    step_times = [args.batch_size / float(r["samples_per_s"]) for r in rows if r.get("samples_per_s")]
    steps = int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"])
    Path(args.out).write_text(json.dumps({"steps": steps, "step_times": step_times, "wall_seconds": wall}))
    if args.features:
        encoder = selfsup.load(run)
        train = load_labeled(args.train, 32, progress=False)
        test = load_labeled(args.test, 32, classes=train.classes, progress=False)
        transform = eval_transform(32)
        np.savez(args.features, train_x=extract_features(encoder, train.images, transform).numpy(),
                 train_y=train.labels.numpy(), test_x=extract_features(encoder, test.images, transform).numpy(),
                 test_y=test.labels.numpy())


def run_one(library: str, python: Path, work: Path, tag: str, common: list[str], features: bool,
            precision: str = "auto") -> dict:
    out = work / f"{tag}.json"
    command = ([str(python), str(HERE / "peer_lightly_worker.py")] if library == "lightly"
               else [sys.executable, str(Path(__file__).resolve()), "--worker", "--selfsup-precision", precision])
    command += common + ["--out", str(out)]
    if features:
        command += ["--features", str(work / f"{tag}.npz")]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    result = json.loads(out.read_text())
    result["process_seconds"] = time.perf_counter() - start
    if features:
        from selfsup.evaluation.knn import knn_accuracy

        f = np.load(work / f"{tag}.npz")
        result["knn"] = knn_accuracy(torch.from_numpy(f["train_x"]), torch.from_numpy(f["train_y"]),
                                     torch.from_numpy(f["test_x"]), torch.from_numpy(f["test_y"]), k=200,
                                     temperature=0.1)
    times = result["step_times"]
    result["images_per_s"] = len(times) * int(common[common.index("--batch-size") + 1]) / sum(times) if times else float("nan")
    print(f"  {tag}: {result['steps']} steps, {result['images_per_s']:.1f} img/s"
          + (f", kNN {result['knn']:.4f}" if features else ""), flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.tar and test.tar")
    p.add_argument("--methods", default="simclr,byol")
    p.add_argument("--stems", default="standard,cifar", help="throughput for these ResNet-18 stems")
    p.add_argument("--accuracy-stems", default="standard", help="kNN at equal wall-clock for these stems")
    p.add_argument("--train-subset", type=int, default=5000)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="throughput steps, standard stem")
    p.add_argument("--cifar-steps", type=int, default=5, help="throughput steps, CIFAR stem")
    p.add_argument("--cifar-batch-size", type=int, default=64, help="batch for the CIFAR stem (15x the FLOPs per image)")
    p.add_argument("--rounds", type=int, default=2, help="throughput repetitions, alternating which library starts")
    p.add_argument("--minutes", type=float, default=5.0, help="training minutes per run for the kNN comparison")
    p.add_argument("--lightly-workers", type=int, default=0,
                   help="lightly DataLoader workers (0 was fastest on 2 cores, see PERF_NOTES)")
    p.add_argument("--seeds", default="0", help="training seeds for the kNN comparison (comma-separated; "
                   "the first also seeds the throughput runs); the data subsets do not depend on them")
    p.add_argument("--selfsup-precision", default="auto",
                   help="selfsup's --precision (auto: bf16-mixed where the CPU has native bf16; 32-true: fp32 like lightly)")
    p.add_argument("--venv", type=Path, default=HERE / ".venv-lightly")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    # internal: one selfsup run in a child process
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--method", "--stem", "--train", "--test", "--out", "--features"):
        p.add_argument(name, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return selfsup_worker(args)
    if args.seed:
        p.error("the kNN comparison takes --seeds (comma-separated), e.g. --seeds 1 or --seeds 0,1,2")
    try:
        seeds = list(dict.fromkeys(int(s) for s in args.seeds.split(",")))
    except ValueError:
        p.error(f"--seeds {args.seeds!r}: give whole numbers separated by commas, e.g. --seeds 0,1,2")

    python = lightly_python(args.venv)
    work = args.work or Path(tempfile.mkdtemp(prefix="selfsup-peer-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw"
    if not (raw / "train").exists():
        extract(args.data / "train.tar", raw)
        extract(args.data / "test.tar", raw)
    train, test = work / f"train{args.train_subset}", work / f"test{args.test_subset}"
    if not train.exists():  # one fixed draw (seed 0): every training seed sees the same images
        balanced_subset(raw / "train", args.train_subset // 10, train, 0)
        balanced_subset(raw / "test", args.test_subset // 10, test, 0)
    print(f"work folder: {work}", flush=True)

    def common(method: str, stem: str, steps: int = 0, minutes: float = 0.0, seed: int = seeds[0]) -> list[str]:
        batch = args.batch_size if stem == "standard" else args.cifar_batch_size
        return ["--method", method, "--stem", stem, "--train", str(train), "--test", str(test),
                "--batch-size", str(batch), "--steps", str(steps), "--minutes", str(minutes),
                "--seed", str(seed), "--workers", str(args.lightly_workers)]

    throughput: dict[tuple[str, str], dict[str, list[float]]] = {}
    for stem in [s for s in args.stems.split(",") if s]:
        steps = args.steps if stem == "standard" else args.cifar_steps
        for method in args.methods.split(","):
            runs = throughput.setdefault((method, stem), {"selfsup": [], "lightly": []})
            for r in range(args.rounds):
                order = ("selfsup", "lightly") if r % 2 == 0 else ("lightly", "selfsup")
                for library in order:
                    result = run_one(library, python, work, f"speed-{library}-{method}-{stem}-{r}",
                                     common(method, stem, steps=steps), features=False,
                                     precision=args.selfsup_precision)
                    runs[library].append(result["images_per_s"])

    accuracy = []
    for stem in [s for s in args.accuracy_stems.split(",") if s]:
        for i, method in enumerate(args.methods.split(",")):
            for j, seed in enumerate(seeds):
                order = ("selfsup", "lightly") if (i + j) % 2 == 0 else ("lightly", "selfsup")
                results = {lib: run_one(lib, python, work, f"knn-{lib}-{method}-{stem}-seed{seed}",
                                        common(method, stem, minutes=args.minutes, seed=seed), features=True,
                                        precision=args.selfsup_precision)
                           for lib in order}
                accuracy.append((method, stem, seed, results))

    lightly_version = subprocess.run([str(python), "-c", "import lightly; print(lightly.__version__)"],
                                     capture_output=True, text=True).stdout.strip()
    lines = [f"\n## selfsup vs lightly {lightly_version} on CIFAR-10 — {dt.date.today().isoformat()}\n",
             f"- machine: {machine()}",
             f"- command: {provenance()}",
             f"- data: {args.train_subset} CIFAR-10 train images (balanced), {args.test_subset} test images, 32 px, "
             f"lightly DataLoader workers {args.lightly_workers}",
             f"- precision: selfsup {resolve_precision(args.selfsup_precision)} (`--selfsup-precision "
             f"{args.selfsup_precision}`), lightly 32-true (its recipes)\n",
             ]
    if throughput:
        lines += ["Throughput (training images/s incl. data loading and augmentation; mean over rounds, alternating order):\n",
                  "| method | ResNet-18 stem | batch | steps | selfsup img/s | lightly img/s | selfsup / lightly |",
                  "|---|---|---|---|---|---|---|"]
    for (method, stem), runs in throughput.items():
        ours, theirs = statistics.mean(runs["selfsup"]), statistics.mean(runs["lightly"])
        steps, batch = (args.steps, args.batch_size) if stem == "standard" else (args.cifar_steps, args.cifar_batch_size)
        lines.append(f"| {method} | {stem} | {batch} | {steps} | {ours:.1f} | {theirs:.1f} | **{ours / theirs:.2f}×** |")
    if accuracy:
        lines += ["", f"kNN accuracy (k=200, T=0.1) after {args.minutes:g} min of training each:\n",
                  "| method | stem | seed | selfsup steps | lightly steps | selfsup kNN | lightly kNN |",
                  "|---|---|---|---|---|---|---|"]
        for method, stem, seed, res in accuracy:
            lines.append(f"| {method} | {stem} | {seed} | {res['selfsup']['steps']} | {res['lightly']['steps']} | "
                         f"{res['selfsup']['knn']:.4f} | {res['lightly']['knn']:.4f} |")
        if len(seeds) > 1:
            for method, stem in dict.fromkeys((m, s) for m, s, _, _ in accuracy):
                knn = {lib: [r[lib]["knn"] for m, s, _, r in accuracy if (m, s) == (method, stem)]
                       for lib in ("selfsup", "lightly")}
                lines.append(f"| {method} | {stem} | mean ± sd | | | **{statistics.mean(knn['selfsup']):.4f} ± "
                             f"{statistics.stdev(knn['selfsup']):.4f}** | **{statistics.mean(knn['lightly']):.4f} ± "
                             f"{statistics.stdev(knn['lightly']):.4f}** |")
    with open(args.results, "a") as f:
        f.write("\n".join(lines) + "\n")
    (work / "results.json").write_text(json.dumps({"throughput": {f"{m}-{s}": r for (m, s), r in throughput.items()},
                                                   "accuracy": [(m, s, seed, r) for m, s, seed, r in accuracy]}, indent=2))
    print("\n".join(lines))
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
