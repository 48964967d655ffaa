"""Jigsaw puzzles (permutation set, tiles, method) and SimMIM (block masking, masked L1 loss, method)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.encoders import build_encoder
from selfsup.errors import SelfSupError
from selfsup.losses import masked_patch_l1, masked_patch_mse, patchify
from selfsup.methods.jigsaw import Jigsaw
from selfsup.methods.simmim import SimMIM
from selfsup.pretext import hamming_permutations, jigsaw_tiles, min_hamming_distance, random_block_mask
from selfsup.registry import get_method
from selfsup.types import Family, Modality

from method_checks import SIZE, assert_method_learns, fixed_batch


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- permutation set


def _ref_min_hamming(perms: torch.Tensor) -> int:
    rows = perms.tolist()
    return min(sum(x != y for x, y in zip(a, b)) for a, b in itertools.combinations(rows, 2))


def test_hamming_permutations_are_distinct_valid_deterministic_and_far_apart():
    perms = hamming_permutations(100)
    assert perms.shape == (100, 9) and perms.dtype == torch.int64
    assert all(sorted(row) == list(range(9)) for row in perms.tolist())  # each row is a permutation
    assert len({tuple(row) for row in perms.tolist()}) == 100  # all distinct
    assert torch.equal(perms, hamming_permutations(100, seed=0))  # deterministic for a seed
    assert not torch.equal(perms, hamming_permutations(100, seed=1))
    # greedy: a smaller set is a prefix of a larger one, and the second pick is as far as possible
    assert torch.equal(hamming_permutations(40), perms[:40])
    assert _ref_min_hamming(perms[:2]) == 9

    found = min_hamming_distance(perms)
    assert found == _ref_min_hamming(perms)
    g = _gen(0)
    random_sets = [torch.stack([torch.randperm(9, generator=g) for _ in range(100)]) for _ in range(5)]
    assert found >= 6, found  # the greedy max-min set is far better than chance ...
    assert found > max(min_hamming_distance(r) for r in random_sets)  # ... which gives 0-3 here


def test_min_hamming_distance_and_argument_checks():
    perms = torch.tensor([[0, 1, 2], [1, 0, 2], [2, 0, 1]])
    assert min_hamming_distance(perms) == 2 == _ref_min_hamming(perms)
    with pytest.raises(ValueError, match="count"):
        hamming_permutations(7, tiles=3)  # only 3! = 6 exist
    with pytest.raises(ValueError, match="two permutations"):
        min_hamming_distance(perms[:1])


# ---------------------------------------------------------------- jigsaw tiles


def _cell_colour_images(b: int, size: int) -> torch.Tensor:
    """Images whose 3x3 cells (of size // 3 px, in the central square) are constant, cell k = value k."""
    cell = size // 3
    start = (size - 3 * cell) // 2
    images = torch.full((b, 3, size, size), -1.0)
    for k in range(9):
        r, c = start + (k // 3) * cell, start + (k % 3) * cell
        images[:, :, r : r + cell, c : c + cell] = float(k)
    images[:, 1] += 10.0  # distinct channels as well
    return images


@pytest.mark.parametrize("size", [16, 32])
def test_jigsaw_labels_decode_back_to_the_grid_order(size):
    perms = hamming_permutations(10)
    images = _cell_colour_images(40, size)
    tiles, labels = jigsaw_tiles(images, perms, _gen(3), normalize_tiles=False)
    tile = math.floor(64 / 75 * (size // 3))
    assert tiles.shape == (40, 9, 3, tile, tile) and labels.shape == (40,) and labels.dtype == torch.int64
    assert len(set(labels.tolist())) > 5  # labels are drawn per image
    for b in range(40):
        order = perms[labels[b]]
        for i in range(9):  # puzzle position i shows cell order[i], a tile strictly inside that cell
            assert torch.all(tiles[b, i, 0] == order[i]) and torch.all(tiles[b, i, 1] == order[i] + 10)
        restored = torch.empty_like(tiles[b])
        restored[order] = tiles[b]  # un-permute by the label
        assert [int(t[0, 0, 0]) for t in restored] == list(range(9))


def test_jigsaw_tiles_are_random_crops_inside_their_cells_and_normalised():
    size, cell, tile = 32, 10, 8  # 64/75 of a 10 px cell
    images = torch.arange(2 * size * size, dtype=torch.float32).view(2, 1, size, size).expand(2, 3, size, size)
    identity = torch.arange(9).unsqueeze(0)
    tiles, labels = jigsaw_tiles(images.contiguous(), identity, _gen(0), normalize_tiles=False)
    assert labels.tolist() == [0, 0]
    offsets = set()
    for b in range(2):
        for k in range(9):
            first = int(tiles[b, k, 0, 0, 0]) - b * size * size
            top, left = divmod(first, size)
            assert torch.equal(tiles[b, k], images[b, :, top : top + tile, left : left + tile])
            cell_top, cell_left = 1 + (k // 3) * cell, 1 + (k % 3) * cell  # (32 - 30) // 2 = 1 px margin
            assert cell_top <= top <= cell_top + cell - tile and cell_left <= left <= cell_left + cell - tile
            offsets.add((top - cell_top, left - cell_left))
    assert len(offsets) > 3  # the crop position inside a cell is random

    normed, again = jigsaw_tiles(torch.rand(4, 3, size, size, generator=_gen(1)) * 5 + 2, identity, _gen(0))
    flat = normed.flatten(2)
    torch.testing.assert_close(flat.mean(-1), torch.zeros(4, 9), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(-1, unbiased=False), torch.ones(4, 9), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="too small"):
        jigsaw_tiles(torch.rand(1, 3, 5, 5), identity)


# ---------------------------------------------------------------- jigsaw method


def test_jigsaw_learns_its_pretext_task():
    # 4 px tiles of the toy batch carry little beyond the bright square: fewer classes, gentler crops
    assert_method_learns("jigsaw", "tiny_cnn", {"num_permutations": 4, "grayscale_p": 0.0, "min_crop_scale": 0.9}, 0.25)


@pytest.mark.parametrize("size", [16, 32])
def test_jigsaw_classifies_the_concatenated_tile_embeddings_in_puzzle_order(size):
    torch.manual_seed(0)
    info = get_method("jigsaw", Modality.IMAGE)
    assert info.cls is Jigsaw and info.family is Family.TRANSFORMATION
    method = Jigsaw(build_encoder({"name": "tiny_cnn", "image_size": size}), size, num_permutations=12)
    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=3, size=size), _gen(0))
    tile = math.floor(64 / 75 * (size // 3))  # 4 px at 16 px, 8 px at 32 px
    assert batch["tiles"].shape == (3, 9, 3, tile, tile) and batch["images"].shape == (3, 3, size, size)
    method.eval()  # no batch statistics: each embedding depends on its own tile only
    out = method.loss(batch)
    features = torch.cat([method.encoder.embed(batch["tiles"][:, i]) for i in range(9)], dim=1)
    expected = F.cross_entropy(method.head(features), batch["labels"])
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.embeddings, method.encoder.embed(batch["images"]))  # whole images


# ---------------------------------------------------------------- block masking


def test_random_block_mask_masks_whole_blocks_at_the_ratio():
    mask = random_block_mask(64, grid_size=8, block=2, mask_ratio=0.6, generator=_gen(0))
    assert mask.shape == (64, 64) and mask.dtype == torch.bool
    blocks = mask.view(64, 4, 2, 4, 2)
    assert torch.all(blocks.all(dim=(2, 4)) == blocks.any(dim=(2, 4)))  # all-or-nothing per 2x2 block
    assert torch.all(blocks[:, :, 0, :, 0].sum(dim=(1, 2)) == math.ceil(0.6 * 16))  # ceil(ratio * blocks)
    assert len({tuple(m.tolist()) for m in mask}) > 50  # independent per sample
    assert torch.equal(mask, random_block_mask(64, 8, 2, 0.6, generator=_gen(0)))
    assert mask.float().mean(0).min() > 0  # every position gets masked sometimes
    with pytest.raises(ValueError, match="multiple"):
        random_block_mask(2, grid_size=8, block=3, mask_ratio=0.6)


# ---------------------------------------------------------------- masked L1 loss


def _ref_masked_patch_l1(pred, target, mask):
    total, count = torch.zeros(()), 0
    for b in range(pred.shape[0]):
        for n in range(pred.shape[1]):
            for j in range(pred.shape[2]):
                if mask[b, n]:
                    total = total + abs(pred[b, n, j] - target[b, n, j])
                    count += 1
    return total / count  # the mean over masked PIXELS (SimMIM eq. 1)


def test_masked_patch_l1_matches_loop_reference():
    g = _gen(4)
    pred, target = torch.randn(3, 5, 6, generator=g), torch.randn(3, 5, 6, generator=g) * 2 + 1
    mask = torch.rand(3, 5, generator=g) < 0.5
    mask[0, 0] = True
    torch.testing.assert_close(masked_patch_l1(pred, target, mask), _ref_masked_patch_l1(pred, target, mask))
    # normalize_target standardises each target patch exactly as MAE's loss does
    t = (target - target.mean(-1, keepdim=True)) / torch.sqrt(target.var(-1, unbiased=False, keepdim=True) + 1e-6)
    torch.testing.assert_close(masked_patch_l1(pred, target, mask, normalize_target=True),
                               _ref_masked_patch_l1(pred, t, mask))
    assert masked_patch_l1(pred, target, mask) != masked_patch_mse(pred, target, mask, normalize_target=False)

    pred.requires_grad_(True)
    zero = masked_patch_l1(pred, target, torch.zeros(3, 5, dtype=torch.bool))
    assert zero.item() == 0 and zero.requires_grad
    with pytest.raises(ValueError, match="masked_patch_l1"):
        masked_patch_l1(pred, target[:, :4], mask)


# ---------------------------------------------------------------- SimMIM method


def test_simmim_learns_its_pretext_task():
    # Like MAE, masked-patch regression does not lift the similarity probe on mean-pooled vit_micro
    # features in seconds (toy task, seeds 0-1: 0.63-0.72 at random init, 0.55-0.67 after 10 steps,
    # 0.57-0.67 after 40), so the test asserts the pretext loss on held-out images and no collapse.
    assert_method_learns("simmim", "vit_micro", {}, 0.3, probe_gain=None)


def test_simmim_hides_the_masked_patches_and_predicts_only_them():
    torch.manual_seed(0)
    assert get_method("simmim").family is Family.PREDICTIVE
    encoder = build_encoder({"name": "vit_micro", "image_size": SIZE})
    method = SimMIM(encoder, SIZE)
    batch = method.pretext(Modality.IMAGE)(fixed_batch(n=4), _gen(0))
    mask = batch["mask"]
    assert mask.shape == (4, encoder.num_patches) and mask.float().mean() == pytest.approx(10 / 16)
    assert not any(name.startswith("encoder.") and "mask" in name for name, _ in method.named_parameters())

    # the encoder never sees the masked pixels: scribbling over them changes nothing
    pixel_mask = mask.view(4, 8, 1, 8, 1).expand(4, 8, 2, 8, 2).reshape(4, 1, SIZE, SIZE)
    scribbled = torch.where(pixel_mask, torch.randn(batch["images"].shape, generator=_gen(1)), batch["images"])
    with torch.no_grad():
        hidden = encoder(batch["images"], token_mask=mask, mask_token=method.mask_token)
        torch.testing.assert_close(encoder(scribbled, token_mask=mask, mask_token=method.mask_token), hidden)
        assert not torch.allclose(encoder(scribbled), encoder(batch["images"]))  # the plain encoder does
    assert hidden.shape == (4, 1 + encoder.num_patches, encoder.dim)  # every token goes through (not MAE)

    # the loss is the L1 on the masked patches only, and trains the mask token
    pred = method.head(hidden[:, 1:])
    expected = masked_patch_l1(pred, patchify(batch["images"], encoder.patch_size), mask)
    out = method.loss(batch)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert method.mask_token.grad is not None and method.mask_token.grad.abs().sum() > 0


def test_simmim_refuses_a_cnn_and_a_grid_that_blocks_do_not_tile():
    with pytest.raises(SelfSupError, match="vit"):
        SimMIM(build_encoder({"name": "tiny_cnn", "image_size": SIZE}), SIZE)
    with pytest.raises(SelfSupError, match="mask_block"):
        SimMIM(build_encoder({"name": "vit_micro", "image_size": SIZE}), SIZE, mask_block=3)
