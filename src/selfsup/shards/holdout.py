"""``--method auto``'s hold-out on sharded DATA: whole shards, drawn with the run's seed, are kept out of the
pilots' training and score them (:mod:`selfsup.train.auto`). Both parts are ``*.shards.json`` lists
(:func:`~.sources.write_list`) that DATA may name; nothing is copied."""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import SelfSupError
from .sources import ShardSet, write_list


def hold_out_shards(shards: ShardSet, wanted: int, seed: int, folder: Path, data: str | Path, unit: str):
    """Hold out whole shards, in a seeded order, until they hold at least ``wanted`` samples, always leaving one
    shard for training; ``folder/train.shards.json`` and ``folder/heldout.shards.json`` list the two parts. A
    single shard cannot be split: one line naming the fix."""
    from ..modalities.base import HeldOut

    if len(shards.urls) < 2:
        raise SelfSupError(f"{data}: a single shard; --method auto holds whole shards out to score its pilots and "
                           "needs at least 2: reshard with a smaller --shard-size, or name a method with --method")
    order = list(range(len(shards.urls)))
    random.Random(seed).shuffle(order)
    held: list[int] = []
    while order[1:] and sum(shards.counts[i] for i in held) < wanted:
        held.append(order.pop())
    folder.mkdir(parents=True, exist_ok=True)
    training = write_list(folder / "train.shards.json", shards, sorted(order))
    held_out = write_list(folder / "heldout.shards.json", shards, sorted(held))
    count = sum(shards.counts[i] for i in held)
    return HeldOut(Path(training), Path(held_out), count, shards.total)
