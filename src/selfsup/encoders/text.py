"""Text encoders: Hugging Face transformers models behind the selfsup Encoder interface.

Every model is built from a transformers config with ``AutoModel.from_config`` (random init, no
download). Bidirectional BERT encoders (Devlin et al. 2019) serve masked language modelling, SimCSE
and TSDAE; causal GPT-2 decoders (Radford et al. 2019) serve next-token prediction. ``forward`` gives
the last hidden states [B, T, D]; ``pool`` averages the real tokens (``attention_mask == 1``) or takes
the first ([CLS]) token. ``save_pretrained`` writes a folder that ``transformers.AutoModel`` loads.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import SelfSupError, did_you_mean
from ..registry import register_encoder
from .base import Encoder

if TYPE_CHECKING:  # pragma: no cover - transformers is imported when a text encoder is built (1-2 s)
    import transformers

log = logging.getLogger("selfsup")

POOLS = ("mean", "cls")


@dataclass(frozen=True)
class TokenSpec:
    """Vocabulary size and the ids of the special tokens a text encoder was built for."""

    vocab_size: int
    pad_token_id: int = 0
    unk_token_id: int = 1
    cls_token_id: int = 2
    sep_token_id: int = 3
    mask_token_id: int = 4
    language_ids: tuple[int, ...] = ()  # language tags of a multilingual tokenizer (mBART; modalities/text/languages)

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ids of [PAD] [UNK] [CLS] [SEP] [MASK], in that order, then the language tags'."""
        return (self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id,
                *self.language_ids)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a config records them (no ``language_ids`` key for a one-language tokenizer)."""
        record: dict[str, Any] = asdict(self)
        languages = record.pop("language_ids")
        return {**record, "language_ids": list(languages)} if languages else record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenSpec:
        """The spec from a dict holding (at least) its fields; other keys are ignored."""
        return cls(**{name: _spec_value(name, data[name]) for name in cls.__dataclass_fields__ if name in data})


def _spec_value(name: str, value: Any) -> Any:
    """A TokenSpec field from a config: ``language_ids`` a tuple of ints, every other field an int."""
    return tuple(int(v) for v in value or ()) if name == "language_ids" else int(value)


class TextEncoder(Encoder):
    """A transformers base model (no head); inputs are dicts with "input_ids" and "attention_mask" [B, T]."""

    def __init__(self, hf_model: nn.Module, spec: TokenSpec, causal: bool, max_length: int,
                 pool: str, config: dict, lm_head: nn.Module | None = None) -> None:
        super().__init__()
        self.hf_model = hf_model
        # a checkpoint's own LM head (hf_text), kept out of the encoder's weights: the method that uses it owns it
        self._lm_head: tuple[nn.Module, ...] = (lm_head,) if lm_head is not None else ()
        self.spec = spec
        self.causal = causal
        self.max_length = max_length
        self.pool_mode = pool
        self.dim = int(hf_model.config.hidden_size)
        self.config = config

    @property
    def input_embeddings(self) -> nn.Embedding:
        """The word embedding table (to tie the weights of an MLM/CLM output layer)."""
        return self.hf_model.get_input_embeddings()

    def fit_stored(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A stored encoder's weights for a tokenizer that has since gained tokens (``--init RUN`` with
        ``data.languages``: the language tags): every vocabulary-sized table (word embeddings, a BART's tied output
        layer and its logits bias) keeps its rows and grows new ones at the mean of the stored rows, as
        transformers' ``resize_token_embeddings`` does (Hewitt 2021)."""
        own = self.state_dict()
        vocab = self.spec.vocab_size
        grown = dict(state)
        for key, stored in state.items():
            target = own.get(key)
            if target is None or stored.ndim != target.ndim or stored.shape == target.shape:
                continue
            differ = [d for d in range(stored.ndim) if stored.shape[d] != target.shape[d]]
            if len(differ) != 1 or target.shape[differ[0]] != vocab or stored.shape[differ[0]] >= vocab:
                continue  # not a vocabulary that grew: the strict load reports it
            axis = differ[0]
            mean = stored.float().mean(dim=axis, keepdim=True).to(stored.dtype)
            grown[key] = torch.cat([stored, mean.expand(target.shape[:axis] + (vocab - stored.shape[axis],)
                                                        + target.shape[axis + 1:])], dim=axis)
        return grown

    def lm_head(self) -> nn.Module | None:
        """The language-model head the encoder was loaded with (last hidden states [..., D] -> vocabulary scores
        [..., V], output layer tied to :attr:`input_embeddings`), None when it has none (a fresh head is used)."""
        return self._lm_head[0] if self._lm_head else None

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states [B, T, D]; keys other than input_ids/attention_mask are ignored."""
        kwargs: dict[str, Any] = {"input_ids": inputs["input_ids"], "attention_mask": inputs.get("attention_mask")}
        if self.causal:
            kwargs["use_cache"] = False
        return self.hf_model(**kwargs).last_hidden_state

    @property
    def supports_masking(self) -> bool:  # type: ignore[override]
        """A bidirectional encoder predicts hidden tokens from both sides; a causal one cannot."""
        return not self.causal

    def new_mask_embedding(self) -> None:
        """None: the text's own ``[MASK]`` token hides positions (the input arrives corrupted BERT-style)."""
        if self.causal:
            raise self._cannot_mask()
        return None

    def forward_masked(self, inputs: dict[str, torch.Tensor], positions: torch.Tensor,
                       mask_embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` already hide ``positions`` (replaced by ``[MASK]``, random or kept tokens, BERT's 80/10/10):
        (token states [B, T, D], mean over the real tokens [B, D])."""
        if self.causal:
            raise self._cannot_mask()
        out = self(inputs)
        return out, self.pool(out, inputs["attention_mask"])

    def layer_states(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return self.layer_outputs(inputs)

    def position_mask(self, inputs: dict[str, torch.Tensor], length: int) -> torch.Tensor | None:
        """The attention mask: 1 on real tokens, 0 on padding."""
        mask = inputs.get("attention_mask")
        return None if mask is None else mask[:, :length]

    def layer_outputs(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The hidden states [B, T, D] after each transformer layer, first to last (data2vec's targets)."""
        kwargs: dict[str, Any] = {"input_ids": inputs["input_ids"], "attention_mask": inputs.get("attention_mask"),
                                  "output_hidden_states": True}
        if self.causal:
            kwargs["use_cache"] = False
        return list(self.hf_model(**kwargs).hidden_states[1:])

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over real tokens (``mask == 1``), or the first ([CLS]) token when built with pool="cls"."""
        if self.pool_mode == "cls":
            return tokens[:, 0]
        return super().pool(tokens, mask)

    def embed(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return self.pool(self(inputs), inputs.get("attention_mask"))

    def save_pretrained(self, folder: str) -> None:
        """Write the transformers model (config.json + model.safetensors) for ``AutoModel.from_pretrained``.

        BERT encoders have no pooler: load them with ``add_pooling_layer=False`` to skip its random init.
        """
        self.hf_model.save_pretrained(folder)


def _from_config(hf_config: "transformers.PretrainedConfig", **kwargs: Any) -> nn.Module:
    """``AutoModel.from_config`` with PyTorch's fused attention (SDPA) where the model supports it."""
    import transformers

    try:
        return transformers.AutoModel.from_config(hf_config, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as exc:
        log.debug("no SDPA attention for %s (%s); using the default", type(hf_config).__name__, exc)
        return transformers.AutoModel.from_config(hf_config, **kwargs)


def _check(name: str, vocab_size: int | None, max_length: int, pool: str, spec_ids: dict[str, Any],
           hidden: int, heads: int, causal: bool) -> TokenSpec:
    where = f"encoder {name!r}"
    if vocab_size is None:
        raise SelfSupError(f"text encoder needs vocab_size: {where} got none; set encoder.vocab_size in the config "
                           f"(the text data pipeline fills it from the tokenizer)")
    if int(vocab_size) < 5:
        raise SelfSupError(f"{where}: vocab_size {vocab_size} is too small for the 5 special tokens; "
                           f"use the tokenizer's vocabulary size")
    for key, value in spec_ids.items():
        if key == "language_ids":
            if any(not 0 <= int(v) < int(vocab_size) for v in value):
                raise SelfSupError(f"{where}: language_ids {list(value)} reach outside the vocabulary "
                                   f"(0..{int(vocab_size) - 1}); set encoder.vocab_size to the tokenizer's size")
            continue
        if not 0 <= int(value) < int(vocab_size):
            raise SelfSupError(f"{where}: {key}={value} is outside the vocabulary (0..{int(vocab_size) - 1}); "
                               f"set encoder.vocab_size to the tokenizer's vocabulary size")
    if int(max_length) < 2:
        raise SelfSupError(f"{where}: max_length {max_length} leaves no room for [CLS] and [SEP]; use 128 or more")
    if pool not in POOLS:
        raise SelfSupError(f"{where}: unknown pool {pool!r}{did_you_mean(pool, POOLS)}; choose one of {', '.join(POOLS)}")
    if causal and pool == "cls":
        raise SelfSupError(f"{where} is causal: its first token sees nothing else, so pool='cls' is constant; "
                           f"use pool='mean'")
    if hidden % heads:
        raise SelfSupError(f"{where}: hidden_size {hidden} is not divisible by num_heads {heads}; "
                           f"choose num_heads dividing {hidden}")
    return TokenSpec(vocab_size=int(vocab_size), **{k: _spec_value(k, v) for k, v in spec_ids.items()})


def _record(name: str, spec: TokenSpec, max_length: int, pool: str, overrides: dict[str, Any]) -> dict:
    config = {"name": name, **spec.to_dict(), "max_length": int(max_length), "pool": pool}
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def _bert(name: str, preset: dict[str, Any], vocab_size: int | None, max_length: int, pool: str,
          spec_ids: dict[str, Any], overrides: dict[str, Any]) -> TextEncoder:
    arch = {**preset, **{k: v for k, v in overrides.items() if v is not None}}
    spec = _check(name, vocab_size, max_length, pool, spec_ids, arch["hidden_size"], arch["num_heads"], causal=False)
    import transformers

    hf_config = transformers.BertConfig(
        vocab_size=spec.vocab_size, hidden_size=arch["hidden_size"], num_hidden_layers=arch["num_layers"],
        num_attention_heads=arch["num_heads"], intermediate_size=arch["intermediate_size"],
        hidden_dropout_prob=arch["dropout"], attention_probs_dropout_prob=arch["dropout"],
        max_position_embeddings=int(max_length), type_vocab_size=2, pad_token_id=spec.pad_token_id,
    )
    # no pooler: selfsup pools itself, and an unused layer would break DDP's gradient bookkeeping
    model = _from_config(hf_config, add_pooling_layer=False)
    return TextEncoder(model, spec, causal=False, max_length=int(max_length), pool=pool,
                       config=_record(name, spec, max_length, pool, overrides))


def _gpt(name: str, preset: dict[str, Any], vocab_size: int | None, max_length: int, pool: str,
         spec_ids: dict[str, Any], overrides: dict[str, Any]) -> TextEncoder:
    arch = {**preset, **{k: v for k, v in overrides.items() if v is not None}}
    spec = _check(name, vocab_size, max_length, pool, spec_ids, arch["hidden_size"], arch["num_heads"], causal=True)
    import transformers

    hf_config = transformers.GPT2Config(
        vocab_size=spec.vocab_size, n_positions=int(max_length), n_embd=arch["hidden_size"],
        n_layer=arch["num_layers"], n_head=arch["num_heads"], n_inner=arch["intermediate_size"],
        resid_pdrop=arch["dropout"], embd_pdrop=arch["dropout"], attn_pdrop=arch["dropout"],
        bos_token_id=spec.cls_token_id, eos_token_id=spec.sep_token_id, pad_token_id=spec.pad_token_id,
        use_cache=False,
    )
    model = _from_config(hf_config)
    return TextEncoder(model, spec, causal=True, max_length=int(max_length), pool=pool,
                       config=_record(name, spec, max_length, pool, overrides))


class Seq2SeqTextEncoder(TextEncoder):
    """A transformers encoder-decoder (BART, Lewis et al. 2020) whose *encoder half* is the selfsup encoder: ``forward``
    gives the encoder's last hidden states, ``embed`` their mean over real tokens. ``hf_model`` is the whole
    ``BartForConditionalGeneration`` (decoder and LM head included), so a run, an export and ``--init RUN`` keep the
    decoder that the ``bart`` method trained and translation fine-tunes."""

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states of the encoder half [B, T, D]."""
        return self.hf_model.get_encoder()(input_ids=inputs["input_ids"],
                                           attention_mask=inputs.get("attention_mask")).last_hidden_state

    def layer_outputs(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The encoder half's hidden states [B, T, D] after each layer, first to last."""
        out = self.hf_model.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                                          output_hidden_states=True)
        return list(out.hidden_states[1:])

    def save_pretrained(self, folder: str) -> None:
        """The whole encoder-decoder (``AutoModelForSeq2SeqLM.from_pretrained`` loads it; ``AutoModel`` gives the
        ``BartModel`` whose ``encoder`` this is)."""
        self.hf_model.save_pretrained(folder)

    def load_export(self, folder: str | Path) -> None:
        """The weights of a ``--format huggingface`` export (transformers leaves out the copies of the tied word
        embeddings; they are the same tensor here)."""
        from safetensors.torch import load_file

        path = Path(folder) / "model.safetensors"
        missing, unexpected = self.hf_model.load_state_dict(load_file(str(path)), strict=False)
        tied = set(getattr(self.hf_model, "_tied_weights_keys", None) or ()) | {
            "lm_head.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"}
        if unexpected or set(missing) - tied:
            raise SelfSupError(f"{path}: weights do not match this {self.config.get('name')} encoder (missing "
                               f"{sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]}); re-export "
                               "the run")
        self.hf_model.tie_weights()


def _bart(name: str, preset: dict[str, Any], vocab_size: int | None, max_length: int, pool: str,
          spec_ids: dict[str, Any], overrides: dict[str, Any]) -> TextEncoder:
    """``BartForConditionalGeneration`` from a ``BartConfig`` (never downloaded): ``num_layers`` layers on each side;
    [CLS] starts every decoder sequence and [SEP] ends it (the run's tokenizer wraps texts in them)."""
    arch = {**preset, **{k: v for k, v in overrides.items() if v is not None}}
    spec = _check(name, vocab_size, max_length, pool, spec_ids, arch["hidden_size"], arch["num_heads"], causal=False)
    import transformers

    hf_config = transformers.BartConfig(
        vocab_size=spec.vocab_size, d_model=arch["hidden_size"], encoder_layers=arch["num_layers"],
        decoder_layers=arch["num_layers"], encoder_attention_heads=arch["num_heads"],
        decoder_attention_heads=arch["num_heads"], encoder_ffn_dim=arch["intermediate_size"],
        decoder_ffn_dim=arch["intermediate_size"], dropout=arch["dropout"], attention_dropout=arch["dropout"],
        activation_dropout=0.0, max_position_embeddings=int(max_length), pad_token_id=spec.pad_token_id,
        bos_token_id=spec.cls_token_id, eos_token_id=spec.sep_token_id, decoder_start_token_id=spec.cls_token_id,
        forced_eos_token_id=spec.sep_token_id, forced_bos_token_id=None, scale_embedding=True,
    )
    try:
        model = transformers.BartForConditionalGeneration._from_config(hf_config, attn_implementation="sdpa")
    except (ValueError, ImportError) as exc:
        log.debug("no SDPA attention for BART (%s); using the default", exc)
        model = transformers.BartForConditionalGeneration._from_config(hf_config)
    return Seq2SeqTextEncoder(model, spec, causal=False, max_length=int(max_length), pool=pool,
                              config=_record(name, spec, max_length, pool, overrides))


def _make_builder(name: str, description: str, build: Any, preset: dict[str, Any]) -> Any:
    """A builder for one preset, taking the keyword arguments shared by every text encoder."""

    def builder(vocab_size: int | None = None, max_length: int = 128, pad_token_id: int = 0,
                unk_token_id: int = 1, cls_token_id: int = 2, sep_token_id: int = 3, mask_token_id: int = 4,
                pool: str = "mean", hidden_size: int | None = None, num_layers: int | None = None,
                num_heads: int | None = None, intermediate_size: int | None = None,
                dropout: float | None = None, image_size: int | None = None,
                language_ids: list[int] | tuple[int, ...] = ()) -> TextEncoder:
        del image_size  # the engine passes it to every encoder; text has no use for it
        spec_ids = {"pad_token_id": pad_token_id, "unk_token_id": unk_token_id, "cls_token_id": cls_token_id,
                    "sep_token_id": sep_token_id, "mask_token_id": mask_token_id, "language_ids": language_ids}
        overrides = {"hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
                     "intermediate_size": intermediate_size, "dropout": dropout}
        return build(name, preset, vocab_size, max_length, pool, spec_ids, overrides)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = description
    return register_encoder(name, description)(builder)


def _arch(hidden: int, layers: int, heads: int) -> dict[str, Any]:
    """A preset: feed-forward width 4x hidden, dropout 0.1 (SimCSE's dropout views rely on it)."""
    return {"hidden_size": hidden, "num_layers": layers, "num_heads": heads, "intermediate_size": 4 * hidden,
            "dropout": 0.1}


bert_tiny = _make_builder("bert_tiny", "BERT with 2 layers of width 128 (2 heads); the CPU default for "
                          "mlm/simcse/tsdae", _bert, _arch(128, 2, 2))
bert_mini = _make_builder("bert_mini", "BERT with 4 layers of width 256 (4 heads)", _bert, _arch(256, 4, 4))
bert_small = _make_builder("bert_small", "BERT with 4 layers of width 512 (8 heads)", _bert, _arch(512, 4, 8))
gpt_tiny = _make_builder("gpt_tiny", "causal GPT-2 with 2 layers of width 128 (2 heads) for next-token "
                         "prediction; mean-pooled", _gpt, _arch(128, 2, 2))
gpt_mini = _make_builder("gpt_mini", "causal GPT-2 with 4 layers of width 256 (4 heads) for next-token "
                         "prediction; mean-pooled", _gpt, _arch(256, 4, 4))
bart_tiny = _make_builder("bart_tiny", "BART encoder-decoder with 2+2 layers of width 128 (2 heads) for the bart "
                          "method and translation; embeds with the encoder half, mean-pooled", _bart, _arch(128, 2, 2))
bart_small = _make_builder("bart_small", "BART encoder-decoder with 2+2 layers of width 256 (4 heads) for the bart "
                           "method and translation; embeds with the encoder half, mean-pooled", _bart, _arch(256, 2, 4))
