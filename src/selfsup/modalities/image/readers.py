"""Image reader: folders (any depth) or list files of images → uint8 tensors [3, S, S].

Images are converted to RGB, resized so the shorter side is S and centre-cropped (``read_image``):
either decoded once into memory (``load_unlabeled``, ``ImageTensorDataset``) or from disk at every
access (``ImageFileDataset``, for data larger than memory). Unreadable files are skipped with a
warning naming each one (``strict=True`` stops at the first).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from ...errors import SelfSupError
from ...files import class_folders, files_below, find_files

log = logging.getLogger("selfsup")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".webp",
                              ".avif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".j2k", ".tga", ".qoi"})


# what Pillow raises on a file it cannot read (SyntaxError: some plugins' bad-header error; EOFError: truncated)
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def find_images(path: str | Path) -> list[Path]:
    """All image files under a folder (recursively, sorted, hidden files and folders skipped), or listed in a
    text file (one per line, relative paths resolved against the list file's folder)."""
    return find_files(path, IMAGE_EXTENSIONS, "images")


def read_image(path: Path | BinaryIO, size: int, name: str | None = None) -> torch.Tensor:
    """Decode one image to uint8 RGB [3, size, size] (shorter side resized, centre crop), with Pillow.

    - Camera photos are turned upright by their EXIF orientation tag (as every photo viewer shows them).
    - Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (Pillow's ``draft``) when that
      still leaves both sides at least ``size``: a 12-megapixel photo read at 224 px decodes 3-4x faster.
    - 16-bit and floating-point images are scaled into 0..255 (:func:`_to_rgb`), not clipped.
    - Animated images give their first frame.

    ``path`` may be an open binary file (a sample of a shard), named ``name`` in messages.
    Raises ``ValueError`` naming the file when it cannot be read.
    """
    name = name or str(path)
    try:
        with Image.open(path) as pil:
            if pil.format in ("JPEG", "MPO"):  # MPO: the multi-picture JPEG some cameras write
                pil.draft(None, (size, size))
            ImageOps.exif_transpose(pil, in_place=True)
            image = _to_rgb(pil)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{name}: cannot decode image, too large ({exc}); downscale the file") from exc
    except _DECODE_ERRORS as exc:
        raise ValueError(f"{name}: cannot decode image ({exc.__class__.__name__})") from exc
    if image.shape[-2:] != (size, size):
        image = TF.resize(image, size, antialias=True)
        image = TF.center_crop(image, [size, size])
    return image.contiguous()


def _to_rgb(image: Image.Image) -> torch.Tensor:
    """uint8 [3, H, W] of a Pillow image of any mode.

    Pillow's own conversion clips 16-bit and float greyscale at 255 (mostly white or black images), so those
    are scaled here: 16-bit integers by 65535; floats in [0, 1] by 255; other ranges from their min-max.
    """
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        if image.mode != "F" and low >= 0 and high <= 65535:
            values = values / 257
        elif image.mode == "F" and low >= 0 and high <= 1:
            values = values * 255
        else:
            values = (values - low) * (255 / max(high - low, 1e-12))
        grey = torch.from_numpy(np.rint(values).clip(0, 255).astype(np.uint8))
        return grey.expand(3, -1, -1)
    return torch.from_numpy(np.array(image if image.mode == "RGB" else image.convert("RGB"))).permute(2, 0, 1)


def image_of_sample(sample: dict, size: int) -> torch.Tensor:
    """The image of a WebDataset sample (its first member with an image extension), as ``read_image`` reads a file."""
    import io

    name = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
    for key, value in sample.items():
        if f".{key.lower()}" in IMAGE_EXTENSIONS:
            return read_image(io.BytesIO(value), size, name=f"{name}.{key}")
    raise ValueError(f"{name}: no image in this sample (members: {', '.join(k for k in sample if not k.startswith('__'))})")


def unreadable_error(exc: ValueError | str) -> SelfSupError:
    """The one-line ``--strict`` error for an unreadable file (``exc`` names it, as ``read_image``'s do)."""
    return SelfSupError(f"{exc}; remove or replace the file, or drop --strict to skip unreadable files")


def _none_readable(paths: Sequence[Path]) -> SelfSupError:
    return SelfSupError(f"none of the {len(paths)} image files could be decoded (first: {paths[0]}); check the files")


LARGE_IMAGE_PIXELS = 512 * 512  # decode in threads when the first file is at least this large


def decode_in_order(paths: Sequence[Path], size: int) -> Iterator[torch.Tensor | ValueError]:
    """``read_image`` of each path, in order (the error instead of the image for an unreadable file).

    Large images (the first file has at least :data:`LARGE_IMAGE_PIXELS`) are decoded by one thread per
    CPU core, a few files ahead of the consumer: Pillow's decoders and torch's resize release the GIL, and
    on 2 cores a folder of 12-megapixel photos decodes 1.8x faster than in one thread. Small images
    (CIFAR's 32 px) are decoded in this thread: their time is mostly Python, which threads would only
    contend for (measured 2026-11-25, 2-core EPYC: 0.65x).
    """

    def attempt(path: Path) -> torch.Tensor | ValueError:
        try:
            return read_image(path, size)
        except ValueError as exc:
            return exc

    threads = decode_threads(paths)
    if threads == 1:
        yield from map(attempt, paths)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="selfsup-decode") as pool:
        ahead: deque[Future] = deque()
        for path in paths:
            ahead.append(pool.submit(attempt, path))
            if len(ahead) > 4 * threads:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def decode_threads(paths: Sequence[Path]) -> int:
    """Threads to decode ``paths`` with: one per CPU core when the first file is large (see
    :func:`decode_in_order`), else 1."""
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 if threads == 1 or not paths or _pixels(paths[0]) < LARGE_IMAGE_PIXELS else threads


def _pixels(path: Path) -> int:
    """Width x height from the file's header (0 when unreadable)."""
    try:
        with Image.open(path) as pil:
            return pil.width * pil.height
    except (*_DECODE_ERRORS, Image.DecompressionBombError):
        return 0


@dataclass
class DecodeReport:
    decoded: int
    skipped: list[Path]


def read_images(paths: Sequence[Path], size: int, strict: bool = False,
                progress: bool = True) -> tuple[torch.Tensor, list[int], DecodeReport]:
    """Decode ``paths`` into one uint8 tensor [N, 3, size, size].

    Returns the tensor, the indices (into ``paths``) of the images it holds, and a report of
    the skipped files. ``strict`` turns the first unreadable file into a SelfSupError.
    """
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    kept: list[int] = []
    skipped: list[Path] = []
    decoded = decode_in_order(paths, size)
    for i, (path, image) in enumerate(tqdm(zip(paths, decoded), total=len(paths), desc="decoding images", unit="img",
                                           disable=None if progress else True, leave=False)):
        if isinstance(image, ValueError):
            if strict:
                decoded.close()
                raise unreadable_error(image) from None
            log.warning("skipping unreadable image %s", path)
            skipped.append(path)
            continue
        out[len(kept)] = image
        kept.append(i)
    if not kept:
        raise _none_readable(paths)
    if skipped:
        log.warning("skipped %d unreadable image(s) of %d", len(skipped), len(paths))
    return out[: len(kept)], kept, DecodeReport(len(kept), skipped)


class ImageTensorDataset(Dataset):
    """Decoded images held in memory as one uint8 tensor; items are [3, S, S] uint8 tensors."""

    def __init__(self, images: torch.Tensor, paths: Sequence[Path]) -> None:
        self.images = images
        self.paths = list(paths)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


class ImageFileDataset(Dataset):
    """Images read from disk at every access, for data larger than memory.

    Item ``i`` is ``read_image(paths[i], size)``: the very tensor the memory path holds for that file.
    An unreadable file raises ``ValueError`` naming it; the caller decides to skip or stop.
    """

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return read_image(self.paths[index], self.size)


def decode_unlabeled(files: Sequence[Path], size: int, strict: bool = False, progress: bool = True) -> ImageTensorDataset:
    """``files`` decoded at ``size`` into memory (unreadable ones skipped, or an error with ``strict``)."""
    images, kept, _ = read_images(files, size, strict=strict, progress=progress)
    return ImageTensorDataset(images, [files[i] for i in kept])


def open_unlabeled(files: Sequence[Path], size: int, strict: bool = False) -> ImageFileDataset:
    """``files`` to be read per access; only the first readable one is decoded now, so that a folder of
    unreadable files fails here (and ``strict`` stops at an unreadable first file), not in a loader worker."""
    for path in files:
        try:
            read_image(path, size)
        except ValueError as exc:
            if strict:
                raise unreadable_error(exc) from None
            continue  # warned about and counted when training meets it
        return ImageFileDataset(files, size)
    raise _none_readable(files)


def load_unlabeled(path: str | Path, size: int, strict: bool = False, progress: bool = True) -> ImageTensorDataset:
    """Every image under ``path`` (labels, if any, ignored), decoded at ``size``; tar shards too."""
    from_shards = _shard_images(path, size, strict)
    if from_shards is not None:
        images, references, _ = from_shards
        return ImageTensorDataset(images, references)
    return decode_unlabeled(find_images(path), size, strict=strict, progress=progress)


def _shard_images(path: str | Path, size: int, strict: bool) -> tuple[torch.Tensor, list, list] | None:
    """(images [N, 3, S, S], references, class names or None) of every sample of tar shard DATA (undecodable
    ones skipped with a warning; ``strict`` stops); None when ``path`` is not shards."""
    from functools import partial

    from ...shards.labelled import decode_all
    from ...shards.tar import SUFFIXES, count_tar, tar_samples

    found = decode_all(str(path), SUFFIXES, count_tar, tar_samples, partial(image_of_sample, size=size), (ValueError,),
                       strict, unreadable_error, "image")
    return None if found is None else (torch.stack(found[0]), found[1], found[2])


@dataclass
class LabeledImages:
    """A labeled split: uint8 images [N, 3, S, S], labels [N] in 0..C-1, class names, the file of each image."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    paths: list[Path] = field(default_factory=list)


def load_labeled(path: str | Path, size: int, classes: list[str] | None = None,
                 strict: bool = False, progress: bool = True) -> LabeledImages:
    """An image folder with one subfolder per class (images at any depth below it).

    ``classes`` fixes the class order (pass the train split's to read the test split); a class
    folder not in it is an error.
    """
    from_shards = _shard_images(path, size, strict)
    if from_shards is not None:
        from ...shards.labelled import label_indices

        images, references, names = from_shards
        labels, order = label_indices(names, classes, str(path))
        return LabeledImages(images, labels, order, references)
    root = Path(path).expanduser()
    found = class_folders(root, "images")
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise SelfSupError(f"{root}: class folder(s) {', '.join(unknown)} do not appear in the training set; use the same class names in both")
    files: list[Path] = []
    labels: list[int] = []
    for name in found:
        class_files = files_below(root / name, IMAGE_EXTENSIONS)
        files += class_files
        labels += [classes.index(name)] * len(class_files)
    if not files:
        raise SelfSupError(f"{root}: the class subfolders hold no images")
    images, kept, _ = read_images(files, size, strict=strict, progress=progress)
    return LabeledImages(images, torch.tensor([labels[i] for i in kept], dtype=torch.long), list(classes),
                         [files[i] for i in kept])
