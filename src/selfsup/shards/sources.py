"""DATA as shards: a brace pattern (``shards/train-{0000..0127}.tar``), a glob, a folder of shards or an fsspec
URL (``s3://bucket/train-{0000..0127}.tar``, ``gs://``, ``file://``, ``memory://``; remote filesystems need their
fsspec backend installed, e.g. ``s3fs``), resolved to the list of shard URLs; the ``shards.json`` index that
``selfsup shard`` writes beside them; a ``*.shards.json`` list of shards anywhere; and the counting pass that finds how many samples each shard holds,
skipping a bad one with a warning naming it (``--strict`` stops).

Nothing is read at import time; a URL is opened only when its shards are listed or read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import SelfSupError

log = logging.getLogger("selfsup")

INDEX_FILE = "shards.json"
LIST_SUFFIX = ".shards.json"  # a list of shards anywhere (--method auto's training and held-out parts)
GLOB_CHARS = "*?["


@dataclass
class ShardSet:
    """The readable shards of DATA: their URLs, samples per shard and, for labelled shards, the class names."""

    urls: list[str]
    counts: list[int]
    classes: list[str] | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # url -> why it was left out

    @property
    def total(self) -> int:
        return sum(self.counts)


def _filesystem(url: str):
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # an unknown protocol or a backend not installed
        raise SelfSupError(f"{url}: cannot open this URL ({exc}); install the fsspec backend for it "
                           "(e.g. pip install s3fs, gcsfs) or give a local path") from None
    return fs, root


def _join(url: str, fs, path: str) -> str:
    """``path`` (as ``fs`` lists it) as a URL of the same kind as ``url``."""
    return fs.unstrip_protocol(path) if "://" in url else path


def expand(data: str, suffixes: Collection[str], pattern_only: Collection[str] = ()) -> list[str] | None:
    """The shard URLs ``data`` names, or None when ``data`` is not shards (a folder of loose files, a list file).

    A pattern with ``{a..b}`` braces is expanded (WebDataset's ``braceexpand``), one with ``* ? [`` globbed, a
    folder (or URL of one) holding files ending in ``suffixes`` directly gives those, a file ending in one of
    them is one shard. An empty pattern or folder of a URL is a one-line error. Files ending in ``pattern_only``
    are shards only when a pattern, glob or URL names them (a local folder or file of them is the modality's
    own input, e.g. a JSONL corpus)."""
    from braceexpand import braceexpand

    data = str(data)
    if data.endswith(LIST_SUFFIX):
        return _listed(data)
    is_url = "://" in data
    is_pattern = "{" in data and ".." in data
    if is_url or is_pattern or any(c in data for c in GLOB_CHARS):
        suffixes = (*suffixes, *pattern_only)
    fs, root = _filesystem(data if is_url or not is_pattern else data.split("{", 1)[0] or ".")
    if is_pattern or any(c in data for c in GLOB_CHARS):
        urls: list[str] = []
        for part in (braceexpand(data) if is_pattern else [data]):
            if any(c in part for c in GLOB_CHARS):
                part_fs, part_root = _filesystem(part)
                urls += [_join(part, part_fs, p) for p in sorted(part_fs.glob(part_root))]
            else:
                urls.append(part)
        urls = [u for u in urls if _has_suffix(u, suffixes)]
        if is_pattern and not any(_filesystem(u)[0].exists(_filesystem(u)[1]) for u in urls):
            urls = []  # braces name shards whatever exists; some missing are bad shards, all missing a mistake
        if not urls:
            raise SelfSupError(f"{data}: the pattern matches no shards ({', '.join(sorted(suffixes))}); check the "
                               "path and the numbers in braces")
        return urls
    if not fs.exists(root):
        if is_url:
            raise SelfSupError(f"{data}: no such file or folder; give shards, a shard pattern or a folder of shards")
        return None  # the modality's own reader says what is wrong with a local path
    if fs.isdir(root):
        found = sorted(p for p in fs.ls(root, detail=False)
                       if _has_suffix(p, suffixes) and not p.rstrip("/").rsplit("/", 1)[-1].startswith("."))
        if found:
            return [_join(data, fs, p) for p in found]
        if is_url:
            raise SelfSupError(f"{data}: no shards ({', '.join(sorted(suffixes))}) in this folder")
        return None
    return [data] if _has_suffix(data, suffixes) else None


def is_pattern_or_url(data: str | Path) -> bool:
    """Whether ``data`` names shards by a URL, a brace pattern or a glob (it need not exist as one path)."""
    data = str(data)
    return "://" in data or ("{" in data and ".." in data) or any(c in data for c in GLOB_CHARS)


def _listed(data: str) -> list[str]:
    """The shards a ``*.shards.json`` list names (:func:`write_list`: absolute paths or URLs)."""
    try:
        with open_shard(data) as fh:
            listed = [str(entry["name"]) for entry in json.load(fh)["shards"]]
    except FileNotFoundError:
        raise SelfSupError(f"{data}: no such shard list; give shards, a shard pattern or a folder of shards") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SelfSupError(f"{data}: not a shard list ({exc}); it must hold {{\"shards\": [{{\"name\": URL}}, ...]}}"
                           ) from None
    if not listed:
        raise SelfSupError(f"{data}: the shard list is empty")
    return listed


def write_list(path: str | Path, shards: ShardSet, keep: Sequence[int]) -> str:
    """Write the shards ``keep`` (indices into ``shards``) as a ``*.shards.json`` list at ``path`` (absolute
    URLs, sample counts, classes), which DATA may name like a pattern; returns its path."""
    urls = [shards.urls[i] if "://" in shards.urls[i] else str(Path(shards.urls[i]).resolve()) for i in keep]
    index = {"classes": shards.classes, "shards": [{"name": url, "samples": shards.counts[i]}
                                                   for url, i in zip(urls, keep)]}
    Path(path).write_text(json.dumps(index, indent=1), encoding="utf-8")
    return str(path)


def _has_suffix(url: str, suffixes: Collection[str]) -> bool:
    return url.lower().endswith(tuple(suffixes))


def open_shard(url: str, mode: str = "rb") -> IO[Any]:
    """An open file of the shard ``url`` (a local path or any fsspec URL)."""
    import fsspec

    return fsspec.open(url, mode).open()


def read_index(urls: Sequence[str]) -> dict[str, Any] | None:
    """The ``shards.json`` beside the shards, when they share one folder and it lists every one; else None."""
    folder = urls[0].rsplit("/", 1)[0] if "/" in urls[0] else "."
    if any((url.rsplit("/", 1)[0] if "/" in url else ".") != folder for url in urls):
        return None  # shards of several folders (a glob over folders, a list): counted shard by shard
    try:
        with open_shard(f"{folder}/{INDEX_FILE}") as fh:
            index = json.load(fh)
    except (OSError, ValueError):
        return None
    counts = {entry["name"]: int(entry["samples"]) for entry in index.get("shards", [])}
    if not all(url.rsplit("/", 1)[-1] in counts for url in urls):
        return None
    return {"counts": [counts[url.rsplit("/", 1)[-1]] for url in urls], "classes": index.get("classes")}


def write_index(folder: str, names: Sequence[str], counts: Sequence[int], classes: Sequence[str] | None,
                info: dict[str, Any]) -> str:
    """Write ``shards.json`` (samples per shard, classes, what wrote them) into ``folder``; returns its path."""
    path = f"{folder}/{INDEX_FILE}"
    index = {**info, "classes": list(classes) if classes else None,
             "shards": [{"name": name, "samples": count} for name, count in zip(names, counts)]}
    with open_shard(path, "w") as fh:
        json.dump(index, fh, indent=1)
    return path


def bad_shard_error(url: str, reason: str) -> SelfSupError:
    return SelfSupError(f"{url}: unreadable shard ({reason}); replace or remove it, or drop --strict to skip bad shards")


def shard_set(data: str, suffixes: Collection[str], count: Callable[[str], int], strict: bool,
              pattern_only: Collection[str] = ()) -> ShardSet | None:
    """The shards ``data`` names with their sample counts (from ``shards.json`` when it lists them all, else
    ``count(url)`` for each, a pass over the shard's headers or metadata), or None when ``data`` is not shards.
    A shard that cannot be counted (truncated tar, damaged parquet) or holds no sample is left out with a warning
    naming it and a count at the end; ``strict`` stops at the first. ``pattern_only``: see :func:`expand`."""
    urls = expand(data, suffixes, pattern_only)
    if urls is None:
        return None
    index = read_index(urls)
    if index is not None:
        return ShardSet(urls, index["counts"], index["classes"])
    kept, counts, skipped = [], [], {}
    for url in urls:
        try:
            samples = count(url)
            if samples == 0:
                raise ValueError("no samples")
        except SelfSupError:
            raise
        except Exception as exc:  # noqa: BLE001  any reader error (tarfile.ReadError, ArrowInvalid, OSError) -> skip
            reason = str(exc) or exc.__class__.__name__
            if strict:
                raise bad_shard_error(url, reason) from None
            log.warning("skipping bad shard %s (%s)", url, reason)
            skipped[url] = reason
            continue
        kept.append(url)
        counts.append(samples)
    if skipped:
        log.warning("skipped %d bad shard(s) of %d", len(skipped), len(urls))
    if not kept:
        raise SelfSupError(f"{data}: none of the {len(urls)} shard(s) could be read (first: {urls[0]}: "
                           f"{next(iter(skipped.values()))}); check the shards")
    return ShardSet(kept, counts, None, skipped)
