"""The behaviour-sequence training data path: interaction log → per-user item histories → batches.

The log is read once (in memory, or grouped on disk for parquet shards: :mod:`.grouped`), its item map saved
to ``RUN/item_map.json`` (the item embedding rows are tied to its ids; a resumed run reuses it), and each
user's LAST TWO items are held out
(leave-one-out: validation and test targets of ``evaluate --protocol ranking``), so pretraining never sees
them. A training history longer than ``data.max_length`` is cut into windows of that length (consecutive
windows share one item, so every transition is trained on and nothing is thrown away). Batches are dicts
``{input_ids, attention_mask}`` [B, T] of windows, right-padded with 0; the method's pretext (next-item targets, masks, augmentations) runs on
the training device.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ...config import DataConfig, TrainerConfig
from .grouped import GroupedWindows, group_log, stream_shards
from .readers import (ITEM_MAP_FILE, InteractionLog, grown_item_map, history_windows, leave_one_out, load_item_map,
                      log_columns, pad_histories, read_interactions, remap_items, save_item_map)
from ...errors import SelfSupError
from ...methods.base import Pretext
from ...train.sources import LoaderFactory, TrainData

logger = logging.getLogger("selfsup")

GROUPED_DIR = "histories"  # a log grouped on disk, in the run folder (:mod:`.grouped`)


class HistoryCollator:
    """Item histories (int64 arrays) → ``{input_ids, attention_mask}`` [B, T], right-padded with 0."""

    def __call__(self, histories: list[np.ndarray]) -> dict[str, torch.Tensor]:
        ids = pad_histories(histories)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def run_item_map(data: DataConfig, run_dir: Path, own: dict[str, int]) -> dict[str, int]:
    """The run's item map for a log whose own map is ``own``: ``RUN/item_map.json`` when the run has one (resuming:
    the log may not bring new items), else ``data.item_map`` grown by the log's new items (``--init RUN``: the
    earlier run's items keep their ids, the new ones are added after them and reported), else ``own``."""
    saved = run_dir / ITEM_MAP_FILE
    if saved.exists():
        item_map, new = grown_item_map(own, load_item_map(saved))
        if new:
            raise SelfSupError(f"{data.path}: its items differ from the ones {run_dir} was trained on ({saved}: "
                               f"{len(new)} new, e.g. {new[0]!r}); use a new --out folder for a new log")
        return item_map
    if not data.item_map:
        return own
    known = load_item_map(data.item_map)
    item_map, new = grown_item_map(own, known)
    kept = len(own) - len(new)
    examples = ", ".join(repr(name) for name in new[:3]) + (", ..." if len(new) > 3 else "")
    logger.warning("%s: %d item(s) known from %s keep their embeddings; %d new item(s)%s start from fresh ones; "
                   "%d known item(s) not in this log stay in the item map (%d items in all)", data.path, kept,
                   data.item_map, len(new), f" ({examples})" if new else "", len(known) - kept, len(item_map))
    return item_map


def prepared_log(data: DataConfig, run_dir: Path) -> InteractionLog:
    """The log of ``data`` read in memory, in the run's item ids (:func:`run_item_map`)."""
    read = read_interactions(data.path, log_columns(data), min_rating=data.min_rating, strict=data.strict)
    item_map = run_item_map(data, run_dir, read.item_map)
    if item_map is read.item_map:
        return read
    histories, _ = remap_items(read, item_map)  # every item of the log is in the run's map: nothing is dropped
    return replace(read, histories=histories, item_map=item_map)


def _loader(histories, collate: HistoryCollator) -> LoaderFactory:
    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        workers = trainer.num_workers
        return DataLoader(histories, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate,
                          num_workers=workers, persistent_workers=workers > 0)

    return make_loader


def load_sequence_data(data: DataConfig, run_dir: Path) -> TrainData:
    """The training histories of ``data`` as :class:`TrainData`: held in memory (one int64 per interaction), or,
    for parquet shards and ``--cache stream`` (:func:`~.grouped.stream_shards`), grouped into ``RUN/histories/``
    and memory-mapped (:mod:`.grouped`). Both give the same windows in the same order."""
    if data.max_length < 2:
        raise SelfSupError(f"data.max_length={data.max_length} is too short for a history; use 50 or more")
    shards = stream_shards(data)
    if shards is not None:
        grouped = group_log(data, shards, run_dir / GROUPED_DIR, lambda items: run_item_map(
            data, run_dir, {name: i for i, name in enumerate(items, start=1)}), max_length=data.max_length)
        item_map, histories = grouped.item_map, GroupedWindows(grouped.folder)
    else:
        log = prepared_log(data, run_dir)
        item_map = log.item_map
        histories = [w for h in leave_one_out(log).train if len(h) >= 2 for w in history_windows(h, data.max_length)]
    if len(histories) < 2:
        raise SelfSupError(f"{data.path}: fewer than 2 users have 2 or more training interactions; "
                           "a history needs at least 2 items (after the 2 held out per user)")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_item_map(item_map, run_dir / ITEM_MAP_FILE)
    encoder_kwargs = {"num_items": len(item_map), "max_length": data.max_length}
    return TrainData(len(histories), data.max_length, encoder_kwargs, _loader(histories, HistoryCollator()),
                     pretext_in_loader=False, unit="histories")
