"""Tokenizers: trained on the user's corpus with Hugging Face ``tokenizers``, or loaded from a
folder saved with ``save_pretrained``; always a ``transformers.PreTrainedTokenizerFast`` that encodes
``[CLS] tokens… [SEP]`` and reports word boundaries (``word_ids``) for whole-word masking.

- WordPiece (Wu et al., 2016; as in BERT, Devlin et al., 2019): BERT normalizer and pre-tokenizer.
- Byte-level BPE (Sennrich et al., 2016; byte-level as in GPT-2, Radford et al., 2019): lossless,
  no unknown tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from ...errors import SelfSupError

TOKENIZER_DIR = "tokenizer"  # where a run folder keeps its tokenizer

log = logging.getLogger("selfsup")

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TOKENIZER_KINDS = ("wordpiece", "bpe")
_MAX_LENGTH = 1_000_000_000  # no tokenizer-imposed limit: max_length is the data's setting


def _template(cls_token: str, cls_id: int, sep_token: str, sep_id: int) -> processors.TemplateProcessing:
    return processors.TemplateProcessing(
        single=f"{cls_token} $A {sep_token}",
        pair=f"{cls_token} $A {sep_token} $B:1 {sep_token}:1",
        special_tokens=[(cls_token, cls_id), (sep_token, sep_id)],
    )


def _counted(texts: Iterable[str], seen: list[int]) -> Iterator[str]:
    for text in texts:
        seen[0] += 1
        yield text


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "wordpiece",
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
    progress: bool = False,
    extra_special_tokens: Sequence[str] = (),
) -> PreTrainedTokenizerFast:
    """Train a ``kind`` ("wordpiece" or "bpe") tokenizer on ``texts`` (streamed once). The special
    tokens get ids 0..4 in the order of SPECIAL_TOKENS, then ``extra_special_tokens`` (language tags) 5, 6, …"""
    specials = list(SPECIAL_TOKENS) + [t for t in extra_special_tokens if t not in SPECIAL_TOKENS]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=progress
        )
    elif kind == "bpe":
        tok = Tokenizer(models.BPE())
        if lowercase:
            tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        # ByteLevel decodes to one string; Strip removes the space the pre-tokenizer put in front.
        tok.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=progress,
        )
    else:
        raise SelfSupError(f"unknown tokenizer {kind!r}; choose one of: {', '.join(TOKENIZER_KINDS)} (or give a tokenizer folder)")
    seen = [0]
    tok.train_from_iterator(_counted(texts, seen), trainer=trainer)
    if seen[0] == 0:
        raise SelfSupError("no text to train the tokenizer on; check that the data files hold non-empty text")
    tok.post_processor = _template("[CLS]", tok.token_to_id("[CLS]"), "[SEP]", tok.token_to_id("[SEP]"))
    log.info("trained a %s tokenizer: %d tokens from %d texts", kind, tok.get_vocab_size(), seen[0])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        additional_special_tokens=specials[len(SPECIAL_TOKENS):],
        model_max_length=_MAX_LENGTH,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: str | Path) -> Path:
    """Save with ``save_pretrained`` so ``AutoTokenizer.from_pretrained(folder)`` loads it offline."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return folder


def _wraps_in_cls_sep(tokenizer: PreTrainedTokenizerFast) -> bool:
    ids = tokenizer("a b")["input_ids"]
    return len(ids) >= 2 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerFast:
    """A fast tokenizer from a folder saved with ``save_pretrained`` (offline). Missing pad, mask or
    unk tokens are added; cls/sep fall back to bos/eos, else ``[CLS]``/``[SEP]`` are added, and a
    tokenizer that does not wrap sequences in them gets a ``[CLS] $A [SEP]`` post-processor."""
    folder = Path(folder).expanduser()
    fix = "give a folder saved with save_pretrained, or --tokenizer wordpiece|bpe to train one"
    if not folder.is_dir():
        raise SelfSupError(f"{folder}: no such tokenizer folder; {fix}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # transformers raises OSError, ValueError, KeyError … for unusable folders
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SelfSupError(f"{folder}: no usable tokenizer files ({reason[:200]}); {fix}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise SelfSupError(
            f"{folder}: holds a slow (Python) tokenizer {type(tokenizer).__name__}; selfsup needs a fast one "
            f"(a tokenizer.json file) for word boundaries; {fix}"
        )
    added: dict[str, str] = {}
    for name, default in (("pad_token", "[PAD]"), ("mask_token", "[MASK]"), ("unk_token", "[UNK]")):
        if getattr(tokenizer, name) is None:
            added[name] = default
    for name, fallback, default in (("cls_token", "bos_token", "[CLS]"), ("sep_token", "eos_token", "[SEP]")):
        if getattr(tokenizer, name) is None:
            if getattr(tokenizer, fallback) is not None:
                setattr(tokenizer, name, getattr(tokenizer, fallback))
                log.info("tokenizer %s: using %s %r as %s", folder, fallback, getattr(tokenizer, fallback), name)
            else:
                added[name] = default
    if added:
        tokenizer.add_special_tokens(added)
        log.info("tokenizer %s: added special tokens %s", folder, ", ".join(f"{k}={v}" for k, v in added.items()))
    if not _wraps_in_cls_sep(tokenizer):
        tokenizer.backend_tokenizer.post_processor = _template(
            tokenizer.cls_token, tokenizer.cls_token_id, tokenizer.sep_token, tokenizer.sep_token_id
        )
        log.info("tokenizer %s: sequences now encoded as %s … %s", folder, tokenizer.cls_token, tokenizer.sep_token)
    return tokenizer


SENTENCE_ENDS = (".", "!", "?")


def sentence_end_ids(tokenizer: PreTrainedTokenizerFast) -> tuple[int, ...]:
    """Ids of the tokenizer's tokens that end a sentence (``.``, ``!``, ``?`` where the vocabulary has them as
    whole tokens), for BART's sentence permutation."""
    vocab = tokenizer.get_vocab()
    return tuple(sorted({vocab[token] for token in SENTENCE_ENDS if token in vocab}))


def token_spec(tokenizer: PreTrainedTokenizerFast):
    """The ``selfsup.encoders.text.TokenSpec`` of a tokenizer (vocab size includes added tokens)."""
    from ...encoders.text import TokenSpec

    from .languages import tokenizer_languages

    return TokenSpec(
        vocab_size=len(tokenizer),
        language_ids=tuple(sorted(tokenizer_languages(tokenizer).values())),
        pad_token_id=tokenizer.pad_token_id,
        unk_token_id=tokenizer.unk_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        mask_token_id=tokenizer.mask_token_id,
    )
