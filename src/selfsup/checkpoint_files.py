"""Reading selfsup checkpoints safely, without the training engine (evaluate, embed and export need no Lightning).

Every reader goes through :func:`load_checkpoint` (weights-only: tensors and plain data, never arbitrary
objects); a damaged or foreign file is one line naming it and what is wrong; :func:`load_run_checkpoint` falls
back from last.ckpt to best.ckpt with a warning.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .distributed import launched_as_other_rank
from .errors import SelfSupError

log = logging.getLogger("selfsup")

LAST_FILE, BEST_FILE = "last.ckpt", "best.ckpt"
TRAINING_STATE = ("global_step", "loops", "optimizer_states")  # what Lightning needs to resume a run
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format is a zip archive


def _unreadable(path: Path, error: BaseException) -> str:
    """What is wrong with a checkpoint file that ``torch.load`` refused, in a few words."""
    size = path.stat().st_size
    if size == 0:
        return "empty file, 0 bytes"
    with open(path, "rb") as file:
        head = file.read(4)
    if isinstance(error, pickle.UnpicklingError):
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if refused:
            return (f"it asks to load {refused.group(1)}, not only tensors and plain data; refused, as loading it "
                    "could run code")
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
        return f"damaged: its pickled contents are invalid{f' ({detail.group(1).strip()[:80]})' if detail else ''}"
    if head != ZIP_MAGIC:
        return f"not a PyTorch checkpoint: {size} bytes that do not start like one"
    if not zipfile.is_zipfile(path):
        return f"truncated or damaged: {size} bytes, the zip archive's end is missing"
    with zipfile.ZipFile(path) as archive:
        if not any(name.endswith("/data.pkl") for name in archive.namelist()):
            return "a zip archive, but not of a PyTorch checkpoint (no data.pkl in it)"
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"damaged: {message[:120]}"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load one of our own checkpoints without unpickling arbitrary objects (tensors and plain data only).

    Every reader goes through here: an empty, truncated, foreign or tampered file, a pickle that
    ``weights_only`` refuses, or one without a ``state_dict`` raises :class:`UnreadableCheckpoint`, a
    one-line ``SelfSupError`` naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableCheckpoint(path, "no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError, ... by format
        raise UnreadableCheckpoint(path, _unreadable(path, error)) from None
    if not isinstance(checkpoint, dict):
        raise UnreadableCheckpoint(path, f"it holds a {type(checkpoint).__name__}, not a checkpoint")
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise UnreadableCheckpoint(path, "it has no state_dict, so it is not a selfsup checkpoint")
    return checkpoint


class UnreadableCheckpoint(SelfSupError):
    """A checkpoint file that cannot be used; ``reason`` says why in a few words."""

    def __init__(self, path: Path, reason: str, fix: str = "", also: str = "") -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: not a readable checkpoint ({reason})" + (f", and {also}" if also else "")
                         + (f"; {fix}" if fix else ""))


def check_weights(path: Path, state: Mapping[str, Any], expected: Mapping[str, torch.Tensor], what: str,
                  fix: str = "") -> None:
    """Raise :class:`UnreadableCheckpoint` unless ``state`` has exactly ``expected``'s names and shapes (what a
    strict ``load_state_dict`` needs), saying which differ: a checkpoint of another model or size."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    resized = [f"{k} (saved {list(getattr(state[k], 'shape', ()))}, here {list(expected[k].shape)})"
               for k in sorted(set(expected) & set(state)) if tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)]
    found = (("missing", missing), ("unexpected", unexpected), ("other shape", resized))
    problems = [f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}" for label, names in found if names]
    if problems:
        raise UnreadableCheckpoint(path, f"its weights do not fit {what}: {'; '.join(problems)}", fix)


def check_resume(path: Path, checkpoint: Mapping[str, Any], module: torch.nn.Module, fix: str) -> None:
    """Before Lightning resumes from ``path``: it must hold the training state and weights that fit ``module``."""
    absent = [key for key in TRAINING_STATE if key not in checkpoint]
    if absent:
        raise UnreadableCheckpoint(path, f"it has no training state to resume from (no {', '.join(absent)})", fix)
    check_weights(path, checkpoint["state_dict"], module.state_dict(), "this run's model", fix)


def load_run_checkpoint(directory: Path, action: str, fix: str) -> tuple[Path, dict[str, Any]]:
    """``directory``'s last.ckpt, or its best.ckpt with a warning when last.ckpt cannot be read.

    ``action`` says what happens with best.ckpt in the warning ("resuming from", "using"); ``fix`` ends the
    error raised when neither file can be read. Neither file is ever changed here."""
    last, best = Path(directory) / LAST_FILE, Path(directory) / BEST_FILE
    try:
        return last, load_checkpoint(last)
    except UnreadableCheckpoint as broken:
        try:
            checkpoint = load_checkpoint(best)
        except UnreadableCheckpoint as also:
            other = (f"neither is {BEST_FILE} ({also.reason})" if best.exists()
                     else f"there is no {BEST_FILE} to fall back to")
            raise UnreadableCheckpoint(last, broken.reason, fix, also=other) from None
        if not launched_as_other_rank():  # the launching process speaks for the run
            log.warning("%s unreadable (%s); %s %s (step %s)", last, broken.reason, action, best.name,
                        checkpoint.get("global_step", "?"))
        return best, checkpoint
