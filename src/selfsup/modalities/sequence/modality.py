"""Behaviour sequences as selfsup sees them: per-user item histories, at most ``data.max_length`` items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base import Modality, given


class SequenceModality(Modality):
    def load_train_data(self, data, run_dir: Path, progress: bool = True):
        from .training import load_sequence_data

        return load_sequence_data(data, run_dir)

    def shard_source(self, data, encoding="utf-8", text_field="text"):
        from .readers import log_shard_source

        return log_shard_source(data)

    def hold_out(self, data, limit, seed, folder):
        """Whole users of the log held out (all their rows) into ``folder/heldout.<ext>``, the other rows in
        ``folder/train.<ext>`` (:func:`.readers.hold_out_users`)."""
        from .readers import hold_out_users

        return hold_out_users(data, limit, seed, folder, self.info.unit)

    def input_size(self, data: dict[str, Any]) -> int:
        return int(data["max_length"])

    def stored_data_settings(self, stored, config):
        """The stored item map (``data.item_map``: its items keep their ids and embeddings, the new log's new items
        are added after them) and ``max_length`` unless ``--max-length`` is given (position embeddings)."""
        from .readers import ITEM_MAP_FILE

        settings = {"data.item_map": str(stored.folder / ITEM_MAP_FILE)}
        return settings if given(config, "max_length") else {**settings, "data.max_length": stored.input_size}

    # ------------------------------------------------------------------ run folders and exports
    def load_extras(self, folder: Path, data: dict[str, Any] | None, export: bool) -> dict[str, Any]:
        """The item map (item id -> embedding row) and the data settings: evaluation re-reads the log for the
        held-out items, with the run's columns."""
        from .readers import ITEM_MAP_FILE, load_item_map

        return {"item_map": load_item_map(folder / ITEM_MAP_FILE), "data": data}

    def save_extras(self, loaded, out: Path) -> None:
        from .readers import ITEM_MAP_FILE, save_item_map

        save_item_map(loaded.item_map, out / ITEM_MAP_FILE)

    def onnx_graph(self, loaded):
        """``item_ids`` from the exported item map, 0 = padding (:mod:`.onnx_graph`)."""
        from .onnx_graph import sequence_graph

        return sequence_graph(loaded)

    # ------------------------------------------------------------------ evaluation
    def evaluate_labeled(self, loaded, encoders, train, test, protocols, fractions, baselines, seed, device,
                         encoding="utf-8", finetune_steps=None, progress=None):
        """User attributes: a .csv/.tsv of ``user,label`` rows; each user's most recent items are the input."""
        from .evaluation import evaluate_user_attributes

        return evaluate_user_attributes(loaded, encoders, train, test, protocols, fractions, seed, device,
                                        finetune_steps=finetune_steps, progress=progress)

    def evaluate_pairwise(self, loaded, encoders, test, baselines, seed, device, encoding="utf-8"):
        """Leave-one-out next-item ranking on the run's own log, with a popularity baseline."""
        from .evaluation import evaluate_ranking

        return evaluate_ranking(loaded, encoders, device)

    # ------------------------------------------------------------------ the run report
    def report_sample(self, loaded, data, limit, seed, settings, device):
        """Users of the log embedded from their histories (:mod:`.report`)."""
        from .report import report_sample

        return report_sample(loaded, data, limit, seed, device)

    def report_items(self, loaded, references, settings):
        """Each user as the ids of their most recent items (:mod:`.report`)."""
        from .report import report_items

        return report_items(loaded, references)

    def embed_source(self, loaded, data, strict=False, encoding="utf-8", text_field="text"):
        """One row per user of the log ``data`` (its pooled history; ``user`` names it)."""
        from .evaluation import user_source

        return user_source(loaded, data, strict=strict)

    def embed(self, loaded, data, out, batch_size, device, strict=False, encoding="utf-8", text_field="text",
              options=None):
        """The users (:meth:`embed_source`), and one row per item next to them (``NAME.items.EXT``)."""
        from .evaluation import write_item_embeddings

        written = super().embed(loaded, data, out, batch_size, device, strict=strict, options=options)
        return {**written, "item embeddings": write_item_embeddings(loaded, out)}

    # ------------------------------------------------------------------ data inspection
    def inspect_items(self, data, settings, loaded, device, batch_size):
        """Users of the log (named by their ids): their history's digest, MinHash of their set of items (or the
        run's encoder), history length; malformed rows are reported as unreadable."""
        from .inspection import inspect_log

        return inspect_log(data, settings, loaded, device, batch_size)
