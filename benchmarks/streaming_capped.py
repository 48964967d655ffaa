"""Data several times larger than the memory a run is ALLOWED (issue 20, item 2): the shard path under a hard limit.

``benchmarks/streaming.py`` measures the memory of shard runs; this script enforces a limit. Each run is started in
its own Linux memory cgroup (v1 ``memory.limit_in_bytes``, swap included where the kernel accounts it; this machine
has no swap) of ``--cap-gib``: going over it gets the process killed by the kernel's OOM killer, so a run that
finishes never held more (``memory.failcnt``: how often usage reached the limit and the kernel had to reclaim pages;
page cache is charged to the cgroup that first read a page, here mostly the parent that wrote the shards). The shards: ``--images`` random-noise JPEGs of
``--size`` px (the same generator and writer as ``streaming.py``), several times the cap. Runs:

1. the whole shard set through the training loader (decode at 64 px, ``--workers`` loader workers, no model);
2. ``selfsup pretrain SHARDS --image-size 64 --max-steps N`` (SimCLR, tiny_cnn), a whole user process: training,
   checkpoints and the run report.

Needs root (or a delegated cgroup) to create the cgroup; it says so and stops otherwise.

    OMP_NUM_THREADS=1 python benchmarks/streaming_capped.py --work /tmp/capped   # ~6 min
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from common import HERE, machine, provenance
from streaming import LOADER_PASS, finish, make_images, peak_until, run_measured, steady_rate

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


class MemoryCgroup:
    """A v1 memory cgroup limited to ``limit`` bytes; :meth:`wrap` starts a command inside it."""

    def __init__(self, name: str, limit: int) -> None:
        self.path = CGROUP_ROOT / name
        self.path.mkdir(exist_ok=True)
        (self.path / "memory.limit_in_bytes").write_text(str(limit))
        swap = self.path / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(limit))
        self.limit = int((self.path / "memory.limit_in_bytes").read_text())

    def wrap(self, command: list[str]) -> list[str]:
        """``command``, moved into the cgroup before it starts (its children stay there)."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path), *command]

    def stats(self) -> dict[str, int]:
        read = lambda name: int((self.path / name).read_text())  # noqa: E731
        oom = dict(line.split() for line in (self.path / "memory.oom_control").read_text().splitlines())
        return {"max_usage": read("memory.max_usage_in_bytes"), "failcnt": read("memory.failcnt"),
                "oom_kills": int(oom.get("oom_kill", 0))}

    def remove(self) -> None:
        self.path.rmdir()


def capped(name: str, command: list[str], cap: int) -> dict:
    group = MemoryCgroup(f"selfsup-capped-{name}", cap)
    try:
        result = run_measured(group.wrap(command))
        result.update(group.stats(), limit=group.limit)
    finally:
        group.remove()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/selfsup-capped"))
    p.add_argument("--cap-gib", type=float, default=2.5, help="the limit of the pretrain run")
    p.add_argument("--loader-cap-gib", type=float, default=1.0, help="the limit of the loader pass")
    p.add_argument("--images", type=int, default=60_000)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = p.parse_args()
    if not CGROUP_ROOT.is_dir():
        raise SystemExit(f"{CGROUP_ROOT}: no v1 memory cgroup here; run on a machine with one, as root")
    args.work.mkdir(parents=True, exist_ok=True)
    cap = int(args.cap_gib * 2**30)
    t0 = time.perf_counter()
    shards, _, shard_bytes = make_images(args.work, args.images, 0, args.size)
    made = time.perf_counter() - t0
    print(f"image shards: {shard_bytes / 1e9:.2f} GB in {made:.0f} s", flush=True)

    loader_cap = int(args.loader_cap_gib * 2**30)
    whole = capped("loader", [sys.executable, "-c", LOADER_PASS, str(shards), str(args.workers)], loader_cap)
    marks = {float(line.split()[1]): at for at, line in whole["lines"] if line.startswith("MARK")}
    images, seconds = next(line.split()[1:] for _, line in whole["lines"] if line.startswith("IMAGES"))
    whole_pss = [peak_until(whole["rss"], at) for _, at in sorted(marks.items())]
    print(f"[loader] {images} images in {float(seconds):.0f} s, PSS {whole_pss}, {whole['failcnt']} limit hits",
          flush=True)

    run = args.work / "run"
    shutil.rmtree(run, ignore_errors=True)
    train = capped("pretrain", [sys.executable, "-m", "selfsup.cli", "pretrain", str(shards), "--out", str(run),
                                "--image-size", "64", "--batch-size", "64", "--max-steps", str(args.steps),
                                "--num-workers", str(args.workers), "--no-progress", "--set", "trainer.log_every=2"],
                   cap)
    train_pss = [peak_until(train["rss"], f * train["wall"]) for f in (0.1, 0.5, 1.0)]
    print(f"[pretrain] {train['wall']:.0f} s, PSS {train_pss}, {train['failcnt']} limit hits", flush=True)

    gib = 2**30
    lines = [
        "", "## Shards several times larger than the memory a run is allowed: a hard cgroup limit (issue 20)", "",
        f"{time.strftime('%Y-%m-%d')}, {machine()}; the 2-core machine shared with other jobs. {provenance()}.", "",
        f"{args.images:,} random-noise JPEGs of {args.size} px: **{shard_bytes / 1e9:.2f} GB of tar shards** (written "
        f"in {made:.0f} s). Each run had its own memory cgroup (`memory.limit_in_bytes`; over it the kernel's OOM "
        "killer ends the process; no swap on this machine): the limit is what the run was allowed, and the shards "
        "are that many times larger.", "",
        "| run | allowed (GiB) | shards / allowed | wall (s) | finished | peak PSS 10/50/100 % (GiB) | "
        "cgroup max usage (GiB) | limit reached (failcnt) | OOM kills |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| the whole shard set through the training loader ({images} images, {args.workers} worker, decode at "
        f"64 px) | {args.loader_cap_gib:g} | {shard_bytes / loader_cap:.1f}x | {whole['wall']:.0f} | yes | "
        f"{' / '.join(f'{v:.2f}' for v in whole_pss)} | {whole['max_usage'] / gib:.2f} | {whole['failcnt']} | "
        f"{whole['oom_kills']} |",
        f"| `selfsup pretrain SHARDS --image-size 64 --batch-size 64 --max-steps {args.steps} --num-workers "
        f"{args.workers}` (SimCLR, tiny_cnn; steady {steady_rate(run):.0f} images/s; checkpoints and the run report "
        f"included) | {args.cap_gib:g} | {shard_bytes / cap:.1f}x | {train['wall']:.0f} | yes | "
        f"{' / '.join(f'{v:.2f}' for v in train_pss)} | {train['max_usage'] / gib:.2f} | {train['failcnt']} | "
        f"{train['oom_kills']} |",
    ]
    finish(lines, args)


if __name__ == "__main__":
    main()
