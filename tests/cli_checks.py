"""Shared helpers of the CLI tests: run the command in-process, check one-line errors, read a run's step."""

from __future__ import annotations

import contextlib
import io
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


def global_step(run: Path) -> int:
    """The optimiser steps a run folder's last checkpoint holds."""
    return int(torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"])
