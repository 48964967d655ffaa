"""What the run report shows of behaviour sequences: users embedded from their histories, and each user as the
ids of their most recent items."""

from __future__ import annotations

from pathlib import Path

from ...errors import SelfSupError
from ..base import DataSample, ItemView, sample_of
from .evaluation import _read_log
from .readers import pad_histories, remap_items

SHOWN_ITEMS = 8  # most recent items shown per user


def report_sample(loaded, data: str | Path, limit: int, seed: int, device: str) -> DataSample:
    """Up to ``limit`` users of the log ``data`` with items the encoder knows, embedded from their most recent
    items (as ``selfsup embed``)."""
    from ...evaluation.downstream import TokenBatch
    from ...evaluation.features import extract_features

    if loaded.item_map is None:
        raise SelfSupError("this sequence encoder has no item map (item_map.json)")
    log = _read_log(loaded, path=str(data))
    histories, _ = remap_items(log, loaded.item_map)
    known = [(user, history) for user, history in zip(log.users, histories) if len(history)]
    chosen, total = sample_of(known, limit, seed)
    ids = pad_histories([history for _, history in chosen], loaded.input_size)
    feats = extract_features(loaded.encoder, ids, TokenBatch(pad_token_id=0), device=device)
    return DataSample(feats, [user for user, _ in chosen], total)


def report_items(loaded, users: list[str]) -> list[ItemView]:
    """Each user's id, number of interactions and most recent item ids (newest last), from the run's log."""
    log = _read_log(loaded)
    names = {own: raw for raw, own in log.item_map.items()}
    histories = dict(zip(log.users, log.histories))
    views = []
    for user in users:
        history = histories.get(str(user))
        if history is None:
            views.append(ItemView(f"user {user} (not in the log now)"))
            continue
        recent = ", ".join(names[int(i)] for i in history[-SHOWN_ITEMS:])
        more = "…, " if len(history) > SHOWN_ITEMS else ""
        views.append(ItemView(f"user {user} · {len(history)} items: {more}{recent}"))
    return views
