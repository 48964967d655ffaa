"""Transformation-prediction pretext data: RotNet (Gidaris et al. 2018, "Unsupervised
Representation Learning by Predicting Image Rotations") and jigsaw puzzles (Noroozi & Favaro 2016,
"Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles", ECCV).

Rotation label ``k`` means the image was rotated by ``k * 90`` degrees counter-clockwise, i.e.
``torch.rot90(image, k, dims=(-2, -1))``. Jigsaw label ``k`` means the tiles were shuffled by
``permutations[k]``: position ``i`` of the puzzle holds the tile cut from grid cell
``permutations[k][i]`` (cells numbered row-major).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["NUM_ROTATIONS", "hamming_permutations", "jigsaw_tiles", "min_hamming_distance", "rotate_all",
           "rotate_random"]

NUM_ROTATIONS = 4


def _check_square(images: Tensor) -> None:
    if images.ndim < 3 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation needs square images [..., H, W] with H == W, got {tuple(images.shape)}")


def _all_rotations(images: Tensor) -> Tensor:
    """[B, C, H, W] -> [4, B, C, H, W]; entry k is rotated by k*90 degrees counter-clockwise."""
    return torch.stack([torch.rot90(images, k, dims=(-2, -1)) for k in range(NUM_ROTATIONS)])


def rotate_all(images: Tensor) -> tuple[Tensor, Tensor]:
    """Every image in all four rotations (RotNet's training batch).

    ``images`` [B, C, H, W] -> (rotated [4B, C, H, W], labels [4B] int64), rotation-major:
    rows ``k*B : (k+1)*B`` hold the whole batch rotated by ``k*90`` degrees.
    """
    _check_square(images)
    b = images.shape[0]
    rotated = _all_rotations(images).flatten(0, 1)
    labels = torch.arange(NUM_ROTATIONS, device=images.device).repeat_interleave(b)
    return rotated, labels


def rotate_random(images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """One uniformly random rotation per image: [B, C, H, W] -> (rotated [B, C, H, W], labels [B]).

    Labels are drawn on the generator's device (CPU without a generator) and moved to the images'.
    """
    _check_square(images)
    b = images.shape[0]
    label_device = generator.device if generator is not None else torch.device("cpu")
    labels = torch.randint(0, NUM_ROTATIONS, (b,), generator=generator, device=label_device).to(images.device)
    rotated = _all_rotations(images)[labels, torch.arange(b, device=images.device)]
    return rotated, labels


# --------------------------------------------------------------------------- jigsaw puzzles


@functools.lru_cache(maxsize=8)
def _hamming_permutations(count: int, tiles: int, seed: int) -> np.ndarray:
    perms = np.fromiter(itertools.chain.from_iterable(itertools.permutations(range(tiles))), dtype=np.int8)
    by_position = np.ascontiguousarray(perms.reshape(-1, tiles).T)  # [tiles, tiles!]: fast row-wise compares
    total = by_position.shape[1]
    min_dist = np.full(total, tiles + 1, dtype=np.int32)  # to the chosen set (0 once chosen)
    sum_dist = np.zeros(total, dtype=np.int32)
    chosen = [int(np.random.default_rng(seed).integers(total))]
    while True:
        j = chosen[-1]
        dist = np.zeros(total, dtype=np.int32)
        for k in range(tiles):
            dist += by_position[k] != by_position[k, j]
        np.minimum(min_dist, dist, out=min_dist)
        sum_dist += dist
        if len(chosen) == count:
            break
        chosen.append(int(np.argmax(min_dist * (tiles * count + 1) + sum_dist)))  # max-min, then max-sum
    selected = by_position[:, chosen].T.astype(np.int64)
    selected.flags.writeable = False
    return selected


def hamming_permutations(count: int, tiles: int = 9, seed: int = 0) -> Tensor:
    """A set of ``count`` permutations of ``tiles`` items, far apart in Hamming distance: [count, tiles] int64.

    The greedy selection of Noroozi & Favaro (2016, §3.3 and Algorithm 1) over all ``tiles!``
    permutations: start from one random permutation (drawn from ``seed``), then repeatedly add the
    candidate farthest from the chosen set. "Farthest" is the candidate's *minimum* Hamming distance
    to the chosen permutations (so the classes stay distinguishable), ties broken by the largest
    *sum* of distances (the criterion of the paper's Algorithm 1), then by the lowest index. Vectorised
    over all 9! = 362,880 candidates; deterministic for a seed, and cached.
    """
    if not 2 <= tiles <= 10:
        raise ValueError(f"tiles must be in [2, 10] (all tiles! permutations are enumerated), got {tiles}")
    if not 1 <= count <= math.factorial(tiles):
        raise ValueError(f"count must be in [1, {tiles}!] = [1, {math.factorial(tiles)}], got {count}")
    return torch.from_numpy(_hamming_permutations(count, tiles, seed).copy())


def min_hamming_distance(permutations: Tensor) -> int:
    """The smallest Hamming distance between two rows of ``permutations`` [P, T] (P >= 2)."""
    if permutations.ndim != 2 or permutations.shape[0] < 2:
        raise ValueError(f"expected at least two permutations [P, T], got {tuple(permutations.shape)}")
    dist = (permutations[:, None, :] != permutations[None, :, :]).sum(-1)
    dist.fill_diagonal_(permutations.shape[1] + 1)
    return int(dist.min())


def jigsaw_tiles(
    images: Tensor,
    permutations: Tensor,
    generator: torch.Generator | None = None,
    tile_fraction: float = 64 / 75,
    normalize_tiles: bool = True,
    eps: float = 1e-5,
) -> tuple[Tensor, Tensor]:
    """Cut each image into a shuffled 3x3 jigsaw puzzle (Noroozi & Favaro 2016, §3.2).

    ``images`` [B, C, H, W] (float) -> (tiles [B, 9, C, t, t], labels [B] int64). The central
    ``3c x 3c`` square, ``c = min(H, W) // 3``, is split into a 3x3 grid of ``c x c`` cells; each
    cell gives one tile of side ``t = floor(tile_fraction * c)`` (the paper's 64 px tiles in 75 px
    cells) at a random offset inside it, so the gap between tiles hides edge continuity. Each image
    draws a label ``k`` and ``tiles[b, i]`` is the tile of cell ``permutations[k][i]``, so
    ``restored[:, permutations[k]] = tiles`` puts the cells back in row-major order. With
    ``normalize_tiles`` every tile is standardised by its own mean and std (the paper's guard
    against low-level-statistics shortcuts). Random draws happen on the generator's device (CPU
    without a generator) and are moved to the images'.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"jigsaw_tiles expects float images [B, C, H, W], got {images.dtype} {tuple(images.shape)}")
    if permutations.ndim != 2 or permutations.shape[1] != 9:
        raise ValueError(f"jigsaw_tiles expects permutations of 9 tiles [P, 9], got {tuple(permutations.shape)}")
    if not 0.0 < tile_fraction <= 1.0:
        raise ValueError(f"tile_fraction must be in (0, 1], got {tile_fraction}")
    b, _, h, w = images.shape
    cell = min(h, w) // 3
    if cell < 2:
        raise ValueError(f"images of {h}x{w} px are too small for a 3x3 jigsaw puzzle (need at least 6 px)")
    tile = max(1, math.floor(tile_fraction * cell))
    device = images.device
    draw_device = generator.device if generator is not None else torch.device("cpu")
    labels = torch.randint(0, permutations.shape[0], (b,), generator=generator, device=draw_device).to(device)
    offsets = torch.randint(0, cell - tile + 1, (b, 9, 2), generator=generator, device=draw_device).to(device)

    # the top-left pixel of every tile, for the cells in puzzle order
    order = permutations.to(device)[labels]  # [B, 9]: position i shows cell order[:, i]
    top = (h - 3 * cell) // 2 + (order // 3) * cell + offsets[..., 0]
    left = (w - 3 * cell) // 2 + (order % 3) * cell + offsets[..., 1]
    steps = torch.arange(tile, device=device)
    rows = (top[..., None] + steps)[..., :, None]  # [B, 9, t, 1]
    cols = (left[..., None] + steps)[..., None, :]  # [B, 9, 1, t]
    sample = torch.arange(b, device=device).view(b, 1, 1, 1)
    tiles = images[sample, :, rows, cols].permute(0, 1, 4, 2, 3)  # [B, 9, t, t, C] -> [B, 9, C, t, t]
    if normalize_tiles:
        mean = tiles.mean(dim=(2, 3, 4), keepdim=True)
        std = tiles.std(dim=(2, 3, 4), keepdim=True, unbiased=False)
        tiles = (tiles - mean) / (std + eps)
    return tiles.contiguous(), labels
