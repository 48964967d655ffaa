"""The behaviour-sequence training data path: interaction log → per-user item histories → batches.

The log is read once (``data/sequences.py``), its item map saved to ``RUN/item_map.json`` (the item
embedding rows are tied to its ids; a resumed run reuses it), and each user's LAST TWO items are held out
(leave-one-out: validation and test targets of ``evaluate --protocol ranking``), so pretraining never sees
them. A training history longer than ``data.max_length`` is cut into windows of that length (consecutive
windows share one item, so every transition is trained on and nothing is thrown away). Batches are dicts
``{input_ids, attention_mask}`` [B, T] of windows, right-padded with 0; the method's pretext (next-item targets, masks, augmentations) runs on
the training device.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ...config import DataConfig, TrainerConfig
from .readers import (ITEM_MAP_FILE, InteractionLog, grow_item_map, history_windows, leave_one_out, load_item_map,
                      pad_histories, read_log, save_item_map)
from ...errors import SelfSupError
from ...methods.base import Pretext
from ...train.sources import TrainData

logger = logging.getLogger("selfsup")


class HistoryCollator:
    """Item histories (int64 arrays) → ``{input_ids, attention_mask}`` [B, T], right-padded with 0."""

    def __call__(self, histories: list[np.ndarray]) -> dict[str, torch.Tensor]:
        ids = pad_histories(histories)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def prepared_log(data: DataConfig, run_dir: Path) -> InteractionLog:
    """The log of ``data`` in the run's item ids: those of ``RUN/item_map.json`` when the run has one (resuming:
    the log may not bring new items), else those of ``data.item_map`` (``--init RUN``: the earlier run's items keep
    their ids, the log's new items are added after them and reported), else the log's own."""
    read = read_log(data)
    saved = run_dir / ITEM_MAP_FILE
    if saved.exists():
        log, new = grow_item_map(read, load_item_map(saved))
        if new:
            raise SelfSupError(f"{data.path}: its items differ from the ones {run_dir} was trained on ({saved}: "
                               f"{len(new)} new, e.g. {new[0]!r}); use a new --out folder for a new log")
        return log
    if not data.item_map:
        return read
    known = load_item_map(data.item_map)
    log, new = grow_item_map(read, known)
    kept = len(read.item_map) - len(new)
    examples = ", ".join(repr(name) for name in new[:3]) + (", ..." if len(new) > 3 else "")
    logger.warning("%s: %d item(s) known from %s keep their embeddings; %d new item(s)%s start from fresh ones; "
                   "%d known item(s) not in this log stay in the item map (%d items in all)", data.path, kept,
                   data.item_map, len(new), f" ({examples})" if new else "", len(known) - kept, len(log.item_map))
    return log


def load_sequence_data(data: DataConfig, run_dir: Path) -> TrainData:
    """The training histories of ``data`` as :class:`TrainData` (held in memory: one int64 per interaction)."""
    if data.max_length < 2:
        raise SelfSupError(f"data.max_length={data.max_length} is too short for a history; use 50 or more")
    log = prepared_log(data, run_dir)
    saved = run_dir / ITEM_MAP_FILE
    histories = [w for h in leave_one_out(log).train if len(h) >= 2 for w in history_windows(h, data.max_length)]
    if len(histories) < 2:
        raise SelfSupError(f"{data.path}: fewer than 2 users have 2 or more training interactions; "
                           "a history needs at least 2 items (after the 2 held out per user)")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_item_map(log.item_map, saved)
    collate = HistoryCollator()

    def make_loader(pretext: Pretext, batch_size: int, trainer: TrainerConfig, world_size: int) -> DataLoader:
        workers = trainer.num_workers
        return DataLoader(histories, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate,
                          num_workers=workers, persistent_workers=workers > 0)

    encoder_kwargs = {"num_items": log.num_items, "max_length": data.max_length}
    return TrainData(len(histories), data.max_length, encoder_kwargs, make_loader, pretext_in_loader=False,
                     unit="histories")
