"""Data larger than memory (issue 20, item 2): memory and speed of training from shards against the in-memory path.

Images: ``--images`` random-noise JPEGs of ``--size`` px (quality 95, no chroma subsampling: several GB) written
as WebDataset tar shards by the code ``selfsup shard`` runs (:func:`selfsup.shards.write.write_shards`), and the
first ``--memory-images`` of the same JPEGs as a folder for the in-memory path (``--cache memory``: decoded once
into one uint8 tensor, augmented per batch). Both are trained as a user would, one whole process each:
``selfsup pretrain DATA --image-size 64 --batch-size B --max-steps N --num-workers W`` (default method and
encoder: SimCLR, tiny_cnn). Reported per run: whole-process wall time, steady-state images/s (the median of
metrics.csv's ``samples_per_s`` over the second half of the logged steps) and the peak memory of the process tree
(the run and its loader workers: the sum of their PSS from /proc/PID/smaps_rollup, sampled every 0.5 s: shared
pages split among the processes sharing them, so forked workers are not counted twice) at 10 %, 50 % and 100 % of
the whole process's wall time. A loader pass over the WHOLE shard set (decode per sample in one worker, no
model) shows the memory over all the data. Text: the same comparison for ``--text-copies`` copies of Tiny
Shakespeare's lines, a .txt file with ``--cache memory`` (the token cache) against parquet shards (``selfsup
shard --modality text``), default method and encoder (MLM, bert_tiny), tokens/s = texts/s x mean tokens per text.

Memory limit: no hard limit is set (RLIMIT_AS counts torch's reserved address space, not memory); the bound is
measured: the shard runs' peak PSS against the decoded size of the data (what the memory path would hold).

    OMP_NUM_THREADS=1 nice -n -5 python benchmarks/streaming.py --work /tmp/streaming   # ~16 min on 2 shared cores
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from common import HERE, machine, provenance

ROOT = HERE.parent


# ------------------------------------------------------------------ memory of a process tree


def tree_pss(pid: int) -> int:
    """Proportional set size (bytes) of ``pid`` and all its descendants (from /proc): resident memory with each
    shared page split among the processes sharing it, so forked loader workers are not counted twice."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) < pid:  # descendants start after the process (no pid wrap-around)
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:")) * 1024
        except (OSError, IndexError, ValueError, StopIteration):
            pass
        todo += children.get(p, [])
    return total


def run_measured(command: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``command``; wall time, its stdout and the PSS of its process tree every 0.5 s."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    samples: list[tuple[float, int]] = []

    def sample() -> None:
        while proc.poll() is None:
            samples.append((time.perf_counter() - start, tree_pss(proc.pid)))
            time.sleep(0.5)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    lines = [(time.perf_counter() - start, line.rstrip()) for line in proc.stdout]
    proc.wait()
    thread.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print("\n".join(line for _, line in lines[-30:]))
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}")
    return {"wall": wall, "rss": samples, "lines": lines}


def peak_until(samples: list[tuple[float, int]], t: float) -> float:
    """Peak memory (GiB) of the samples up to time ``t``."""
    return max((rss for at, rss in samples if at <= t), default=0) / 2**30


# ------------------------------------------------------------------ data


def noise_jpeg(rng: np.random.Generator, size: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(out, format="JPEG", quality=95,
                                                                              subsampling=0)
    return out.getvalue()


def make_images(work: Path, count: int, in_memory: int, size: int) -> tuple[Path, Path, int]:
    """Shards of ``count`` noise JPEGs and a folder of the first ``in_memory`` of them; returns both and the
    shards' bytes."""
    from selfsup.shards.write import ShardSource, write_shards

    shards, folder = work / "image-shards", work / "image-folder"
    if not shards.exists():
        folder.mkdir(parents=True, exist_ok=True)

        def samples():
            rng = np.random.default_rng(0)
            for i in range(count):
                data = noise_jpeg(rng, size)
                if i < in_memory:
                    (folder / f"{i:07d}.jpg").write_bytes(data)
                yield {"__key__": f"{i:09d}", "jpg": data, "path": f"{i:07d}.jpg"}

        write_shards(ShardSource("tar", samples(), count), shards, 256 * 10**6, {"modality": "image",
                     "source": "benchmarks/streaming.py noise", "format": "tar"})
    return shards, folder, sum(p.stat().st_size for p in shards.glob("*.tar"))


def make_texts(work: Path, copies: int) -> tuple[Path, Path]:
    """Tiny Shakespeare's non-empty lines ``copies`` times as a .txt file, and as parquet shards."""
    source = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"
    if not source.exists():
        source = Path("/work/shared/data/text/tinyshakespeare/input.txt")
    text_file, shards = work / "texts.txt", work / "text-shards"
    if not text_file.exists():
        lines = [line for line in source.read_text().splitlines() if line.strip()]
        text_file.write_text("\n".join(lines * copies) + "\n")
    if not shards.exists():
        selfsup(["shard", str(text_file), "--out", str(shards), "--modality", "text", "--shard-size", "16MB",
                 "--no-progress"])
    return text_file, shards


def selfsup(args: list[str]) -> dict:
    return run_measured([sys.executable, "-m", "selfsup.cli", *args])


# ------------------------------------------------------------------ runs


def steady_rate(run: Path) -> float:
    """Median ``samples_per_s`` over the second half of the logged steps."""
    with open(run / "metrics.csv", newline="") as fh:
        rates = [float(row["samples_per_s"]) for row in csv.DictReader(fh) if row.get("samples_per_s")]
    return statistics.median(rates[len(rates) // 2:])


def pretrain(name: str, data: Path, work: Path, extra: list[str], steps: int, batch: int) -> dict:
    out = work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    print(f"[{name}] pretrain {data} {' '.join(extra)}", flush=True)
    result = selfsup(["pretrain", str(data), "--out", str(out), "--batch-size", str(batch), "--max-steps", str(steps),
                      "--no-progress", "--set", "trainer.log_every=2", *extra])
    result.update(name=name, rate=steady_rate(out), run=out,
                  rss_at={f: peak_until(result["rss"], f * result["wall"]) for f in (0.1, 0.5, 1.0)})
    print(f"[{name}] wall {result['wall']:.1f} s, steady {result['rate']:.1f}/s, peak PSS "
          + ", ".join(f"{int(f * 100)}%: {v:.2f} GiB" for f, v in result["rss_at"].items()), flush=True)
    return result


LOADER_PASS = """
import sys, time
from functools import partial
import torch
from selfsup.config import DataConfig, TrainerConfig
from selfsup.modalities.image.training import load_image_shards
from selfsup.modalities import get_modality
from selfsup.shards.sources import shard_set
from selfsup.shards.tar import SUFFIXES, count_tar
data = DataConfig(image_size=64)
shards = shard_set(sys.argv[1], SUFFIXES, count_tar, strict=False)
train = load_image_shards(data, shards)
loader = train.make_loader(lambda images, generator=None: {"view": images}, 256, TrainerConfig(num_workers=int(sys.argv[2])), 1)
loader.sampler.set_epoch(0)
total, start, marks = len(loader), time.perf_counter(), {}
for i, batch in enumerate(loader):
    for f in (0.1, 0.5, 1.0):
        if i + 1 == max(1, int(f * total)) and f not in marks:
            marks[f] = True
            print(f"MARK {f} {time.perf_counter() - start:.2f}", flush=True)
print(f"IMAGES {shards.total} {time.perf_counter() - start:.2f}", flush=True)
"""


def loader_pass(shards: Path, workers: int) -> dict:
    """Every image of the shard set decoded at 64 px by the training loader (no pretext, no model)."""
    print(f"[loader pass] {shards}, {workers} worker(s)", flush=True)
    result = run_measured([sys.executable, "-c", LOADER_PASS, str(shards), str(workers)])
    marks = {float(line.split()[1]): at for at, line in result["lines"] if line.startswith("MARK")}
    images, seconds = next(line.split()[1:] for _, line in result["lines"] if line.startswith("IMAGES"))
    result.update(images=int(images), rate=int(images) / float(seconds),
                  rss_at={f: peak_until(result["rss"], at) for f, at in marks.items()})
    print(f"[loader pass] {result['rate']:.0f} images/s, PSS " +
          ", ".join(f"{int(f * 100)}%: {v:.2f} GiB" for f, v in result["rss_at"].items()), flush=True)
    return result


def mean_tokens(run: Path, text_file: Path) -> float:
    from selfsup.modalities.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(run / "tokenizer")
    lines = [line for line in text_file.read_text().splitlines()[:5000] if line.strip()]
    ids = tokenizer(lines, truncation=True, max_length=128)["input_ids"]
    return float(np.mean([len(x) for x in ids]))


# ------------------------------------------------------------------ report


def rss_cell(result: dict) -> str:
    return " / ".join(f"{v:.2f}" for v in result["rss_at"].values())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/selfsup-streaming"))
    p.add_argument("--images", type=int, default=130_000)
    p.add_argument("--memory-images", type=int, default=10_000)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--text-copies", type=int, default=4)
    p.add_argument("--text-steps", type=int, default=40)
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    workers = [int(w) for w in args.workers.split(",")]
    t0 = time.perf_counter()
    shards, folder, shard_bytes = make_images(args.work, args.images, args.memory_images, args.size)
    print(f"image shards: {shard_bytes / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s", flush=True)
    common = ["--image-size", "64"]
    memory = pretrain("images-memory", folder, args.work, [*common, "--cache", "memory", "--num-workers", "0"],
                      args.steps, args.batch_size)
    streamed = [pretrain(f"images-shards-w{w}", shards, args.work, [*common, "--num-workers", str(w)], args.steps,
                         args.batch_size) for w in workers]
    whole = loader_pass(shards, 1)
    text_file, text_shards = make_texts(args.work, args.text_copies)
    text_memory = pretrain("text-memory", text_file, args.work, ["--modality", "text", "--cache", "memory"],
                           args.text_steps, args.batch_size)
    text_streamed = [pretrain(f"text-shards-w{w}", text_shards, args.work, ["--modality", "text", "--num-workers", str(w)],
                              args.text_steps, args.batch_size) for w in (0, 1)]
    tokens = mean_tokens(text_memory["run"], text_file)
    decoded = args.images * 3 * 64 * 64 / 2**30

    lines = [
        "", "## Streaming from shards vs the in-memory path (issue 20)", "",
        f"{time.strftime('%Y-%m-%d')}, {machine()}; the 2-core AMD EPYC, shared with 4 other jobs (other helpers' "
        f"test runs): absolute rates move with them. {provenance()}. Total {(time.perf_counter() - t0) / 60:.0f} min.",
        "",
        f"Images: {args.images:,} random-noise JPEGs of {args.size} px ({shard_bytes / 1e9:.2f} GB of tar shards, "
        f"{decoded:.1f} GiB decoded at 64 px: what the memory path would hold) against the first "
        f"{args.memory_images:,} of them in a folder, `--cache memory`. `selfsup pretrain DATA --image-size 64 "
        f"--batch-size {args.batch_size} --max-steps {args.steps}` (SimCLR, tiny_cnn); steady = median "
        "samples_per_s over the second half of the steps; PSS = the process tree's (run + loader workers) peak "
        "at 10 / 50 / 100 % of the whole process's wall time (start-up included).", "",
        "| data | workers | whole process (s) | steady images/s | vs memory | peak PSS 10/50/100 % (GiB) |",
        "|---|---|---|---|---|---|",
        f"| folder, memory | 0 | {memory['wall']:.1f} | {memory['rate']:.0f} | 1.00 | {rss_cell(memory)} |",
    ]
    for w, r in zip(workers, streamed):
        lines.append(f"| shards | {w} | {r['wall']:.1f} | {r['rate']:.0f} | {r['rate'] / memory['rate']:.2f} | "
                     f"{rss_cell(r)} |")
    lines += [
        "", f"The whole shard set through the training loader (decode at 64 px per sample, 1 worker, "
        f"no pretext, no model): {whole['images']:,} images at {whole['rate']:.0f} images/s; peak PSS at 10 / 50 / 100 % of "
        f"the batches {rss_cell(whole)} GiB.", "",
        f"Text: Tiny Shakespeare's lines x {args.text_copies} ({text_file.stat().st_size / 1e6:.1f} MB), a .txt "
        f"with `--cache memory` (the token cache) against parquet shards; `selfsup pretrain DATA --modality text "
        f"--batch-size {args.batch_size} --max-steps {args.text_steps}` (MLM, bert_tiny); {tokens:.1f} tokens per "
        "text on average (the run's tokenizer), tokens/s = texts/s x that.", "",
        "| data | workers | whole process (s) | steady tokens/s | vs memory | peak PSS 10/50/100 % (GiB) |",
        "|---|---|---|---|---|---|",
        f"| .txt, memory | 0 | {text_memory['wall']:.1f} | {text_memory['rate'] * tokens:.0f} | 1.00 | "
        f"{rss_cell(text_memory)} |",
    ]
    for w, r in zip((0, 1), text_streamed):
        lines.append(f"| parquet shards | {w} | {r['wall']:.1f} | {r['rate'] * tokens:.0f} | "
                     f"{r['rate'] / text_memory['rate']:.2f} | {rss_cell(r)} |")
    finish(lines, args)


def finish(lines: list[str], args: argparse.Namespace) -> None:
    """Print the RESULTS.md section ``lines``, append it to ``args.results`` and remove the generated data unless
    ``args.keep``."""
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.results, "a") as fh:
        fh.write(text)
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
