"""Images for ``selfsup inspect``: one pass over the files or tar shards (bytes digest, full decode, size, perceptual hash),
then the run's encoder when one is given."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ...inspection.items import ENCODER_THRESHOLD, InspectedItems, digest, sign_vectors
from ...inspection.stored import stored_files
from .readers import _DECODE_ERRORS, IMAGE_EXTENSIONS, find_images, read_image

PHASH_BITS = 64
PHASH_THRESHOLD = 1 - 2 * 6 / PHASH_BITS
"""Perceptual hashes at most 6 of 64 bits apart are near-duplicates (cosine of the ±1 bit vectors 0.8125);
a re-encoded or resized copy typically differs in 0-4 bits, unrelated images in about 32."""


def perceptual_hash_bits(image: Image.Image) -> "torch.Tensor":
    """The 64-bit perceptual hash (Zauner 2010, "Implementation and Benchmarking of Perceptual Image Hash
    Functions"; the ``imagehash`` library): the signs of the lowest 8x8 DCT coefficients of the 32x32 greyscale
    image against their median. Robust to resizing, re-encoding and small colour changes."""
    import imagehash

    return imagehash.phash(image).hash.reshape(-1)


def inspect_images(data: str | Path, loaded=None, device: str = "cpu", batch_size: int = 256) -> InspectedItems:
    """:meth:`~selfsup.modalities.base.Modality.inspect_items` for images (files, or tar shards)."""
    stored = stored_files(data, find_images, sorted(IMAGE_EXTENSIONS))
    ids, digests, clean, bits, readable, decoded = [], [], [], [], [], []
    stats: dict[str, list[float]] = {"width (px)": [], "height (px)": [], "file size (bytes)": []}
    unreadable: list[tuple[str, str]] = []
    for item in tqdm(stored.files, total=stored.total, desc="reading images", unit="img", leave=False, disable=None):
        try:
            content = item.read()
            with Image.open(io.BytesIO(content)) as pil:
                pil.load()
                width, height = pil.size
                if loaded is None:
                    bits.append(perceptual_hash_bits(pil))
            if loaded is not None and item.path is None:  # a shard sample: decoded now, its bytes are not kept
                decoded.append(read_image(io.BytesIO(content), loaded.input_size, name=item.name))
        except (*_DECODE_ERRORS, Image.DecompressionBombError) as exc:
            unreadable.append((item.id, f"cannot decode image ({exc.__class__.__name__})"))
            continue
        ids.append(item.id)
        digests.append(digest(content))
        clean.append(item.clean)
        readable.append(item)
        stats["width (px)"].append(width)
        stats["height (px)"].append(height)
        stats["file size (bytes)"].append(len(content))
    labels = stored.labels(readable)
    if loaded is None:
        vectors = sign_vectors(np.stack(bits)) if bits else torch.empty(0, PHASH_BITS)
        return InspectedItems(ids, digests, vectors, f"perceptual hash ({PHASH_BITS} bits)", PHASH_THRESHOLD, clean,
                              stats, labels, unreadable)
    from ...evaluation.features import extract_features
    from ...pretext.image_eval import eval_transform
    from .readers import read_images

    if decoded or not readable:
        images = torch.stack(decoded) if decoded else torch.empty(0)
    else:  # files: decoded by one thread per core
        images, kept, _ = read_images([item.path for item in readable], loaded.input_size)
        if len(kept) != len(readable):  # Pillow read them above: read_image failing now is a changed file
            raise RuntimeError("images changed while being inspected")
    vectors = extract_features(loaded.encoder, images, eval_transform(loaded.input_size), batch_size=batch_size,
                               device=device) if readable else torch.empty(0, 1)
    return InspectedItems(ids, digests, vectors, f"the run's encoder ({loaded.method}, cosine)", ENCODER_THRESHOLD,
                          clean, stats, labels, unreadable)
