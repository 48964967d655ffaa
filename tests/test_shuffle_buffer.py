"""``data.shuffle_buffer`` (issue 20): how many samples of sharded DATA are shuffled at a time. 0 or 1 keeps each
shard's own order (only the shard order changes per epoch); a bigger buffer mixes samples further."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsup.config import DataConfig, RunConfig, set_value, validate
from selfsup.errors import SelfSupError
from selfsup.shards.dataset import ShardedSamples
from selfsup.shards.sources import shard_set
from selfsup.shards.tar import SUFFIXES, count_tar, tar_samples

from test_shards import sample_id, write_tars

SIZES = (40, 40, 40)


def epoch_ids(folder: Path, buffer: int, epoch: int = 0) -> list[int]:
    shards = shard_set(str(folder), SUFFIXES, count_tar, strict=True)
    samples = ShardedSamples(shards, tar_samples, sample_id, (ValueError,), batch_size=4, world_size=1,
                             buffer=buffer, seed=3)
    samples.set_epoch(epoch)
    return [sample for sample, _ in samples]


def displacement(ids: list[int]) -> float:
    """Mean distance of each sample from its place in the epoch's shard order (shards laid end to end)."""
    by_shard = sorted(ids, key=lambda n: (ids.index(min(m for m in ids if m // 40 == n // 40)), n))
    place = {n: i for i, n in enumerate(by_shard)}
    return sum(abs(i - place[n]) for i, n in enumerate(ids)) / len(ids)


@pytest.mark.parametrize("buffer", [0, 1])
def test_no_buffer_keeps_each_shards_order(tmp_path, buffer):
    write_tars(tmp_path, SIZES)
    for epoch in range(2):
        ids = epoch_ids(tmp_path, buffer, epoch)
        assert sorted(ids) == list(range(sum(SIZES)))
        runs = [ids[i:i + 40] for i in range(0, len(ids), 40)]  # whole shards, one after the other, in order
        assert all(run == list(range(run[0], run[0] + 40)) and run[0] % 40 == 0 for run in runs)
        assert displacement(ids) == 0
    assert epoch_ids(tmp_path, 0, 0) != epoch_ids(tmp_path, 0, 1)  # the shard order still changes per epoch


def test_a_bigger_buffer_mixes_more(tmp_path):
    write_tars(tmp_path, SIZES)
    mixed = {buffer: displacement(epoch_ids(tmp_path, buffer)) for buffer in (1, 4, 32, 120)}
    assert mixed[1] == 0 < mixed[4] < mixed[32] < mixed[120]
    for buffer in (4, 120):
        assert sorted(epoch_ids(tmp_path, buffer)) == list(range(sum(SIZES)))  # still every sample once


def test_the_setting_reaches_the_shard_loader_and_is_checked(tmp_path):
    from selfsup.modalities.image.training import load_image_shards

    write_tars(tmp_path, SIZES)
    assert DataConfig().shuffle_buffer == 1000
    shards = shard_set(str(tmp_path), SUFFIXES, count_tar, strict=True)
    train = load_image_shards(DataConfig(shuffle_buffer=7), shards)
    from selfsup.config import TrainerConfig

    loader = train.make_loader(lambda images, generator=None: images, 4, TrainerConfig(num_workers=0), 1)
    assert loader.dataset.buffer == 7
    cfg = RunConfig()
    set_value(cfg, "data.shuffle_buffer", -1)
    with pytest.raises(SelfSupError, match="data.shuffle_buffer"):
        validate(cfg)
