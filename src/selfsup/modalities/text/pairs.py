"""Sentence pairs for ``--protocol translation``: a tsv of ``source<TAB>target`` (one pair a line), or two aligned
files given as ``SOURCE_FILE,TARGET_FILE`` (line ``i`` of one translates line ``i`` of the other, as parallel corpora
such as Multi30k ship: ``train.en,train.de``). Lines empty on both sides are skipped; anything else malformed is a
one-line error naming the file and line.

For a run pretrained with language tags (``data.languages``, mBART) the pairs also name their direction: by the
aligned files' names (``train.en,train.de``: English to German) or by a tsv's header row of two language codes
(``en<TAB>de``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import SelfSupError
from .languages import LanguageTags

PAIRS_HELP = "a tsv of source<TAB>target, or two aligned files SOURCE,TARGET (e.g. train.en,train.de)"


@dataclass
class Pairs:
    """Aligned source and target sentences."""

    sources: list[str]
    targets: list[str]
    languages: tuple[str | None, str | None] = (None, None)  # (source, target) when the files name them

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


def _header(line: str, tags: LanguageTags | None) -> tuple[str, str] | None:
    """The (source, target) languages of a tsv header row ``en<TAB>de`` naming two of the run's languages."""
    parts = [part.strip() for part in line.split("\t")]
    if tags is None or len(parts) != 2:
        return None
    found = [tags.of_path(f"x.{part}") if part else None for part in parts]
    return (found[0], found[1]) if found[0] and found[1] else None


def _tsv(path: Path, encoding: str, flag: str, tags: LanguageTags | None) -> Pairs:
    sources, targets = [], []
    languages: tuple[str | None, str | None] = (None, None)
    for number, line in enumerate(_lines(path, encoding, flag), start=1):
        if not line.strip():
            continue
        if not sources and languages == (None, None) and (header := _header(line, tags)) is not None:
            languages = header
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            what = "no TAB" if len(parts) == 1 else f"{len(parts)} columns" if len(parts) > 2 else "an empty side"
            raise SelfSupError(f"{flag} {path}:{number}: {what}; each line must be source<TAB>target (or give two "
                               "aligned files as SOURCE,TARGET)")
        sources.append(parts[0].strip())
        targets.append(parts[1].strip())
    return Pairs(sources, targets, languages)


def _aligned(first: Path, second: Path, encoding: str, flag: str, tags: LanguageTags | None) -> Pairs:
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
    languages = (tags.of_path(first), tags.of_path(second)) if tags is not None else (None, None)
    return Pairs(sources, targets, languages)


def read_pairs(spec: str | Path, encoding: str = "utf-8", flag: str = "--train",
               tags: LanguageTags | None = None) -> Pairs:
    """The pairs of ``spec``: ``A,B`` (two aligned files) or a tsv file; at least one pair. With ``tags`` (a run
    with language tags), also their direction among its languages, where the files name it."""
    text = str(spec)
    if "," in text and not Path(text).expanduser().is_file():
        first, _, second = text.partition(",")
        if not first or not second or "," in second:
            raise SelfSupError(f"{flag} {text}: give {PAIRS_HELP}")
        pairs = _aligned(Path(first).expanduser(), Path(second).expanduser(), encoding, flag, tags)
    else:
        pairs = _tsv(Path(text).expanduser(), encoding, flag, tags)
    if not pairs.sources:
        raise SelfSupError(f"{flag} {text}: no sentence pair found; give {PAIRS_HELP}")
    return pairs
