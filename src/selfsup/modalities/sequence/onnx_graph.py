"""The sequence encoder as ``--format onnx`` exports it: ``item_ids`` (int64 [B, T], each history's most recent
items at most the run's ``max_length``, ids from the ``item_map.json`` beside the model, 0 = padding) in; the user
embedding pooled as ``selfsup embed`` does (the last real position's state, or the mean over real positions)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ItemsToEmbedding(nn.Module):
    """item_ids -> (user embedding [B, D] as ``encoder.embed``, position states [B, T, D])."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (item_ids != 0).long()
        tokens = self.encoder({"input_ids": item_ids, "attention_mask": mask})
        return self.encoder.pool(tokens, mask), tokens


def sequence_graph(loaded):
    """:meth:`~selfsup.modalities.base.Modality.onnx_graph` for sequences: two example histories of different
    lengths (right-padded as ``selfsup embed`` pads them)."""
    from ...onnx_export import OnnxGraph
    from .readers import pad_histories

    items = max(1, loaded.encoder.num_items)
    length = max(1, min(4, loaded.input_size))
    ids = pad_histories([np.arange(1, length + 1) % items + 1, np.array([items])], loaded.input_size)
    return OnnxGraph(ItemsToEmbedding(loaded.encoder), {"item_ids": ids}, {"item_ids": {0: "batch", 1: "length"}},
                     {"max_length": loaded.input_size, "padding_id": 0,
                      "item_map": "item_map.json beside model.onnx: the log's item id -> item_ids value"})
