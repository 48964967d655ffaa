"""Finding the user's files: one discovery rule for every reader (images, text, audio, labeled sets).

- a folder: every file below it (any depth) whose suffix is wanted, sorted; hidden files and everything
  inside hidden folders (a name starting with ``.``: ``.git``, ``.ipynb_checkpoints``, macOS ``._x.jpg``)
  are skipped;
- a list file (``.txt``/``.lst``/``.list`` where listing is allowed): one path per line, relative paths
  resolved against the list's folder, blank lines and ``#`` comments ignored, missing files an error;
- a single file with a wanted suffix: itself, where single files are allowed.

Errors are one line naming the path and what to give instead.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from .errors import SelfSupError

LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})


def is_hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` (below ``root``) is hidden or lies inside a hidden folder."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def files_below(root: Path, extensions: Collection[str]) -> list[Path]:
    """The files below the folder ``root`` with a suffix in ``extensions`` (any case), sorted, hidden ones
    and those in hidden folders skipped."""
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in extensions and not is_hidden(p, root) and p.is_file())


def listed_files(path: Path) -> list[Path]:
    """The paths listed in the text file ``path``, one per line (relative to its folder); all must exist."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    files = [Path(line) if Path(line).is_absolute() else (path.parent / line).resolve()
             for line in lines if line and not line.startswith("#")]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise SelfSupError(f"{path}: {len(missing)} listed file(s) do not exist, first: {missing[0]}; "
                           "fix or remove those lines")
    return files


def find_files(path: str | Path, extensions: Collection[str], what: str, *, lists: bool = True,
               single: bool = False) -> list[Path]:
    """The files (``what``: "images", "audio files") that ``path`` names: a folder (searched as
    :func:`files_below`), a list file (``lists``) or one file (``single``). An empty result is an error."""
    path = Path(path).expanduser()
    wanted = ", ".join(sorted(extensions))
    accepted = f"a folder of {what}" + (" or a .txt file listing their paths, one per line" if lists else "")
    if not path.exists():
        raise SelfSupError(f"{path}: no such file or folder; give {accepted}")
    if path.is_dir():
        files = files_below(path, extensions)
        if not files:
            raise SelfSupError(f"{path}: no {what} found (looked for {wanted} at any depth, hidden files and "
                               f"folders skipped); point DATA at the folder that holds your {what}")
        return files
    suffix = path.suffix.lower()
    if single and suffix in extensions:
        return [path]
    if lists and suffix in LIST_EXTENSIONS:
        files = listed_files(path)
        if not files:
            raise SelfSupError(f"{path}: the list names no files; put one path per line")
        return files
    raise SelfSupError(f"{path}: expected {accepted}" + (f", or one file ({wanted})" if single else ""))


def class_folders(root: Path, what: str) -> list[str]:
    """The class subfolder names of a labeled folder (sorted; hidden ones skipped); at least two."""
    if not root.is_dir():
        raise SelfSupError(f"{root}: not a folder; a labeled set is a folder with one subfolder of {what} per class")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(found) < 2:
        raise SelfSupError(f"{root}: found {len(found)} class subfolder(s); a labeled set needs one subfolder per "
                           "class (at least 2)")
    return found
