"""What every benchmark script shares: the machine and provenance lines of RESULTS.md, the work folder, and
the label-efficiency arguments."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import selfsup
from selfsup.runtime import cpu_has_native_bf16

HERE = Path(__file__).resolve().parent


def machine() -> str:
    """CPU model, cores, native bf16 (what ``--precision auto`` decides from), GPU, torch and selfsup versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = "native bf16 (AVX-512 BF16 / AMX)" if cpu_has_native_bf16() else "no native bf16"
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {bf16}{gpu}; torch {torch.__version__}, selfsup {selfsup.__version__}"


def provenance() -> str:
    """The command that ran (as typed after ``python``) and the commit it ran at."""
    command = "python " + shlex.join([str(Path(sys.argv[0]))] + sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    return f"`{command}` (commit {commit or 'uncommitted'})"


def add_label_arguments(p: argparse.ArgumentParser, fractions: str, finetune_steps: int,
                        protocols: str = "knn,linear,finetune") -> None:
    """--fractions, --protocols, --finetune-steps, --seed, --work and --results."""
    p.add_argument("--fractions", default=fractions)
    p.add_argument("--protocols", default=protocols)
    p.add_argument("--finetune-steps", type=int, default=finetune_steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None, help="keep runs here (default: a temporary folder)")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")


def work_folder(work: Path | None, prefix: str) -> Path:
    """``work`` (created), or a new temporary folder; printed either way."""
    work = work or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", flush=True)
    return work


def append_results(results: Path, lines: list[str], work: Path, payload: dict) -> None:
    """Append ``lines`` (markdown) to RESULTS.md and keep the raw numbers in ``work/results.json``."""
    import json

    with open(results, "a") as f:
        f.write("\n".join(lines) + "\n")
    (work / "results.json").write_text(json.dumps(payload, indent=2))
    print(f"appended to {results}")


def global_steps(run: Path) -> int:
    """The optimiser steps a run folder's last checkpoint reached."""
    return int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"])
