"""Transcribed speech for ``--protocol asr``: a LibriSpeech-style folder or a table of ``path,transcript``.

A LibriSpeech folder (Panayotov et al. 2015) holds ``SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` and one
``SPEAKER-CHAPTER.trans.txt`` per chapter, a line ``<utterance-id> <TRANSCRIPT>`` per recording; the speaker is
the folder above the chapter. A ``.csv``/``.tsv`` has a header naming columns ``path`` and ``transcript`` (and
optionally ``speaker``; otherwise the folder holding each file), paths relative to the table. Recordings are
decoded whole (a crop would cut words off their transcript) with the audio readers, at the encoder's sample
rate; transcripts are normalised (:func:`selfsup.evaluation.ctc.normalize_transcript`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import SelfSupError
from ...evaluation.ctc import normalize_transcript
from .readers import AUDIO_EXTENSIONS, TABLE_EXTENSIONS, read_audio

SHAPE = ("a LibriSpeech-style folder (SPEAKER/CHAPTER/*.flac with SPEAKER-CHAPTER.trans.txt) or a .csv/.tsv with "
         "columns path,transcript")


@dataclass
class Transcribed:
    """Recordings (1-D float32 at ``sample_rate``), their normalised transcripts, speakers and files."""

    waves: list[torch.Tensor]
    texts: list[str]
    speakers: list[str]
    paths: list[Path]
    sample_rate: int

    @property
    def seconds(self) -> list[float]:
        return [len(w) / self.sample_rate for w in self.waves]


def _audio_beside(folder: Path, utterance: str) -> Path | None:
    for suffix in (".flac", *sorted(AUDIO_EXTENSIONS - {".flac"})):
        if (folder / f"{utterance}{suffix}").is_file():
            return folder / f"{utterance}{suffix}"
    return None


def _librispeech(root: Path, encoding: str) -> list[tuple[Path, str, str, str]]:
    """(audio file, transcript, speaker, where the transcript is) of every line of every ``*.trans.txt``."""
    rows = []
    for trans in sorted(p for p in root.rglob("*.trans.txt") if not any(part.startswith(".") for part in
                                                                         p.relative_to(root).parts)):
        speaker = trans.parent.parent.name if trans.parent != root else trans.name.split("-")[0]
        for number, line in enumerate(trans.read_text(encoding=encoding, errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            utterance, _, text = line.strip().partition(" ")
            audio = _audio_beside(trans.parent, utterance)
            if audio is None:
                raise SelfSupError(f"{trans}:{number}: utterance {utterance} has no audio file "
                                   f"{trans.parent / (utterance + '.flac')}; add the recording or remove the line")
            rows.append((audio, text, speaker, f"{trans}:{number}"))
    return rows


def _table(table: Path, encoding: str) -> list[tuple[Path, str, str, str]]:
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    with open(table, encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        cells = [c.strip().lower() for c in next(reader, None) or []]
        if "path" not in cells or "transcript" not in cells:
            found = ", ".join(c for c in cells if c) or "none"
            raise SelfSupError(f"{table}: needs a header row with columns path and transcript (found: {found}); "
                               "add that header line")
        ip, it = cells.index("path"), cells.index("transcript")
        isp = cells.index("speaker") if "speaker" in cells else None
        rows = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{table}:{reader.line_num}"
            if max(ip, it, isp or 0) >= len(row):
                raise SelfSupError(f"{where}: row has {len(row)} fields, the header has {len(cells)}")
            file = Path(row[ip].strip()).expanduser()
            file = file if file.is_absolute() else (table.parent / file).resolve()
            if not file.is_file():
                raise SelfSupError(f"{where}: audio file {file} does not exist; fix the path or remove the row")
            speaker = row[isp].strip() if isp is not None else file.parent.name
            rows.append((file, row[it], speaker, where))
    return rows


def read_transcribed(path: str | Path, sample_rate: int, encoding: str = "utf-8") -> Transcribed:
    """The transcribed recordings of ``path`` (:data:`SHAPE`); one line naming the file for a transcript without
    audio, a table without ``path``/``transcript`` columns, an empty transcript, or no utterances."""
    root = Path(path).expanduser()
    if root.is_dir():
        rows = _librispeech(root, encoding)
    elif root.is_file() and root.suffix.lower() in TABLE_EXTENSIONS:
        rows = _table(root, encoding)
    else:
        what = "no such file or folder" if not root.exists() else "not a folder or a .csv/.tsv file"
        raise SelfSupError(f"{root}: {what}; transcribed speech is {SHAPE}")
    if not rows:
        raise SelfSupError(f"{root}: no transcribed utterances found; expected {SHAPE}")
    texts = []
    for _, text, _, where in rows:
        texts.append(normalize_transcript(text))
        if not texts[-1]:
            raise SelfSupError(f"{where}: empty transcript (no letters or digits); transcribe the recording or "
                               "remove it")
    waves = [read_audio(audio, sample_rate) for audio, *_ in rows]
    return Transcribed(waves, texts, [r[2] for r in rows], [r[0] for r in rows], int(sample_rate))
