"""Text reader: raw text files → strings → tokenized samples.

Files are plain text (one document per line), JSON Lines (one object per line, the text in
``text_field``) or CSV/TSV with a header row naming ``text_field``. They are streamed line by line,
so a decoding error names its file and line. Labeled text (``label<TAB>text``) and sentence pairs
(``score<TAB>sentence1<TAB>sentence2``) are read whole, for evaluation.

Tokenized samples are ``(ids LongTensor [L], word_starts BoolTensor [L])``: either all in memory
(``TokenizedCorpus``, one flat int32 array plus offsets) or streamed from disk (``TextStream``, split
across DataLoader workers and DDP ranks). ``TokenCollator`` pads them into a text batch.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import random
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from ...errors import SelfSupError
from ...files import find_files
from .languages import LanguageTags

log = logging.getLogger("selfsup")

TEXT_EXTENSIONS = {".txt", ".text", ".jsonl", ".csv", ".tsv"}
_CHUNK = 2000  # texts per fast-tokenizer call when building a TokenizedCorpus

_csv_limit_raised = False


def _raise_csv_field_limit() -> None:
    """Let csv read fields of any size (a long document is one field)."""
    global _csv_limit_raised
    if not _csv_limit_raised:
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        _csv_limit_raised = True


# --------------------------------------------------------------------------------------- files


def find_text_files(path: str | Path, tags: LanguageTags | None = None) -> list[Path]:
    """The text files to read: ``path`` itself if it is a file (any extension; an unknown one is read
    as plain text lines), else every file under the folder with a TEXT_EXTENSIONS suffix, or with a language's
    suffix when ``tags`` name languages (``train.en``; recursively, sorted, hidden files and folders skipped)."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    return find_files(path, TEXT_EXTENSIONS | (tags.suffixes if tags else frozenset()), "text files", lists=False)


def text_bytes(files: Iterable[str | Path]) -> int:
    """Total size of ``files`` on disk, in bytes (to choose between memory and streaming)."""
    return sum(Path(f).stat().st_size for f in files)


# --------------------------------------------------------------------------------------- lines


def _decoder(file: Path, encoding: str) -> codecs.IncrementalDecoder:
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise SelfSupError(
            f"{file}: unknown text encoding {encoding!r}; pass --encoding with a Python codec name such as utf-8 or latin-1"
        ) from None
    if info.name == "utf-8":  # drop a byte-order mark at the start of the file
        return codecs.getincrementaldecoder("utf-8-sig")("strict")
    return info.incrementaldecoder("strict")


def _iter_lines(file: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """``(line number, line without its ending)`` of a file, decoded line by line.

    Endings ``\\n``, ``\\r\\n`` and ``\\r`` are all recognised. A byte the encoding cannot decode
    raises SelfSupError naming the file, line and column."""
    decoder = _decoder(file, encoding)
    pending = ""
    lineno = 0
    with open(file, "rb") as fh:
        for raw in fh:
            try:
                pending += decoder.decode(raw)
            except UnicodeDecodeError as err:
                raise SelfSupError(
                    f"{file}:{lineno + 1}: not valid {encoding} text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                    "pass --encoding latin-1 (or the file's real encoding)"
                ) from None
            *complete, pending = pending.split("\n")
            for line in complete:
                for part in line.removesuffix("\r").split("\r"):
                    lineno += 1
                    yield lineno, part
        try:
            pending += decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise SelfSupError(
                f"{file}:{lineno + 1}: not valid {encoding} text (the file ends inside a character); "
                "pass --encoding latin-1 (or the file's real encoding)"
            ) from None
    if pending:
        for part in pending.removesuffix("\r").split("\r"):
            lineno += 1
            yield lineno, part


def _csv_reader(file: Path, encoding: str) -> Iterator[list[str]]:
    """A csv reader over a streamed file: ``,`` for .csv; tab for anything else, without quoting
    (the usual NLP TSV convention, so a text that starts with a quote is read as it is)."""
    _raise_csv_field_limit()
    lines = (line + "\n" for _, line in _iter_lines(file, encoding))
    if file.suffix.lower() == ".csv":
        return csv.reader(lines)
    return csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)


Located = tuple[int, str, "str | None"]  # (line, text, label): a text, its line and its label if the file has one


class _Tagger:
    """Puts each text's language tag in front of it (:class:`~.languages.LanguageTags`); a no-op without tags."""

    def __init__(self, file: Path, tags: LanguageTags | None) -> None:
        self.file, self.tags = file, tags
        self.file_language = tags.of_path(file) if tags is not None else None

    def __call__(self, text: str, lineno: int, language: object = None) -> str:
        if self.tags is None:
            return text
        own = str(language).strip() if language is not None and str(language).strip() else None
        return self.tags.apply(text, own or self.file_language, f"{self.file}:{lineno}")


def _texts_plain(file: Path, encoding: str, tag: _Tagger) -> Iterator[Located]:
    for lineno, line in _iter_lines(file, encoding):
        line = line.strip()
        if line:
            yield lineno, tag(line, lineno), None


def _texts_jsonl(file: Path, encoding: str, text_field: str, tag: _Tagger) -> Iterator[Located]:
    for lineno, line in _iter_lines(file, encoding):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise SelfSupError(f"{file}:{lineno}: not valid JSON ({err.msg} at column {err.colno}); each line must be one JSON object") from None
        if not isinstance(record, dict):
            raise SelfSupError(f"{file}:{lineno}: expected a JSON object with a {text_field!r} field, found {type(record).__name__}")
        if text_field not in record:
            fields = ", ".join(map(str, record)) or "none"
            raise SelfSupError(
                f"{file}:{lineno}: no {text_field!r} field (fields: {fields}); pass --set data.text_field=NAME"
            )
        value = record[text_field]
        if value is None:
            continue
        text = (value if isinstance(value, str) else str(value)).strip()
        if text:
            label = record.get("label")
            language = record.get(tag.tags.field) if tag.tags is not None else None
            yield lineno, tag(text, lineno, language), None if label is None else str(label)


def _texts_table(file: Path, encoding: str, text_field: str, tag: _Tagger) -> Iterator[Located]:
    reader = _csv_reader(file, encoding)
    header = next(reader, None)
    if header is None:
        return
    columns = [c.strip() for c in header]
    if text_field not in columns:
        raise SelfSupError(
            f"{file}: no {text_field!r} column in the header row (columns: {', '.join(columns) or 'none'}); "
            "pass --set data.text_field=NAME"
        )
    index = columns.index(text_field)
    label = columns.index("label") if "label" in columns else None
    language = columns.index(tag.tags.field) if tag.tags is not None and tag.tags.field in columns else None

    def cell(row: list[str], column: int | None) -> str | None:
        return row[column].strip() if column is not None and column < len(row) else None

    for row in reader:
        if index < len(row):
            text = row[index].strip()
            if text:
                yield reader.line_num, tag(text, reader.line_num, cell(row, language)), cell(row, label)


def iter_texts(files: Iterable[str | Path], encoding: str = "utf-8", text_field: str = "text",
               tags: LanguageTags | None = None) -> Iterator[str]:
    """Stream the stripped, non-empty texts of ``files`` in order.

    ``.jsonl``: field ``text_field`` of each object; ``.csv``/``.tsv``: column ``text_field`` (header row
    required); anything else: one text per line. With ``tags``, each text starts with its language's tag."""
    for file in files:
        for _, text, _ in located_texts(file, encoding, text_field, tags):
            yield text


def located_texts(file: str | Path, encoding: str = "utf-8", text_field: str = "text",
                  tags: LanguageTags | None = None) -> Iterator[Located]:
    """The texts of one file as :func:`iter_texts` reads them, each with its line number (a CSV row's last
    line: a quoted field may span lines) and its label when the file has one (a ``label`` column or field)."""
    file = Path(file)
    suffix = file.suffix.lower()
    tag = _Tagger(file, tags)
    if suffix == ".jsonl":
        return _texts_jsonl(file, encoding, text_field, tag)
    if suffix in (".csv", ".tsv"):
        return _texts_table(file, encoding, text_field, tag)
    return _texts_plain(file, encoding, tag)


def hold_out_texts(data, limit: int, seed: int, folder: Path, unit: str):
    """:meth:`Modality.hold_out` for text: the texts of ``data.path`` (as :func:`iter_texts` reads them with
    ``data.encoding`` and ``data.text_field``) split into ``folder/train.jsonl`` and ``folder/heldout.jsonl``, one
    JSON object ``{text_field: text}`` per line (ASCII escapes, written in ``data.encoding``): the same reader reads
    each text back unchanged, line breaks inside a text and the run's settings included."""
    from ..base import HeldOut, held_out_rows

    tags = LanguageTags.from_settings(data)
    files = find_text_files(data.path, tags)
    total = sum(1 for _ in iter_texts(files, data.encoding, data.text_field, tags))
    held = set(held_out_rows(total, limit, seed, data.path, unit))
    folder.mkdir(parents=True, exist_ok=True)
    training, held_out = folder / "train.jsonl", folder / "heldout.jsonl"
    with open(training, "w", encoding=data.encoding, newline="\n") as train_file, \
            open(held_out, "w", encoding=data.encoding, newline="\n") as held_file:
        for index, text in enumerate(iter_texts(files, data.encoding, data.text_field, tags)):  # tags stay on
            (held_file if index in held else train_file).write(json.dumps({data.text_field: text}) + "\n")
    return HeldOut(training, held_out, len(held), total)


# --------------------------------------------------------------------------------------- tables


def _table_rows(path: str | Path, encoding: str, columns: tuple[str, ...]) -> Iterator[tuple[Path, int, list[str]]]:
    """``(file, line, [values of columns])`` of a labeled file: a .csv/.tsv/.txt with a header row
    naming all ``columns`` (any order, other columns ignored) or a headerless file whose cells are
    ``columns`` in order (tab-separated, comma for .csv); the last column takes any further cells."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise SelfSupError(f"{file}: no such file; give a {' <TAB> '.join(columns)} file (.tsv, .txt or .csv)")
    is_csv = file.suffix.lower() == ".csv"
    n = len(columns)
    if is_csv:
        _raise_csv_field_limit()
        reader = csv.reader(line + "\n" for _, line in _iter_lines(file, encoding))
        rows = ((reader.line_num, row) for row in reader)
    else:
        rows = ((lineno, line.split("\t")) for lineno, line in _iter_lines(file, encoding))
    index: list[int] | None = None
    first = True
    for lineno, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if first:
            first = False
            cells = [c.strip().lower() for c in row]
            if all(c in cells for c in columns):
                index = [cells.index(c) for c in columns]
                width = len(cells)
                continue
        if index is None:
            if len(row) < n:
                sep = "comma" if is_csv else "tab"
                raise SelfSupError(f"{file}:{lineno}: expected {n} {sep}-separated fields ({', '.join(columns)}), found {len(row)}")
            values = row[: n - 1] + [("," if is_csv else "\t").join(row[n - 1 :])]
        else:
            if len(row) > width and not is_csv:  # the last column may contain tabs
                row = row[: width - 1] + ["\t".join(row[width - 1 :])]
            if max(index) >= len(row):
                raise SelfSupError(f"{file}:{lineno}: row has {len(row)} fields, the header has {width}")
            values = [row[i] for i in index]
        yield file, lineno, [v.strip() for v in values]


@dataclass
class LabeledText:
    """Texts with integer labels indexing ``classes``."""

    texts: list[str]
    labels: torch.Tensor  # long [N]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_labeled_text(path: str | Path, encoding: str = "utf-8", classes: list[str] | None = None) -> LabeledText:
    """Read ``label<TAB>text`` lines (text may hold more tabs), or a .csv/.tsv with ``label`` and
    ``text`` header columns. Classes are the sorted label names unless ``classes`` is given (e.g. the
    training file's, when reading a test file)."""
    texts: list[str] = []
    names: list[str] = []
    for file, lineno, (label, text) in _table_rows(path, encoding, ("label", "text")):
        if not label:
            raise SelfSupError(f"{file}:{lineno}: row without a label; each row is label<TAB>text")
        if not text:
            raise SelfSupError(f"{file}:{lineno}: row without text; each row is label<TAB>text")
        if classes is not None and label not in classes:
            known = ", ".join(classes)
            raise SelfSupError(f"{file}:{lineno}: unknown label {label!r} (the training data's classes: {known}); fix the label or the file")
        texts.append(text)
        names.append(label)
    if not texts:
        raise SelfSupError(f"{Path(path)}: no labeled rows found; each row is label<TAB>text")
    class_list = list(classes) if classes is not None else sorted(set(names))
    lookup = {c: i for i, c in enumerate(class_list)}
    labels = torch.tensor([lookup[n] for n in names], dtype=torch.long)
    return LabeledText(texts=texts, labels=labels, classes=class_list)


@dataclass
class TextPairs:
    """Sentence pairs with a similarity score each (STS-style)."""

    scores: torch.Tensor  # float [N]
    first: list[str]
    second: list[str]

    def __len__(self) -> int:
        return len(self.first)


def load_text_pairs(path: str | Path, encoding: str = "utf-8") -> TextPairs:
    """Read ``score<TAB>sentence1<TAB>sentence2`` lines, or a .csv/.tsv with ``score``,
    ``sentence1`` and ``sentence2`` header columns."""
    scores: list[float] = []
    first: list[str] = []
    second: list[str] = []
    for file, lineno, (score, a, b) in _table_rows(path, encoding, ("score", "sentence1", "sentence2")):
        try:
            value = float(score)
        except ValueError:
            raise SelfSupError(f"{file}:{lineno}: score {score!r} is not a number; each row is score<TAB>sentence1<TAB>sentence2") from None
        if not a or not b:
            raise SelfSupError(f"{file}:{lineno}: row without two sentences; each row is score<TAB>sentence1<TAB>sentence2")
        scores.append(value)
        first.append(a)
        second.append(b)
    if not scores:
        raise SelfSupError(f"{Path(path)}: no sentence pairs found; each row is score<TAB>sentence1<TAB>sentence2")
    return TextPairs(scores=torch.tensor(scores, dtype=torch.float32), first=first, second=second)


# --------------------------------------------------------------------------------------- tokens


def _word_starts(word_ids: Sequence[int | None]) -> list[bool]:
    """True where a token begins a word: a special token (word id None) or a new word id."""
    starts = []
    previous: int | None = None
    for w in word_ids:
        starts.append(w is None or w != previous)
        previous = w
    return starts


def _tokenize(texts: list[str], tokenizer, max_length: int) -> Iterator[tuple[list[int], list[bool]]]:
    """``(ids, word_starts)`` per text; texts that are only special tokens are dropped."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)
    for i, ids in enumerate(enc["input_ids"]):
        word_ids = enc.word_ids(i)
        if all(w is None for w in word_ids):
            continue
        yield ids, _word_starts(word_ids)


class TokenizedCorpus(Dataset):
    """Every text tokenized once and held in memory: one flat int32 id array, int64 offsets and a
    flat bool word-start array. Item ``i`` is ``(ids LongTensor [L], word_starts BoolTensor [L])``."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, word_starts: np.ndarray):
        self.ids = ids
        self.offsets = offsets
        self.word_starts = word_starts

    @classmethod
    def build(cls, texts: Iterable[str], tokenizer, max_length: int, progress: bool = False) -> TokenizedCorpus:
        """Tokenize ``texts`` in chunks of ~2000 with the fast tokenizer (truncated to ``max_length``,
        special tokens added)."""
        ids_parts: list[np.ndarray] = []
        start_parts: list[np.ndarray] = []
        lengths: list[int] = []
        bar = tqdm(desc="tokenizing", unit=" texts", disable=not progress)

        def flush(chunk: list[str]) -> None:
            for ids, starts in _tokenize(chunk, tokenizer, max_length):
                ids_parts.append(np.asarray(ids, dtype=np.int32))
                start_parts.append(np.asarray(starts, dtype=bool))
                lengths.append(len(ids))
            bar.update(len(chunk))

        chunk: list[str] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) >= _CHUNK:
                flush(chunk)
                chunk = []
        if chunk:
            flush(chunk)
        bar.close()
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int32)
        starts = np.concatenate(start_parts) if start_parts else np.zeros(0, dtype=bool)
        return cls(ids, offsets, starts)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return torch.from_numpy(self.ids[a:b].astype(np.int64)), torch.from_numpy(self.word_starts[a:b].copy())

    @property
    def num_tokens(self) -> int:
        """Total number of tokens, special tokens included."""
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per sample."""
        return np.diff(self.offsets)


def _shard() -> tuple[int, int]:
    """``(index, count)`` of this reader among all DataLoader workers of all DDP ranks."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * workers + worker, world * workers


class TextStream(IterableDataset):
    """Texts streamed from disk and tokenized on the fly, for corpora larger than memory.

    Each DataLoader worker of each DDP rank takes every k-th text (k = world size × workers), so one
    epoch yields every text once overall. Order is shuffled with a buffer of ``shuffle_buffer``
    samples (fill it, then emit a random element for each new one); ``set_epoch`` changes the order.
    Ranks may receive slightly different numbers of samples."""

    def __init__(
        self,
        files: Sequence[str | Path],
        tokenizer,
        max_length: int,
        encoding: str = "utf-8",
        text_field: str = "text",
        shuffle_buffer: int = 10_000,
        seed: int = 0,
        tags: LanguageTags | None = None,
    ):
        self.files = [Path(f) for f in files]
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.encoding = encoding
        self.text_field = text_field
        self.tags = tags
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle differently in epoch ``epoch`` (call before creating the iterator)."""
        self.epoch = epoch

    def _samples(self, index: int, count: int) -> Iterator[tuple[list[int], list[bool]]]:
        batch: list[str] = []
        for i, text in enumerate(iter_texts(self.files, self.encoding, self.text_field, self.tags)):
            if i % count != index:
                continue
            batch.append(text)
            if len(batch) >= 256:
                yield from _tokenize(batch, self.tokenizer, self.max_length)
                batch = []
        if batch:
            yield from _tokenize(batch, self.tokenizer, self.max_length)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index, count = _shard()
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}")
        buffer: list[tuple[list[int], list[bool]]] = []
        for sample in self._samples(index, count):
            if len(buffer) < max(self.shuffle_buffer, 1):
                buffer.append(sample)
                continue
            j = rng.randrange(len(buffer))
            out, buffer[j] = buffer[j], sample
            yield _as_tensors(out)
        if self.shuffle_buffer > 1:
            rng.shuffle(buffer)
        for sample in buffer:
            yield _as_tensors(sample)


def _as_tensors(sample: tuple[list[int], list[bool]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids, starts = sample
    return torch.tensor(ids, dtype=torch.long), torch.tensor(starts, dtype=torch.bool)


# --------------------------------------------------------------------------------------- batches


def collate_tokens(samples: Sequence[tuple[torch.Tensor, torch.Tensor]], pad_token_id: int,
                   sentence_end_ids: Sequence[int] = ()) -> dict[str, torch.Tensor]:
    """Right-pad ``(ids, word_starts)`` samples to the longest: ``input_ids`` [B, T] long (pad id),
    ``attention_mask`` [B, T] long (1 = real token) and ``word_starts`` [B, T] bool (False on padding); with
    ``sentence_end_ids``, also ``sentence_ends`` [B, T] bool (True on sentence-final punctuation, for BART's
    sentence permutation)."""
    longest = max((len(ids) for ids, _ in samples), default=0)
    input_ids = torch.full((len(samples), longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(samples), longest), dtype=torch.long)
    starts = torch.zeros((len(samples), longest), dtype=torch.bool)
    for row, (ids, ws) in enumerate(samples):
        n = len(ids)
        input_ids[row, :n] = ids
        mask[row, :n] = 1
        starts[row, :n] = ws
    batch = {"input_ids": input_ids, "attention_mask": mask, "word_starts": starts}
    if sentence_end_ids:
        batch["sentence_ends"] = torch.isin(input_ids, torch.tensor(list(sentence_end_ids), dtype=torch.long))
    return batch


class TokenCollator:
    """Picklable ``collate_fn`` for DataLoader workers: ``collate_tokens`` with a fixed pad id (and the ids of
    sentence-final tokens, see :func:`~.tokenizer.sentence_end_ids`)."""

    def __init__(self, pad_token_id: int, sentence_end_ids: Sequence[int] = ()):
        self.pad_token_id = int(pad_token_id)
        self.sentence_end_ids = tuple(int(i) for i in sentence_end_ids)

    def __call__(self, samples: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return collate_tokens(samples, self.pad_token_id, self.sentence_end_ids)

    def __repr__(self) -> str:
        return f"TokenCollator(pad_token_id={self.pad_token_id})"


def encode_texts(texts: list[str], tokenizer, max_length: int) -> torch.Tensor:
    """Token ids of ``texts`` (special tokens added, truncated to ``max_length``), right-padded with
    the pad id to the longest: LongTensor [N, T]."""
    if not texts:
        return torch.zeros((0, 0), dtype=torch.long)
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    rows = [torch.tensor(ids, dtype=torch.long) for ids in enc["input_ids"]]
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=tokenizer.pad_token_id)
