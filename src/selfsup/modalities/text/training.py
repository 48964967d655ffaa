"""The text training data path: corpus → tokenizer (trained on it, or given) → batches of token ids.

- Tokenizer: ``data.tokenizer`` = ``wordpiece`` | ``bpe`` trains one on DATA with Hugging Face
  ``tokenizers`` (streaming over the files); a folder path loads an existing one (offline). Either way it
  is saved to ``RUN/tokenizer`` and a resumed run reuses that copy, since the embedding rows are tied to
  its ids. Under DDP only the first process trains it; the others wait for the saved copy.
- ``memory``: every text is tokenized once into one flat int32 array (:class:`TokenizedCorpus`).
- ``stream``: the files are read and tokenized on the fly (:class:`TextStream`, in loader workers with
  ``--num-workers``) behind a shuffle buffer; each epoch yields the same number of batches on every DDP
  process (DDP would hang otherwise).
- ``auto``: ``memory`` when the tokenized corpus fits comfortably in RAM.

Batches are dicts ``{input_ids, attention_mask, word_starts}`` ([B, T], padded to the longest text of
the batch); the method's pretext (masking, deletion, dropout views) runs on the training device.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from torch.utils.data import DataLoader

from ...config import DataConfig, TrainerConfig
from .languages import LanguageTags, add_language_tokens
from .readers import TextStream, TokenCollator, TokenizedCorpus, find_text_files, iter_texts, text_bytes
from .tokenizer import (TOKENIZER_DIR, TOKENIZER_KINDS, load_tokenizer, save_tokenizer, sentence_end_ids, token_spec,
                        train_tokenizer)
from ...errors import SelfSupError
from ...methods.base import Pretext
from ...train.data import decide_cache
from ...distributed import launched_as_other_rank
from ...train.sources import TrainData
from ...shards.sources import shard_set
from ...shards.table import SUFFIXES as TABLE_SUFFIXES
from ...shards.table import JSONL, count_rows

log = logging.getLogger("selfsup")

BYTES_PER_TOKEN = 5  # int32 id + one bool word-start flag
CHARS_PER_TOKEN = 4  # rough, to size the corpus before tokenizing it
TOKENIZER_WAIT_S = 3600  # how long DDP processes other than the first wait for its tokenizer


def _saved(folder: Path) -> bool:
    return (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists()


def prepare_tokenizer(data: DataConfig, texts: Iterable[str], run_dir: Path):
    """The run's tokenizer: ``RUN/tokenizer`` when it exists, else trained on ``texts`` (read only then) or loaded from
    ``data.tokenizer``, and saved there (atomically, by the first process only)."""
    saved = run_dir / TOKENIZER_DIR
    if _saved(saved):
        return load_tokenizer(saved)
    if launched_as_other_rank():
        deadline = time.monotonic() + TOKENIZER_WAIT_S
        while not _saved(saved):
            if time.monotonic() > deadline:
                raise SelfSupError(f"{saved}: the first process did not save the tokenizer; check its log")
            time.sleep(1.0)
        return load_tokenizer(saved)
    tags = LanguageTags.from_settings(data)
    if data.tokenizer in TOKENIZER_KINDS:
        log.info("training a %s tokenizer (vocabulary %d) on %s", data.tokenizer, data.vocab_size, data.path)
        tokenizer = train_tokenizer(texts, kind=data.tokenizer, vocab_size=data.vocab_size, lowercase=data.lowercase,
                                    extra_special_tokens=tags.tokens if tags else ())
    else:
        tokenizer = load_tokenizer(Path(data.tokenizer).expanduser())
        added = add_language_tokens(tokenizer, tags)
        if added:
            log.info("tokenizer %s: added the language tags %s", data.tokenizer, " ".join(added))
    partial = run_dir / (TOKENIZER_DIR + ".tmp")
    save_tokenizer(tokenizer, partial)
    partial.replace(saved)
    return tokenizer


def _workers(trainer: TrainerConfig) -> int:
    """Loader workers; forked workers must not inherit the tokenizer's thread pool (it would deadlock)."""
    if trainer.num_workers > 0:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return trainer.num_workers


class TextStreamLoader(DataLoader):
    """A loader over a :class:`TextStream` that yields exactly ``batches`` batches per epoch, continuing into
    the stream's next pass if this process's share ran short, so every DDP process steps the same number
    of times; each epoch reshuffles (workers are re-created, so they see the new epoch)."""

    dataset: TextStream

    def __init__(self, dataset: TextStream, batches: int, **kwargs) -> None:
        super().__init__(dataset, **kwargs)
        self.batches = batches
        self._epoch = 0

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[dict]:  # type: ignore[override]
        produced = 0
        while produced < self.batches:
            self.dataset.set_epoch(self._epoch)
            self._epoch += 1
            empty = True
            for batch in super().__iter__():
                empty = False
                yield batch
                produced += 1
                if produced == self.batches:
                    return
            if empty:
                raise SelfSupError(f"{self.dataset.files[0]}: the text stream yielded no batch; check DATA")


def load_text_data(data: DataConfig, run_dir: Path, progress: bool = True) -> TrainData:
    """The unlabeled texts of ``data`` as :class:`TrainData`: tokenized in memory, or streamed (parquet / JSONL
    shards always, :mod:`.shards`)."""
    if data.max_length < 8:
        raise SelfSupError(f"data.max_length={data.max_length} is too short; use at least 8 tokens (default 128)")
    shards = shard_set(data.path, TABLE_SUFFIXES, count_rows, data.strict, pattern_only=JSONL)
    if shards is not None:
        from .shards import load_text_shards

        return load_text_shards(data, shards, run_dir)
    tags = LanguageTags.from_settings(data)
    files = find_text_files(data.path, tags)
    if next(iter_texts(files, data.encoding, data.text_field), None) is None:
        raise SelfSupError(f"{data.path}: no text found (empty lines are skipped); point DATA at your text files")
    tokenizer = prepare_tokenizer(data, iter_texts(files, data.encoding, data.text_field, tags), run_dir)
    spec = token_spec(tokenizer)
    need = text_bytes(files) // CHARS_PER_TOKEN * BYTES_PER_TOKEN
    what = f"the texts of {len(files)} file(s)"
    mode = decide_cache(data.cache, need, what, "tokenized")
    collate = TokenCollator(spec.pad_token_id, sentence_end_ids(tokenizer))
    encoder_kwargs = {**spec.to_dict(), "max_length": data.max_length}

    if mode == "memory":
        corpus = TokenizedCorpus.build(iter_texts(files, data.encoding, data.text_field, tags), tokenizer,
                                       data.max_length, progress=progress)
        if len(corpus) == 0:  # every text tokenized to special tokens only
            raise SelfSupError(f"{data.path}: no text left after tokenizing; check --encoding and the tokenizer")

        def memory_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
            workers = _workers(trainer)
            return DataLoader(corpus, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate,
                              num_workers=workers, persistent_workers=workers > 0)

        return TrainData(len(corpus), data.max_length, encoder_kwargs, memory_loader, pretext_in_loader=False,
                         unit="texts")

    count = sum(1 for _ in iter_texts(files, data.encoding, data.text_field, tags))  # sizes epochs and the lr schedule
    stream = TextStream(files, tokenizer, data.max_length, encoding=data.encoding, text_field=data.text_field,
                        tags=tags)

    def stream_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        batches = max(1, count // world_size // batch_size)
        return TextStreamLoader(stream, batches, batch_size=batch_size, drop_last=True, collate_fn=collate,
                                num_workers=_workers(trainer))

    return TrainData(count, data.max_length, encoder_kwargs, stream_loader, pretext_in_loader=False,
                     unit="texts")
