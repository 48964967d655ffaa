"""Interaction logs larger than memory (issue 20): the sequence training data path from parquet shards, grouped on
disk and memory-mapped (``modalities/sequence/grouped.py``), against the in-memory reader, on generated logs.

For each size a log is generated (users with 5..75 interactions, a Zipf-like item catalogue, string ids, int64
timestamps), its rows shuffled (every user spread over all shards) and written as 8 parquet shards plus one parquet
file, in row groups of 65,536 rows. Each case runs in a fresh process: ``load_sequence_data`` (what ``selfsup pretrain`` does before the first
step: read, item map, leave-one-out, windows) and one epoch of the training loader (batches of 256 collated, no
model), then prints its wall times and its peak RSS (Linux ``VmHWM``, reset after the imports and a warm-up of
pyarrow's compute functions on a 2-row table, :func:`warm_up`; the RSS then is given apart, and the data's share is
the difference; of that share, the peak of private memory, ``RssAnon``, sampled every 5 ms: the rest is page cache of
memory-mapped files, which the kernel reclaims under pressure).

- ``memory``: the single parquet file with ``--cache memory`` (the in-memory reader, today's path);
- ``disk``: the shard folder (grouped into ``RUN/histories`` in buckets of ``data.group_rows`` interactions).

    OMP_NUM_THREADS=1 python benchmarks/streaming_logs.py --sizes 500000,2000000,4000000 --group-rows 1000000,250000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROW_GROUP = 65536  # rows per parquet row group (pyarrow reads a row group at a time: its size bounds the reading)


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
    pq.write_table(table, folder / "log.parquet", row_group_size=ROW_GROUP)
    (folder / "shards").mkdir(exist_ok=True)
    bounds = np.linspace(0, len(table), shards + 1).astype(int)
    for k in range(shards):
        pq.write_table(table.slice(bounds[k], bounds[k + 1] - bounds[k]), folder / "shards" / f"part-{k}.parquet",
                       row_group_size=ROW_GROUP)


def _status(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the process started or :func:`reset_peak`) of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start ``VmHWM`` again from the current RSS (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


class AnonPeak:
    """The peak of ``RssAnon`` (private memory: not the page cache of memory-mapped files, which the kernel can
    drop), sampled every 5 ms by a thread while the ``with`` block runs."""

    def __enter__(self) -> "AnonPeak":
        import threading

        self.peak, self.done = _status("RssAnon"), threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.005):
            self.peak = max(self.peak, _status("RssAnon"))

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, _status("RssAnon"))


def warm_up() -> None:
    """pyarrow's compute functions used once on a 2-row table, so that their one-time set-up is not counted as the
    data's share."""
    import pyarrow as pa

    from selfsup.modalities.sequence.grouped import batch_fields
    from selfsup.modalities.sequence.readers import LogColumns

    batch = pa.record_batch({"user": ["a", "b"], "item": ["x", "y"], "timestamp": [1, 2]})
    fields = batch_fields(batch, LogColumns(), None)
    fields.users.value_counts(), fields.items.unique()
    pa.compute.index_in(fields.users, value_set=pa.array(["a", "b"]))


def measure(case: str, folder: Path, group_rows: int) -> dict:
    """One case in this process: wall times and peak RSS (MiB) during the case, apart from the imports'."""
    import pyarrow.compute  # noqa: F401  (both paths read with pyarrow: its import is not the data's share)
    import pyarrow.parquet  # noqa: F401

    from selfsup.config import DataConfig, TrainerConfig
    from selfsup.modalities.sequence.training import load_sequence_data

    warm_up()
    reset_peak()
    base, anon_base = _status("VmRSS"), _status("RssAnon")
    path, cache = (folder / "log.parquet", "memory") if case == "memory" else (folder / "shards", "auto")
    run = folder / f"run-{case}-{group_rows}"
    shutil.rmtree(run, ignore_errors=True)  # a run folder left by an earlier measurement would be reused
    with AnonPeak() as anon:
        start = time.perf_counter()
        train = load_sequence_data(DataConfig(path=str(path), modality="sequence", cache=cache, max_length=50,
                                              group_rows=group_rows), run)
        prepared = time.perf_counter() - start
        rss_prepared = _status("VmHWM")
        loader = train.make_loader(lambda b, g: b, 256, TrainerConfig(), 1)
        start, batches = time.perf_counter(), 0
        for _ in loader:
            batches += 1
        epoch = time.perf_counter() - start
    return {"case": case, "windows": train.num_samples, "prepare_s": prepared, "epoch_s": epoch, "batches": batches,
            "rss_after_imports_mib": base, "peak_rss_prepare_mib": rss_prepared,
            "peak_rss_mib": _status("VmHWM"), "anon_share_mib": anon.peak - anon_base}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="500000,2000000", help="interactions per generated log")
    p.add_argument("--group-rows", default="1000000", help="data.group_rows of the disk path (a list: one case each)")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--case", help=argparse.SUPPRESS)  # a child process: measure one case in --work
    p.add_argument("--generate", type=int, help=argparse.SUPPRESS)  # a child process: write the log into --work
    args = p.parse_args()
    if args.generate:
        generate(args.work, args.generate)
        return
    if args.case:
        print(json.dumps(measure(args.case, args.work, int(args.group_rows))))
        return
    sys.path.insert(0, str(HERE))
    from common import machine, provenance, work_folder

    work = work_folder(args.work, "selfsup-logs-")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        folder = work / f"log-{size}"
        folder.mkdir(exist_ok=True)
        if not (folder / "log.parquet").exists():  # in a child process too: this one stays small
            subprocess.run([sys.executable, __file__, "--generate", str(size), "--work", str(folder)], check=True)
        for case, group_rows in [("memory", "-"), *(("disk", g) for g in args.group_rows.split(","))]:
            out = subprocess.run([sys.executable, __file__, "--case", case, "--work", str(folder), "--group-rows",
                                  "1" if group_rows == "-" else group_rows], capture_output=True, text=True,
                                 check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            result = {"interactions": size, "group_rows": group_rows,
                      **json.loads(out.stdout.strip().splitlines()[-1])}
            print(result, flush=True)
            rows.append(result)
    lines = [f"## Interaction logs larger than memory: parquet shards grouped on disk (issue 20) — {dt.date.today()}",
             "", f"Machine: {machine()}; shared with other jobs. Command: {provenance()}.", "",
             "| interactions | path | group_rows | windows | prepare s | epoch s (collate only) | RSS after imports MiB "
             "| peak RSS MiB | data's share MiB | of it private (anonymous) MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['interactions']:,} | {r['case']} | {r['group_rows']} | {r['windows']:,} | {r['prepare_s']:.1f} | "
                     f"{r['epoch_s']:.1f} | {r['rss_after_imports_mib']:.0f} | {r['peak_rss_mib']:.0f} | "
                     f"{r['peak_rss_mib'] - r['rss_after_imports_mib']:.0f} | {r['anon_share_mib']:.0f} |")
    with open(args.results, "a") as fh:
        fh.write("\n" + "\n".join(lines) + "\n")
    (work / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
