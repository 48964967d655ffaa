"""Downstream evaluation of a sequence encoder on the interaction log it was trained on.

- ``ranking``: leave-one-out next-item recommendation (Kang & McAuley 2018, SASRec §IV-A; Sun et al. 2019,
  BERT4Rec §4.1): each user's last item is the test target and the second to last the validation target
  (pretraining never saw either); the encoder scores every item after the history that precedes the target
  (:meth:`SequenceEncoder.next_item_scores`), the user's earlier items are left out of the ranking, and HR@k /
  NDCG@k are taken over the full catalogue. Rows: protocol ``ranking`` (test) and ``ranking_valid``, one per
  metric, with ``label_fraction`` and ``n_labels`` 0; the popularity baseline (items ranked by their number of
  training interactions) is the ``encoder: "baseline"`` row.
- user attributes: a .csv/.tsv of ``user,label`` rows; each labeled user's most recent ``max_length`` items are
  the input, and knn / linear / finetune run at label fractions as for the other modalities.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import fields
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .readers import InteractionLog, grow_item_map, leave_one_out, load_user_labels, pad_histories, read_log
from ...encoders import Encoder
from ...errors import SelfSupError
from ...shards.sources import is_pattern_or_url
from ...evaluation.label_efficiency import EvalResult, run_label_efficiency
from ...evaluation.ranking import popularity_scores, ranking_metrics

POPULARITY = "baseline"
logger = logging.getLogger("selfsup")


def _read_log(loaded, **changes) -> InteractionLog:
    """A log read with the run's column settings (``changes`` override them, e.g. another path)."""
    from ...config import DataConfig

    settings = {**(loaded.data or {}), **changes}
    return read_log(DataConfig(**{f.name: settings[f.name] for f in fields(DataConfig) if f.name in settings}))


def run_log(loaded) -> InteractionLog:
    """The interaction log ``loaded`` was trained on, checked against its item map."""
    if loaded.data is None or loaded.item_map is None:
        raise SelfSupError("this encoder has no interaction log or item map recorded; evaluate its run folder")
    path = loaded.data["path"]
    if not Path(path).expanduser().exists() and not is_pattern_or_url(path):
        raise SelfSupError(f"{path}: the interaction log this encoder was trained on is missing; "
                           "put it back there (evaluation re-reads it for the held-out items)")
    log, new = grow_item_map(_read_log(loaded), loaded.item_map)
    if new:
        raise SelfSupError(f"{path}: its items differ from the ones the encoder was trained on "
                           "(item_map.json); the log changed since training — retrain on it")
    return log


def _scores(encoder: Encoder, inputs: list[np.ndarray], max_length: int, device: str) -> Callable[[list[int]], Tensor]:
    def score(rows: list[int]) -> Tensor:
        ids = pad_histories([inputs[r] for r in rows], max_length).to(device)
        with torch.inference_mode():
            return encoder.next_item_scores({"input_ids": ids, "attention_mask": (ids != 0).long()}).float().cpu()

    return score


def evaluate_ranking(loaded, encoders: dict[str, Encoder], device: str, ks: Sequence[int] = (10,),
                     chunk: int = 256) -> list[EvalResult]:
    """HR@k and NDCG@k of each encoder and of popularity on the run's leave-one-out split (validation and test)."""
    log = run_log(loaded)
    split = leave_one_out(log)
    if not len(split.valid_users):
        raise SelfSupError(f"{loaded.data['path']}: no user has 3 or more interactions, so there is nothing to hold "
                           "out for ranking; each evaluated user needs a validation and a test item")
    popularity = popularity_scores(split.train, log.num_items)
    splits = {"ranking": (split.test_inputs, split.test_targets),
              "ranking_valid": (split.valid_inputs, split.valid_targets)}
    results: list[EvalResult] = []
    for encoder in encoders.values():
        encoder.to(device).eval()
    for protocol, (inputs, targets) in splits.items():
        users = list(range(len(inputs)))
        scorers = {name: _scores(encoder, inputs, loaded.input_size, device) for name, encoder in encoders.items()}
        scorers[POPULARITY] = lambda rows: popularity.expand(len(rows), -1)
        for name, score in scorers.items():
            metrics = ranking_metrics(score, users, targets, inputs, log.num_items, ks=ks, chunk=chunk)
            results += [EvalResult(protocol, 0.0, 0, name, metric, value) for metric, value in metrics.items()]
    return results


def _labeled_users(loaded, log: InteractionLog, path: str | Path, classes: list[str] | None) -> tuple[Tensor, Tensor, list[str]]:
    indices, names = load_user_labels(path, log)
    if classes is None:
        classes = sorted(set(names))
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise SelfSupError(f"{path}: label(s) {', '.join(map(repr, unknown[:3]))} are not in the training labels "
                           f"({', '.join(classes[:10])}); fix them or add training users with them")
    labels = torch.tensor([classes.index(name) for name in names], dtype=torch.long)
    return pad_histories([log.histories[i] for i in indices], loaded.input_size), labels, classes


def evaluate_user_attributes(loaded, encoders: dict[str, Encoder], train: str | Path, test: str | Path,
                             protocols: list[str], fractions: list[float], seed: int, device: str,
                             finetune_steps: int | None = None,
                             progress: Callable[[str], None] | None = None) -> list[EvalResult]:
    """Label efficiency of predicting a user attribute from the user's history (pooled encoder states)."""
    from ...evaluation.downstream import TokenBatch

    log = run_log(loaded)
    train_inputs, train_labels, classes = _labeled_users(loaded, log, train, None)
    test_inputs, test_labels, _ = _labeled_users(loaded, log, test, classes)
    batch = TokenBatch(pad_token_id=0)  # item id 0 is padding; dropout is the fine-tuning noise
    return run_label_efficiency(
        encoders, train_inputs, train_labels, test_inputs, test_labels, protocols=protocols, fractions=fractions,
        train_transform=batch, eval_transform=batch, seed=seed, device=device,
        finetune_kwargs={"steps": finetune_steps} if finetune_steps else None, progress=progress,
    )


def item_embeddings_path(out: str | Path) -> Path:
    """Where ``selfsup embed`` puts the item embeddings of a sequence run: next to the users' file,
    ``NAME.items.EXT`` (a folder of parts ``NAME``: ``NAME.items.parquet``)."""
    out = Path(out).expanduser()
    return out.with_name(f"{out.stem}.items{out.suffix or '.parquet'}")


def user_source(loaded, data: str | Path, strict: bool = False):
    """The users of the log ``data`` (which may hold new users) for ``selfsup embed``: each one's most recent items,
    pooled by the encoder. Items the encoder was not trained on have no embedding and are dropped from the histories
    (counted in a warning); users left without items have no row."""
    from ...embedding import EmbedSource
    from ...evaluation.downstream import TokenBatch
    from .readers import item_lookup, remap_history

    if loaded.item_map is None:
        raise SelfSupError("this sequence encoder has no item map (item_map.json); embed with its run folder")
    log = _read_log(loaded, path=str(data), strict=strict)  # a sharded log: histories memory-mapped, not copied
    lookup = item_lookup(log, loaded.item_map)
    known, dropped = [], 0
    for i, history in enumerate(log.histories):  # counted here, remapped a batch at a time while embedding
        kept = int(np.count_nonzero(lookup[history]))
        dropped += len(history) - kept
        if kept:
            known.append(i)
    if dropped:
        logger.warning("%s: %d interaction(s) with items the encoder was not trained on were left out of the histories",
                       data, dropped)
    if not known:
        raise SelfSupError(f"{data}: none of its items is in the encoder's item map; embed a log of the same catalogue")
    if len(known) < len(log.histories):
        logger.warning("%s: %d user(s) with only unknown items have no embedding (rows follow the sorted ids of the "
                       "others; a .parquet file names them)", data, len(log.histories) - len(known))
    return EmbedSource("user", ((str(log.users[i]), log.histories[i]) for i in known),
                       lambda item: (item[0], remap_history(lookup, item[1])),
                       partial(pad_histories, max_length=loaded.input_size), TokenBatch(pad_token_id=0), len(known),
                       unit="users")


def write_item_embeddings(loaded, out: str | Path) -> Path:
    """Every item's embedding (its row of the item table) to :func:`item_embeddings_path`."""
    from ...artifacts import write_embeddings

    by_id = sorted(loaded.item_map.items(), key=lambda pair: pair[1])
    with torch.no_grad():
        table = loaded.encoder.item_embeddings.weight[[i for _, i in by_id]].detach().float().cpu()
    return write_embeddings(table, [raw for raw, _ in by_id], item_embeddings_path(out), key="item")
