"""What a modality hands the inspection engine: its items, read once (:class:`InspectedItems`), and the
modality-free helpers the modalities build them with (content digests, folder labels, MinHash sign vectors).

Every modality describes an item by the same things: the name the user knows it by (a path as given on the
command line, ``file:line`` of a text, a user id), a digest of its content (exact duplicates), one vector whose
cosine similarity says how alike two items are (near-duplicates, leaks, outliers), a few numbers
(size, resolution, length, duration) and, for labelled data, its class.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ENCODER_THRESHOLD = 0.95
"""Near-duplicates by a run's encoder: cosine of the pooled embeddings at least this."""
MINHASH_PERMUTATIONS = 256
"""Random permutations (hash functions) of the MinHash signatures of texts and histories."""


@dataclass
class InspectedItems:
    """The readable items of one DATA argument, in order, and the unreadable ones.

    ``embeddings`` [n, d] are compared by cosine similarity; ``embedding`` says what they are, ``threshold`` is
    the cosine from which two items count as near-duplicates by default. ``clean_lines[i]`` is the line
    ``--write-clean`` writes to keep item ``i`` (a resolved path, a text, a user id): a list that reads back as
    DATA. ``stats`` maps a statistic's name (with its unit) to one value per item."""

    ids: list[str]
    digests: list[str]
    embeddings: torch.Tensor
    embedding: str
    threshold: float
    clean_lines: list[str | None]  # None: an item that cannot be listed as DATA (a sample inside a tar shard)
    stats: dict[str, list[float]] = field(default_factory=dict)
    labels: list[str] | None = None
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.digests) == len(self.clean_lines) == self.embeddings.shape[0] == n):
            raise ValueError("InspectedItems: ids, digests, clean_lines and embeddings must have one row per item")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError("InspectedItems: labels must have one entry per item")


def digest(content: bytes) -> str:
    """The BLAKE2b-128 hex digest of ``content``: equal digests are byte-identical content."""
    return hashlib.blake2b(content, digest_size=16).hexdigest()


def folder_labels(root: Path, files: Sequence[Path]) -> list[str] | None:
    """The class of each of ``files`` when the folder ``root`` is labelled the usual way (one subfolder per
    class, at least two, every file inside one): the name of the subfolder below ``root``; else None."""
    if not root.is_dir():
        return None
    tops = []
    for file in files:
        parts = file.relative_to(root).parts
        if len(parts) < 2:
            return None
        tops.append(parts[0])
    return tops if len(set(tops)) >= 2 else None


def sign_vectors(bits: np.ndarray) -> torch.Tensor:
    """0/1 bits [n, b] as ±1 float vectors: their cosine is ``1 - 2 * hamming / b``."""
    return torch.from_numpy(np.where(np.asarray(bits, dtype=bool), 1.0, -1.0).astype(np.float32))


def minhash_signs(sets: Iterable[Iterable[str]], num_perm: int = MINHASH_PERMUTATIONS) -> torch.Tensor:
    """One ±1 vector per set of strings whose cosine with another's estimates the sets' Jaccard similarity.

    Each set gets a MinHash signature (Broder 1997, "On the resemblance and containment of documents"; the
    ``datasketch`` library) of ``num_perm`` values; only the lowest bit of each is kept (b-bit minwise
    hashing, Li & König 2010, b = 1; :func:`_one_bit`). Two sets agree on a bit with probability ``c = J + (1 - J) / 2``, so the
    cosine of the ±1 vectors, ``2c - 1``, is an unbiased estimate of J (standard deviation at most
    ``1 / sqrt(num_perm)``): near-duplicates are found by the same cosine search as every other embedding.
    An empty set gets a vector of its own (all +1)."""
    from datasketch import MinHash

    encoded = [[s.encode("utf-8") for s in set(items)] for items in sets]
    sketches = MinHash.generator(encoded, num_perm=num_perm, seed=1)  # one set of permutations for all
    rows = [_one_bit(sketch.hashvalues) if members else np.ones(num_perm, dtype=bool)
            for members, sketch in zip(encoded, sketches)]
    if not rows:
        return torch.empty(0, num_perm)
    return sign_vectors(np.stack(rows))


def _one_bit(values: np.ndarray) -> np.ndarray:
    """One bit of each MinHash value: the top bit after a multiplicative (Fibonacci) mix. Not the lowest bit
    itself: that of an affine hash ``(a x + b) mod 2^32`` depends on the lowest bits of ``a``, ``x`` and ``b``
    only, so unrelated sets would agree far more often than half the time."""
    mixed = values.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return (mixed >> np.uint64(63)).astype(bool)


def word_shingles(text: str) -> set[str]:
    """The words (lower-cased) and word pairs of ``text``: a sentence with one word changed keeps most of them
    (10 words, one changed: Jaccard ≈ 0.73), two unrelated sentences few."""
    words = text.lower().split()
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}
