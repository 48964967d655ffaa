"""Shared helpers of the CLI tests: run the command in-process, check one-line errors, read a run's step, and
check what a finished run produced (finite losses, an encoder that left its initial weights)."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import torch

from selfsup.cli import main


def run_cli(argv: list) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``selfsup ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """A user mistake: exit code 2 and one ``selfsup: error:`` line holding every fragment, no traceback."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("selfsup: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def checkpoint_step(checkpoint: Path) -> int:
    """The optimiser steps a checkpoint file holds."""
    return int(torch.load(checkpoint, weights_only=True)["global_step"])


def global_step(run: Path) -> int:
    """The optimiser steps a run folder's last checkpoint holds."""
    return checkpoint_step(run / "checkpoints" / "last.ckpt")


def metrics_rows(run: Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv."""
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def logged_losses(run: Path) -> list[float]:
    """Every loss value a run logged (the ``loss*`` columns of its metrics.csv), in file order."""
    return [float(row[key]) for row in metrics_rows(run) for key in row if key.startswith("loss") and row[key]]


def _parameter_distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pairs = zip(a.named_parameters(), b.named_parameters())
    return math.sqrt(sum(float((x.detach() - y.detach()).double().pow(2).sum()) for (_, x), (_, y) in pairs))


def assert_run_trained(run: Path, seed: int = 0) -> float:
    """What a finished (not resumed) run produced, beyond its exit code and step count: it logged losses and
    every one is finite, and its saved encoder left its initial weights. The start is rebuilt as the engine
    draws it (``seed_everything(seed)``, then the encoder from its stored config); the trained encoder must
    differ from it, yet by less than half of what separates it from another seed's encoder, which shows
    the rebuilt start really is this run's. Returns the distance the weights moved."""
    import lightning.pytorch as pl

    import selfsup
    from selfsup.encoders import build_encoder

    losses = logged_losses(run)
    assert losses and all(math.isfinite(x) for x in losses), f"{run}: logged losses {losses}"
    trained = selfsup.load(run)
    pl.seed_everything(seed, verbose=False)
    start = build_encoder(trained.config)
    pl.seed_everything(seed + 1, verbose=False)
    other = build_encoder(trained.config)
    moved, apart = _parameter_distance(trained, start), _parameter_distance(start, other)
    assert moved > 0, f"{run}: the encoder's weights are still the initial ones"
    assert moved < 0.5 * apart, f"{run}: moved {moved:.3g} from the rebuilt start, another seed is {apart:.3g} away"
    return moved
