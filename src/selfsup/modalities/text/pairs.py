"""Sentence pairs for ``--protocol translation``: a tsv of ``source<TAB>target`` (one pair a line), or two aligned
files given as ``SOURCE_FILE,TARGET_FILE`` (line ``i`` of one translates line ``i`` of the other, as parallel corpora
such as Multi30k ship: ``train.en,train.de``). Lines empty on both sides are skipped; anything else malformed is a
one-line error naming the file and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import SelfSupError

PAIRS_HELP = "a tsv of source<TAB>target, or two aligned files SOURCE,TARGET (e.g. train.en,train.de)"


@dataclass
class Pairs:
    """Aligned source and target sentences."""

    sources: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)


def _lines(path: Path, encoding: str, flag: str) -> list[str]:
    if not path.is_file():
        raise SelfSupError(f"{flag} {path}: no such file; give {PAIRS_HELP}")
    try:
        return path.read_text(encoding=encoding).splitlines()
    except UnicodeDecodeError as err:
        raise SelfSupError(f"{flag} {path}: not {encoding} text ({err.reason} at byte {err.start}); "
                           "pass --encoding") from None


def _tsv(path: Path, encoding: str, flag: str) -> Pairs:
    sources, targets = [], []
    for number, line in enumerate(_lines(path, encoding, flag), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            what = "no TAB" if len(parts) == 1 else f"{len(parts)} columns" if len(parts) > 2 else "an empty side"
            raise SelfSupError(f"{flag} {path}:{number}: {what}; each line must be source<TAB>target (or give two "
                               "aligned files as SOURCE,TARGET)")
        sources.append(parts[0].strip())
        targets.append(parts[1].strip())
    return Pairs(sources, targets)


def _aligned(first: Path, second: Path, encoding: str, flag: str) -> Pairs:
    left, right = _lines(first, encoding, flag), _lines(second, encoding, flag)
    if len(left) != len(right):
        raise SelfSupError(f"{flag} {first},{second}: {len(left)} lines against {len(right)}; the two files must be "
                           "aligned line by line")
    sources, targets = [], []
    for number, (a, b) in enumerate(zip(left, right), start=1):
        if not a.strip() and not b.strip():
            continue
        if not a.strip() or not b.strip():
            empty = first if not a.strip() else second
            raise SelfSupError(f"{flag} {empty}:{number}: empty line where the other file has a sentence; the two "
                               "files must be aligned line by line")
        sources.append(a.strip())
        targets.append(b.strip())
    return Pairs(sources, targets)


def read_pairs(spec: str | Path, encoding: str = "utf-8", flag: str = "--train") -> Pairs:
    """The pairs of ``spec``: ``A,B`` (two aligned files) or a tsv file; at least one pair."""
    text = str(spec)
    if "," in text and not Path(text).expanduser().is_file():
        first, _, second = text.partition(",")
        if not first or not second or "," in second:
            raise SelfSupError(f"{flag} {text}: give {PAIRS_HELP}")
        pairs = _aligned(Path(first).expanduser(), Path(second).expanduser(), encoding, flag)
    else:
        pairs = _tsv(Path(text).expanduser(), encoding, flag)
    if not pairs.sources:
        raise SelfSupError(f"{flag} {text}: no sentence pair found; give {PAIRS_HELP}")
    return pairs
