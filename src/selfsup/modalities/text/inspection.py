"""Texts for ``selfsup inspect``: every text (a line, a JSON record, a CSV row, a shard's row) named ``FILE:LINE``, its digest,
word and character counts, MinHash of its word shingles (or the run's encoder), its label when the file has a
``label`` column or field."""

from __future__ import annotations

from pathlib import Path

from ...errors import SelfSupError
from ...inspection.items import ENCODER_THRESHOLD, InspectedItems, digest, minhash_signs, word_shingles
from .readers import find_text_files, located_texts
from .shards import located_shard_texts

MINHASH_THRESHOLD = 0.5
"""Texts whose word-and-word-pair sets have an estimated Jaccard similarity of at least 0.5 are near-duplicates
(one word changed in a ten-word sentence: ≈ 0.73; unrelated sentences: under 0.2)."""


def inspect_texts(modality, data: str | Path, encoding: str, text_field: str, loaded=None, device: str = "cpu",
                  batch_size: int = 256) -> InspectedItems:
    """:meth:`~selfsup.modalities.base.Modality.inspect_items` for texts. A file that cannot be decoded is
    unreadable (its texts before the bad line are kept)."""
    ids, texts, labels = [], [], []
    unreadable: list[tuple[str, str]] = []
    from_shards = located_shard_texts(data, text_field)
    for where, text, label in from_shards or ():
        ids.append(where)
        texts.append(text)
        labels.append(label)
    for file in find_text_files(data) if from_shards is None else ():
        try:
            for line, text, label in located_texts(file, encoding, text_field):
                ids.append(f"{file}:{line}")
                texts.append(text)
                labels.append(label)
        except SelfSupError as exc:
            unreadable.append((str(file), str(exc)))
    stats = {"words": [len(t.split()) for t in texts], "characters": [len(t) for t in texts]}
    labelled = labels if texts and all(label is not None for label in labels) else None
    clean = [" ".join(t.split()) for t in texts]  # one text per line: line breaks inside a record become spaces
    digests = [digest(t.encode("utf-8")) for t in texts]
    if loaded is None:
        return InspectedItems(ids, digests, minhash_signs(word_shingles(t) for t in texts),
                              "MinHash of words and word pairs (estimated Jaccard)", MINHASH_THRESHOLD, clean, stats,
                              labelled, unreadable)
    from ...evaluation.downstream import TokenBatch
    from ...evaluation.features import extract_features

    vectors = extract_features(loaded.encoder, modality._encode(loaded, texts),
                               TokenBatch(loaded.encoder.spec.pad_token_id), batch_size=batch_size, device=device)
    return InspectedItems(ids, digests, vectors, f"the run's encoder ({loaded.method}, cosine)", ENCODER_THRESHOLD,
                          clean, stats, labelled, unreadable)
