"""Where ``selfsup embed`` writes, and how a re-run continues.

Parquet output is written into ``OUT.partial/`` (``part-00000.parquet``, ... one per ``part_rows`` inputs, each
written to a hidden temporary name and renamed when complete, and ``_selfsup_embed.json``, the manifest: run,
data and settings). A re-run with the same manifest keeps the finished parts and redoes the rest; another
manifest is refused unless ``--overwrite``. When every part is written the folder becomes ``OUT``: one file when
``OUT`` ends in ``.parquet`` and one part holds everything (the manifest in its schema metadata), else a folder of
parts with the manifest beside them (names starting with ``_`` or ``.`` are skipped by pyarrow and pandas, so
``read_table(OUT)`` reads the parts as one table in order).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import SelfSupError

MANIFEST = "_selfsup_embed.json"
META_KEY = b"selfsup.embed"
PART = "part-{:05d}.parquet"


def require_pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SelfSupError("writing .parquet needs pyarrow: pip install 'selfsup[parquet]', or use an .npy file") from None
    return pa, pq


def embeddings_table(embeddings: torch.Tensor, references: list, key: str, manifest: dict[str, Any] | None = None):
    """A pyarrow table: ``key`` (the path, text or user of each row) and ``embedding`` (fixed-size float32 lists);
    ``manifest`` goes into the schema metadata."""
    pa, _ = require_pyarrow()
    array = embeddings.float().numpy()
    dim = array.shape[1] if array.ndim == 2 else 0
    table = pa.table({key: pa.array([str(r) for r in references], pa.string()),
                      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1), pa.float32()), dim)})
    if manifest is not None:
        table = table.replace_schema_metadata({META_KEY: json.dumps(manifest, sort_keys=True).encode()})
    return table


def weights_digest(module: torch.nn.Module) -> str:
    """BLAKE2b of the encoder's parameters and buffers (names, shapes, bytes): which weights embedded a file."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def data_fingerprint(data: str | Path) -> dict[str, Any]:
    """What DATA was: its absolute path with the number, total size and latest change of its files (a local file or
    folder), else the pattern or URL as given."""
    path = Path(str(data)).expanduser()
    if path.is_file():
        stat = path.stat()
        return {"data": str(path.resolve()), "files": 1, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.is_dir():
        files = size = latest = 0
        for folder, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    stat = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                files, size, latest = files + 1, size + stat.st_size, max(latest, stat.st_mtime_ns)
        return {"data": str(path.resolve()), "files": files, "bytes": size, "mtime_ns": latest}
    return {"data": str(data)}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" if k != "weights" else "the run's weights" for k in keys)


def stored_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a finished ``OUT`` (a parquet file's metadata or a folder's ``_selfsup_embed.json``), of an
    ``OUT.partial`` folder; None when ``path`` holds none."""
    try:
        if path.is_dir():
            return json.loads((path / MANIFEST).read_text())
        _, pq = require_pyarrow()
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_KEY]) if META_KEY in meta else None
    except (OSError, ValueError, KeyError):
        return None
    except Exception:  # noqa: BLE001  pyarrow's ArrowInvalid on a file that is not parquet
        return None


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _check_or_clear(path: Path, manifest: dict[str, Any], overwrite: bool, what: str) -> bool:
    """Whether ``path`` already holds this very manifest's output; another one is refused in one line, or
    removed with ``overwrite``. Never removes what selfsup did not write (no manifest)."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return False
    stored = stored_manifest(path)
    if stored == manifest:
        return True
    if stored is None:
        raise SelfSupError(f"{path}: exists and was not written by selfsup embed; give a new --out or remove it")
    if not overwrite:
        raise SelfSupError(f"{path}: {what} from other arguments ({_differences(stored, manifest)}); rerun with the "
                           "same ones to continue, pass --overwrite to replace it, or give another --out")
    _remove(path)
    return False


class PartWriter:
    """The parquet parts of one ``selfsup embed``: which are done, writing the next, and the final rename."""

    def __init__(self, out: Path, manifest: dict[str, Any], key: str, overwrite: bool) -> None:
        self.out, self.manifest, self.key = out, manifest, key
        self.work = out.with_name(out.name + ".partial")
        self.complete = _check_or_clear(out, manifest, overwrite, "holds embeddings")
        self.done = 0
        if self.complete:
            return
        if _check_or_clear(self.work, manifest, overwrite, "is an unfinished embedding"):
            for stray in self.work.glob(".*"):  # a part that was being written when the run stopped
                _remove(stray)
            while (self.work / PART.format(self.done)).exists():
                self.done += 1
            for later in self.work.glob("part-*.parquet"):  # parts after a gap are redone
                if int(later.stem.split("-")[1]) >= self.done:
                    later.unlink()
        else:
            self.work.mkdir(parents=True, exist_ok=True)
            (self.work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))

    def write(self, index: int, embeddings: torch.Tensor, references: list) -> Path:
        """Part ``index`` (renamed into place only once complete)."""
        _, pq = require_pyarrow()
        path = self.work / PART.format(index)
        temporary = self.work / f".{path.name}.tmp"
        pq.write_table(embeddings_table(embeddings, references, self.key, self.manifest), temporary)
        os.replace(temporary, path)
        return path

    def finish(self, parts: int) -> Path:
        """Move the finished parts into ``OUT``: one file for one part of a ``.parquet`` OUT, else the folder."""
        if self.complete:
            return self.out
        if parts == 1 and self.out.suffix == ".parquet":
            os.replace(self.work / PART.format(0), self.out)
            shutil.rmtree(self.work)
        else:
            os.replace(self.work, self.out)
        return self.out
