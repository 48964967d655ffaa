"""Interaction logs larger than memory (issue 20): the sequence training data path from parquet shards, grouped on
disk and memory-mapped (``modalities/sequence/grouped.py``), against the in-memory reader, on generated logs.

For each size a log is generated (users with 5..75 interactions, a Zipf-like item catalogue, string ids, int64
timestamps), its rows shuffled (every user spread over all shards) and written as 8 parquet shards plus one parquet
file. Each case runs in a fresh process: ``load_sequence_data`` (what ``selfsup pretrain`` does before the first
step: read, item map, leave-one-out, windows) and one epoch of the training loader (batches of 256 collated, no
model), then prints its wall times and peak RSS (``ru_maxrss``; the process's RSS after the imports is given
apart, so the data's share is the difference).

- ``memory``: the single parquet file with ``--cache memory`` (the in-memory reader, today's path);
- ``disk``: the shard folder (grouped into ``RUN/histories`` in buckets of ``data.group_rows`` interactions).

    OMP_NUM_THREADS=1 python benchmarks/streaming_logs.py --sizes 500000,2000000    # ~5 min on 2 shared cores
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def generate(folder: Path, interactions: int, seed: int = 0, shards: int = 8) -> None:
    """``folder/log.parquet`` and ``folder/shards/part-K.parquet`` of about ``interactions`` rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 76, size=interactions // 40 + 1)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), interactions) + 1]
    users = np.repeat(np.arange(len(lengths)), lengths)
    items = np.minimum(rng.zipf(1.3, size=len(users)), 50_000)
    stamps = rng.integers(0, 10**9, size=len(users))
    order = rng.permutation(len(users))
    table = pa.table({"user": pa.array([f"user{u:07d}" for u in users[order]]),
                      "item": pa.array([f"item{i:06d}" for i in items[order]]),
                      "timestamp": pa.array(stamps[order])})
    pq.write_table(table, folder / "log.parquet")
    (folder / "shards").mkdir(exist_ok=True)
    bounds = np.linspace(0, len(table), shards + 1).astype(int)
    for k in range(shards):
        pq.write_table(table.slice(bounds[k], bounds[k + 1] - bounds[k]), folder / "shards" / f"part-{k}.parquet")


def measure(case: str, folder: Path, group_rows: int) -> dict:
    """One case in this process: wall times and peak RSS (MiB)."""
    import pyarrow.compute  # noqa: F401  (both paths read with pyarrow: its import is not the data's share)
    import pyarrow.parquet  # noqa: F401

    from selfsup.config import DataConfig, TrainerConfig
    from selfsup.modalities.sequence.training import load_sequence_data

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    path, cache = (folder / "log.parquet", "memory") if case == "memory" else (folder / "shards", "auto")
    run = folder / f"run-{case}"
    start = time.perf_counter()
    train = load_sequence_data(DataConfig(path=str(path), modality="sequence", cache=cache, max_length=50,
                                          group_rows=group_rows), run)
    prepared = time.perf_counter() - start
    rss_prepared = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loader = train.make_loader(lambda b, g: b, 256, TrainerConfig(), 1)
    start, batches = time.perf_counter(), 0
    for _ in loader:
        batches += 1
    epoch = time.perf_counter() - start
    return {"case": case, "windows": train.num_samples, "prepare_s": prepared, "epoch_s": epoch, "batches": batches,
            "rss_after_imports_mib": base, "peak_rss_prepare_mib": rss_prepared,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="500000,2000000", help="interactions per generated log")
    p.add_argument("--group-rows", type=int, default=1_000_000)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--case", help=argparse.SUPPRESS)  # a child process: measure one case in --work
    args = p.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, args.work, args.group_rows)))
        return
    sys.path.insert(0, str(HERE))
    from common import machine, provenance, work_folder

    work = work_folder(args.work, "selfsup-logs-")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        folder = work / f"log-{size}"
        folder.mkdir(exist_ok=True)
        if not (folder / "log.parquet").exists():
            generate(folder, size)
        for case in ("memory", "disk"):
            out = subprocess.run([sys.executable, __file__, "--case", case, "--work", str(folder), "--group-rows",
                                  str(args.group_rows)], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONWARNINGS": "ignore"})
            result = {"interactions": size, **json.loads(out.stdout.strip().splitlines()[-1])}
            print(result, flush=True)
            rows.append(result)
    lines = [f"## Interaction logs larger than memory: parquet shards grouped on disk (issue 20) — {dt.date.today()}",
             "", f"Machine: {machine()}; shared with other jobs. Command: {provenance()}.", "",
             "| interactions | path | windows | prepare s | epoch s (collate only) | RSS after imports MiB | "
             "peak RSS MiB | data's share MiB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['interactions']:,} | {r['case']} | {r['windows']:,} | {r['prepare_s']:.1f} | "
                     f"{r['epoch_s']:.1f} | {r['rss_after_imports_mib']:.0f} | {r['peak_rss_mib']:.0f} | "
                     f"{r['peak_rss_mib'] - r['rss_after_imports_mib']:.0f} |")
    with open(args.results, "a") as fh:
        fh.write("\n" + "\n".join(lines) + "\n")
    (work / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
