"""Language tags for multilingual text, as mBART pretrains and translates (Liu et al. 2020, "Multilingual Denoising
Pre-training for Neural Machine Translation", TACL, §2.1: one shared vocabulary, a language id token with every
text; fine-tuning feeds the source language's token with the source and starts the decoder with the target's).

With ``--set data.languages=en,de`` every text starts with its language's tag, a special token of the run's
tokenizer written ``__en__`` (the form of fairseq's multilingual models, e.g. M2M-100, Fan et al. 2021). A text's
language is, in this order:

1. a tag it already starts with (``__de__ Ein Hund``: text prepared elsewhere keeps its tag);
2. the ``data.language_field`` field of a .jsonl record or column of a .csv/.tsv (default ``language``);
3. its file: a dot-separated part of the file name (``train.de``, ``news.de.txt``) or a folder on its path
   (``de/part-1.txt``) that is one of the languages.

Tags are special tokens: masking (mlm), deletion (tsdae) and BART's noise leave them where they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import SelfSupError

LANGUAGE_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,15}$")
TAG = "__{}__"
_TAG = re.compile(r"^__([A-Za-z][A-Za-z0-9_-]{0,15})__$")
HOW_TO_NAME = ("name the files by language (train.en, news.de.txt or de/ folders), give .jsonl/.csv rows a "
               "'{field}' field, or start each text with its tag (__en__ ...)")


def language_tag(language: str) -> str:
    """The special token of ``language``: ``__en__``."""
    return TAG.format(language)


def parse_languages(value: str | Iterable[str] | None, where: str = "data.languages") -> tuple[str, ...]:
    """The language codes of a comma-separated setting (``"en,de"``), in order, without repeats; ``()`` for none."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    codes = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    bad = [code for code in codes if not LANGUAGE_CODE.match(code)]
    if bad:
        raise SelfSupError(f"{where}={','.join(parts)}: {bad[0]!r} is not a language code; give codes of letters, "
                           "digits, _ or - separated by commas, e.g. en,de")
    return codes


def valid_languages(value: Any) -> bool:
    """Whether a ``data.languages`` value parses (for the setting's declaration)."""
    if not isinstance(value, str):
        return False
    try:
        parse_languages(value)
    except SelfSupError:
        return False
    return True


@dataclass(frozen=True)
class LanguageTags:
    """How texts get their tags: the corpus's ``languages`` and the record ``field`` naming a text's language."""

    languages: tuple[str, ...]
    field: str = "language"

    @classmethod
    def from_settings(cls, settings: Any) -> LanguageTags | None:
        """The tags a data section asks for (``data.languages``, ``data.language_field``); None when monolingual."""
        get = settings.get if isinstance(settings, Mapping) else lambda key, default=None: getattr(settings, key, default)
        languages = parse_languages(get("languages", ""))
        return cls(languages, str(get("language_field", "language") or "language")) if languages else None

    @property
    def tokens(self) -> list[str]:
        """The tag of every language, in the setting's order (the tokenizer's extra special tokens)."""
        return [language_tag(language) for language in self.languages]

    @property
    def suffixes(self) -> frozenset[str]:
        """File name suffixes that name a language (``.en``): such files are text files too."""
        return frozenset(f".{language.lower()}" for language in self.languages)

    def of_path(self, path: str | Path) -> str | None:
        """The language a file's name or folders name (``train.de``, ``news.de.txt``, ``de/x.txt``), else None."""
        path = Path(path)
        known = {language.lower(): language for language in self.languages}
        for part in reversed(path.name.split(".")[1:]):
            if part.lower() in known:
                return known[part.lower()]
        for folder in reversed(path.parent.parts):
            if folder.lower() in known:
                return known[folder.lower()]
        return None

    def leading(self, text: str) -> str | None:
        """The language whose tag ``text`` already starts with, else None."""
        first = text.split(None, 1)[0] if text else ""
        match = _TAG.match(first)
        return match.group(1) if match and match.group(1) in self.languages else None

    def apply(self, text: str, language: str | None, where: str) -> str:
        """``text`` with its language's tag in front (unchanged when it starts with a tag of the languages).
        ``language``: the record's or file's language; ``where``: ``file:line`` for an error."""
        if self.leading(text) is not None:
            return text
        if language is None or language == "":
            raise SelfSupError(f"{where}: no language among data.languages={','.join(self.languages)} for this "
                               f"text; {HOW_TO_NAME.format(field=self.field)}")
        if language not in self.languages:
            lowered = {code.lower(): code for code in self.languages}
            if str(language).lower() not in lowered:
                raise SelfSupError(f"{where}: language {language!r} is not in data.languages="
                                   f"{','.join(self.languages)}; add it there or fix the record")
            language = lowered[str(language).lower()]
        return f"{language_tag(language)} {text}"


def _extra_special_tokens(tokenizer: Any) -> list[str]:
    """The tokenizer's special tokens beyond the named ones (transformers 5: ``extra_special_tokens``, 4:
    ``additional_special_tokens``)."""
    extra = getattr(tokenizer, "extra_special_tokens", None)
    if not isinstance(extra, (list, tuple)):
        extra = getattr(tokenizer, "additional_special_tokens", None)
    return [str(token) for token in extra or []]


def tokenizer_languages(tokenizer: Any) -> dict[str, int]:
    """``{language: id of its tag}`` for every language tag among the tokenizer's special tokens."""
    found: dict[str, int] = {}
    for token in _extra_special_tokens(tokenizer):
        match = _TAG.match(str(token))
        if match:
            found[match.group(1)] = int(tokenizer.convert_tokens_to_ids(str(token)))
    return found


def add_language_tokens(tokenizer: Any, tags: LanguageTags | None) -> list[str]:
    """Add the tags the tokenizer lacks as special tokens (never split, never normalised); the ones added."""
    if tags is None:
        return []
    have = set(tokenizer_languages(tokenizer))
    missing = [language_tag(language) for language in tags.languages if language not in have]
    if missing:  # the whole list: transformers replaces the extra special tokens with the ones given
        tokenizer.add_special_tokens({"additional_special_tokens": _extra_special_tokens(tokenizer) + missing})
    return missing


def tokenizer_tags(tokenizer: Any, settings: Mapping[str, Any] | None = None) -> LanguageTags | None:
    """The tags a run's texts get, from its tokenizer (so an export knows them too); ``settings``: the run's data
    settings, for ``language_field``. None for a run of one language."""
    languages = tokenizer_languages(tokenizer)
    if not languages:
        return None
    return LanguageTags(tuple(languages), str((settings or {}).get("language_field") or "language"))

