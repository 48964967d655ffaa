"""The text encoder as ``--format onnx`` exports it: ``input_ids`` and ``attention_mask`` (int64 [B, T], from the
tokenizer written beside the model: special tokens added, at most the run's ``max_length`` tokens, padded with its
pad id) in; the embedding pooled as ``selfsup embed`` does (mean over real tokens, or the [CLS] token)."""

from __future__ import annotations

import torch
from torch import nn


class TokensToEmbedding(nn.Module):
    """(input_ids, attention_mask) -> (embedding [B, D] as ``encoder.embed``, token states [B, T, D])."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.encoder({"input_ids": input_ids, "attention_mask": attention_mask})
        return self.encoder.pool(tokens, attention_mask), tokens


def text_graph(loaded):
    """:meth:`~selfsup.modalities.base.Modality.onnx_graph` for text: two example sentences of different lengths,
    tokenised as ``selfsup embed`` tokenises them."""
    from ...evaluation.downstream import TokenBatch
    from ...onnx_export import OnnxGraph
    from .readers import encode_texts

    pad = loaded.encoder.spec.pad_token_id
    ids = encode_texts(["an example", "a second example, a little longer than the first"], loaded.tokenizer,
                       loaded.input_size)
    inputs = TokenBatch(pad)(ids)
    axes = {0: "batch", 1: "length"}
    return OnnxGraph(TokensToEmbedding(loaded.encoder), inputs, {"input_ids": axes, "attention_mask": axes},
                     {"max_length": loaded.input_size, "pad_token_id": pad,
                      "tokenizer": "the Hugging Face tokenizer files beside model.onnx (AutoTokenizer.from_pretrained)"})
