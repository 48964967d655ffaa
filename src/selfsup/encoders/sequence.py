"""Sequence encoders: transformer stacks over item-id histories (user-behaviour sequences).

Item ids: 0 = padding, 1..num_items = items, num_items + 1 = [MASK] (BERT4Rec), so the vocabulary has
num_items + 2 rows. Causal encoders are GPT-2 stacks as in SASRec (Kang & McAuley 2018, causal
self-attention); bidirectional ones are BERT stacks as in BERT4Rec (Sun et al. 2019). Models are built
from transformers configs (random init, no download). ``forward`` gives hidden states [B, T, D].
``pool`` (the user embedding) takes the state at the last real position (``pool="last"``, the causal
default: the user state that predicts the next item) or averages the real positions (``pool="mean"``, the
bidirectional default; a causal encoder may use it too, as a longer-term summary of the user).
``score_items`` multiplies states by the item embedding table (the tied output layer of SASRec and
BERT4Rec); ``next_item_scores`` scores the item after each history.

Position ids count real items only (``cumsum(attention_mask) - 1``), so a history gets the same
states whether it is right- or left-padded.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ..errors import SelfSupError, did_you_mean
from ..registry import register_encoder
from .base import Encoder
from .text import _from_config

log = logging.getLogger("selfsup")


class SequenceEncoder(Encoder):
    """A transformers base model over item ids; inputs are dicts with "input_ids" and "attention_mask" [B, T]."""

    def __init__(self, hf_model: nn.Module, num_items: int, causal: bool, max_length: int, config: dict,
                 pool: str = "") -> None:
        super().__init__()
        self.hf_model = hf_model
        self.num_items = int(num_items)
        self.mask_item_id = self.num_items + 1
        self.causal = causal
        self.pool_mode = pool or ("last" if causal else "mean")
        self.max_length = int(max_length)
        self.dim = int(hf_model.config.hidden_size)
        self.config = config

    @property
    def item_embeddings(self) -> nn.Embedding:
        """The item embedding table [num_items + 2, D] (the input table, tied to the output layer)."""
        return self.hf_model.get_input_embeddings()

    def fit_stored(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A stored encoder's weights for an item map that grew (``--init RUN`` on a newer log): known items keep
        their ids (the item map only appends), so rows 0..N_old (padding, items) are copied, the [MASK] row moves
        from N_old + 1 to the new last row, and the new items' rows keep this encoder's fresh initialisation."""
        table = self.item_embeddings.weight
        key = next(name for name, value in self.state_dict(keep_vars=True).items() if value is table)
        stored = state.get(key)
        if stored is None or stored.shape[1:] != table.shape[1:] or not 2 <= stored.shape[0] < table.shape[0]:
            return state  # nothing to grow: the strict load reports any other difference
        rows = table.detach().clone()
        rows[: stored.shape[0] - 1] = stored[:-1]
        rows[-1] = stored[-1]
        return {**state, key: rows}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Hidden states [B, T, D]; padded positions (mask 0) hold values that callers should ignore."""
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = (ids != 0).long()
        if ids.shape[1] > self.max_length:
            raise SelfSupError(f"sequence encoder {self.config.get('name')!r}: histories of {ids.shape[1]} items exceed "
                               f"max_length {self.max_length}; keep the last {self.max_length} items or raise "
                               f"encoder.max_length")
        positions = (mask.long().cumsum(1) - 1).clamp_min(0)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        if self.causal:
            kwargs["use_cache"] = False
        return self.hf_model(**kwargs).last_hidden_state

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The user embedding: the state at each row's last real position (pool "last") or the mean over the
        real positions (pool "mean")."""
        if self.pool_mode == "mean":
            return super().pool(tokens, mask)
        return self._last_state(tokens, mask)

    @staticmethod
    def _last_state(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return tokens[:, -1]
        steps = torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
        last = (mask.long() * steps).argmax(dim=1)  # right- or left-padded alike
        return tokens[torch.arange(tokens.shape[0], device=tokens.device), last]

    def embed(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = (inputs["input_ids"] != 0).long()
        return self.pool(self(inputs), mask)

    def next_item_state(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The state [B, D] that scores the item after each (right-padded) history.

        Causal: the state at the last real item (SASRec). Bidirectional: a [MASK] is appended after the last
        real item (dropping the oldest item of a history already at ``max_length``) and its state is taken,
        BERT4Rec's test-time protocol (Sun et al. 2019, §3.6)."""
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        mask = (ids != 0).long() if mask is None else mask.long()
        if self.causal:
            return self._last_state(self(inputs), mask)
        lengths = mask.sum(1)
        extended = torch.cat([ids * mask, torch.zeros_like(ids[:, :1])], dim=1)
        rows = torch.arange(ids.shape[0], device=ids.device)
        extended[rows, lengths] = self.mask_item_id
        width = min(extended.shape[1], self.max_length)
        kept = (lengths + 1).clamp_max(width)  # items + [MASK] that fit
        start = lengths + 1 - kept  # drop the oldest items that do not fit
        steps = torch.arange(width, device=ids.device)
        index = (start[:, None] + steps).clamp_max(extended.shape[1] - 1)
        new_mask = (steps[None, :] < kept[:, None]).long()
        new_ids = extended.gather(1, index) * new_mask
        states = self({"input_ids": new_ids, "attention_mask": new_mask})
        return states[rows, kept - 1]

    def next_item_scores(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores [B, num_items + 1] of the next item for each history: column 0 (padding) is -inf, [MASK] is
        left out, so column i is item id i."""
        scores = self.score_items(self.next_item_state(inputs))[:, : self.num_items + 1]
        scores[:, 0] = float("-inf")
        return scores

    def score_items(self, states: torch.Tensor) -> torch.Tensor:
        """Scores [..., num_items + 2] of every id (padding and [MASK] included) = states @ item table.T."""
        return states @ self.item_embeddings.weight.T

    def save_pretrained(self, folder: str) -> None:
        """Write the transformers model (config.json + model.safetensors) for ``AutoModel.from_pretrained``.

        Bidirectional encoders have no pooler: load them with ``add_pooling_layer=False``.
        """
        self.hf_model.save_pretrained(folder)


POOLS = ("last", "mean")


def _check(name: str, num_items: int | None, max_length: int, hidden: int, heads: int, pool: str,
           causal: bool) -> None:
    where = f"encoder {name!r}"
    if pool not in ("", *POOLS):
        raise SelfSupError(f"{where}: unknown pool {pool!r}{did_you_mean(pool, POOLS)}; choose one of {', '.join(POOLS)}")
    if pool == "last" and not causal:
        raise SelfSupError(f"{where} is bidirectional: its last state sees the whole history like every other, "
                           "and BERT4Rec pools by the mean; use pool='mean'")
    if num_items is None or int(num_items) < 1:
        raise SelfSupError(f"sequence encoder needs num_items >= 1: {where} got {num_items}; set encoder.num_items "
                           f"in the config (the data pipeline fills it from the item map)")
    if int(max_length) < 1:
        raise SelfSupError(f"{where}: max_length {max_length} must be at least 1; use 50 (SASRec on ML-1M uses 200)")
    if int(hidden) % int(heads):
        raise SelfSupError(f"{where}: hidden_size {hidden} is not divisible by num_heads {heads}; "
                           f"choose num_heads dividing {hidden}")


def _build(name: str, preset: dict[str, Any], causal: bool, num_items: int | None, max_length: int,
           overrides: dict[str, Any], pool: str) -> SequenceEncoder:
    arch = {**preset, **{k: v for k, v in overrides.items() if v is not None}}
    _check(name, num_items, max_length, arch["hidden_size"], arch["num_heads"], pool, causal)
    import transformers

    vocab = int(num_items) + 2  # padding, items, [MASK]
    if causal:
        hf_config = transformers.GPT2Config(
            vocab_size=vocab, n_positions=int(max_length), n_embd=arch["hidden_size"], n_layer=arch["num_layers"],
            n_head=arch["num_heads"], n_inner=arch["intermediate_size"], activation_function=arch["activation"],
            resid_pdrop=arch["dropout"], embd_pdrop=arch["dropout"], attn_pdrop=arch["dropout"],
            bos_token_id=None, eos_token_id=None, pad_token_id=0, use_cache=False,
        )
        model = _from_config(hf_config)
    else:
        hf_config = transformers.BertConfig(
            vocab_size=vocab, hidden_size=arch["hidden_size"], num_hidden_layers=arch["num_layers"],
            num_attention_heads=arch["num_heads"], intermediate_size=arch["intermediate_size"],
            hidden_act=arch["activation"], hidden_dropout_prob=arch["dropout"],
            attention_probs_dropout_prob=arch["dropout"], max_position_embeddings=int(max_length),
            type_vocab_size=1, pad_token_id=0,
        )
        # no pooler: selfsup pools itself, and an unused layer would break DDP's gradient bookkeeping
        model = _from_config(hf_config, add_pooling_layer=False)
    config = {"name": name, "num_items": int(num_items), "max_length": int(max_length)}
    config.update({k: v for k, v in overrides.items() if v is not None})
    if pool:
        config["pool"] = pool
    return SequenceEncoder(model, int(num_items), causal=causal, max_length=int(max_length), config=config, pool=pool)


def _make_builder(name: str, description: str, causal: bool, preset: dict[str, Any]) -> Any:
    """A builder for one preset, taking the keyword arguments shared by every sequence encoder."""

    def builder(num_items: int | None = None, max_length: int = 50, hidden_size: int | None = None,
                num_layers: int | None = None, num_heads: int | None = None, intermediate_size: int | None = None,
                dropout: float | None = None, pool: str = "", image_size: int | None = None) -> SequenceEncoder:
        del image_size  # the engine passes it to every encoder; sequences have no use for it
        overrides = {"hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
                     "intermediate_size": intermediate_size, "dropout": dropout}
        hidden = int(hidden_size) if hidden_size is not None else preset["hidden_size"]
        arch = {**preset, "intermediate_size": preset["ffn_ratio"] * hidden}  # the paper's ratio at any width
        return _build(name, arch, causal, num_items, max_length, overrides, pool)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = description
    return register_encoder(name, description)(builder)


def _arch(hidden: int, layers: int, heads: int, ffn_ratio: int, dropout: float, activation: str) -> dict[str, Any]:
    return {"hidden_size": hidden, "num_layers": layers, "num_heads": heads, "intermediate_size": ffn_ratio * hidden,
            "ffn_ratio": ffn_ratio, "dropout": dropout, "activation": activation}


# SASRec: point-wise feed-forward of width d with ReLU, dropout 0.2 on ML-1M (Kang & McAuley 2018, §III-B, §IV-B)
sasrec_tiny = _make_builder("sasrec_tiny", "SASRec: causal transformer with 2 layers of width 64 (2 heads, "
                            "dropout 0.2); the last position's state predicts the next item", True,
                            _arch(64, 2, 2, 1, 0.2, "relu"))
# BERT4Rec: feed-forward of width 4d with GELU, dropout 0.1 (Sun et al. 2019, §3.3, §4.4)
bert4rec_tiny = _make_builder("bert4rec_tiny", "BERT4Rec: bidirectional transformer with 2 layers of width 64 "
                              "(2 heads, dropout 0.1) for masked item prediction; mean-pooled", False,
                              _arch(64, 2, 2, 4, 0.1, "gelu"))
