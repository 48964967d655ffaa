"""Interaction logs for ``selfsup inspect``: one item per user (named by the user id), its history's digest
(identical histories are exact duplicates), MinHash of its set of items (or the run's encoder), history length;
malformed rows are the log's unreadable part."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ...inspection.items import ENCODER_THRESHOLD, InspectedItems, digest, minhash_signs
from .readers import read_log

ITEM_SET_THRESHOLD = 0.8
"""Users whose sets of items have an estimated Jaccard similarity of at least 0.8 are near-duplicates (the same
items in another order, or one of ten changed, ≈ 0.82)."""


def inspect_log(data: str | Path, settings, loaded=None, device: str = "cpu", batch_size: int = 256) -> InspectedItems:
    """:meth:`~selfsup.modalities.base.Modality.inspect_items` for an interaction log (``settings``: its columns)."""
    log = read_log(replace(settings, path=str(data), strict=False))
    names = [""] * (log.num_items + 1)
    for raw, i in log.item_map.items():
        names[i] = raw
    histories = [[names[i] for i in h] for h in log.histories]
    unreadable = ([(f"{data}:{log.first_malformed_line}", f"{log.malformed} malformed row(s), the first on this line")]
                  if log.malformed else [])
    digests = [digest("\x1f".join(h).encode("utf-8")) for h in histories]
    stats = {"history length (items)": [len(h) for h in histories]}
    if loaded is None:
        return InspectedItems(list(log.users), digests, minhash_signs(histories), "MinHash of each user's set of items "
                              "(estimated Jaccard)", ITEM_SET_THRESHOLD, list(log.users), stats, None, unreadable)
    from ...evaluation.downstream import TokenBatch
    from ...evaluation.features import extract_features
    from .readers import pad_histories, remap_items

    if loaded.item_map is None:
        from ...errors import SelfSupError

        raise SelfSupError("this sequence encoder has no item map (item_map.json); inspect with its run folder")
    ids, _ = remap_items(log, loaded.item_map)  # items the encoder never saw are left out of the histories
    vectors = extract_features(loaded.encoder, pad_histories(ids, loaded.input_size), TokenBatch(pad_token_id=0),
                               batch_size=batch_size, device=device)
    return InspectedItems(list(log.users), digests, vectors, f"the run's encoder ({loaded.method}, cosine)",
                          ENCODER_THRESHOLD, list(log.users), stats, None, unreadable)
