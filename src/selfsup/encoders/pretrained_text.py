"""A Hugging Face text checkpoint as a selfsup text encoder (``--init SOURCE`` on text; ``hf_text``).

Domain-adaptive pretraining (Gururangan et al. 2020, "Don't Stop Pretraining: Adapt Language Models to
Domains and Tasks", ACL) continues a model's own self-supervised objective on the user's unlabeled text.
The architecture is the checkpoint's (``AutoConfig``/``AutoModel``: BERT, RoBERTa, DistilBERT, ELECTRA,
GPT-2 and their relatives), never selfsup's presets; a causal-only family (GPT-2) is a causal encoder.
When the folder holds a language-model head (``config.architectures`` names a ``...ForMaskedLM`` class for a
bidirectional model, a ``...LMHeadModel``/``...ForCausalLM`` class for a causal one) it is loaded too and
offered to ``mlm``/``clm`` (:meth:`TextEncoder.lm_head`), so training continues the checkpoint's own
objective instead of starting a fresh head. Tokens the run's tokenizer adds (GPT-2 has no pad or mask
token) grow the embedding matrix (``resize_token_embeddings``).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from ..errors import SelfSupError
from ..registry import register_encoder
from .hf_checkpoint import load_pretrained, open_checkpoint, quiet_transformers
from .text import TextEncoder, _check, _record

if TYPE_CHECKING:  # pragma: no cover
    import transformers

log = logging.getLogger("selfsup")

NAME = "hf_text"
# the modules of a masked-LM model that map last hidden states to vocabulary scores, by model_type; a causal
# LM's head is its ``lm_head`` (GPT-2, and the ForCausalLM classes generally)
MLM_HEADS: dict[str, tuple[str, ...]] = {
    "bert": ("cls",),
    "roberta": ("lm_head",),
    "xlm-roberta": ("lm_head",),
    "camembert": ("lm_head",),
    "distilbert": ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector"),
    "electra": ("generator_predictions", "generator_lm_head"),
}
CAUSAL_HEAD = ("lm_head",)
# position embeddings of these families start after the padding index (RoBERTa's offset)
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")


def text_checkpoint(source: str) -> tuple[Path, transformers.PretrainedConfig, bool]:
    """(folder, transformers config, causal) of a text checkpoint, or one line saying why it is not one."""
    from transformers.models.auto import modeling_auto as auto

    folder, config = open_checkpoint(source, "text")
    causal_only = config.model_type not in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES
    return folder, config, causal_only or bool(getattr(config, "is_decoder", False))


def _positions(config: transformers.PretrainedConfig) -> int | None:
    """How many tokens the checkpoint's position embeddings cover (None: no limit known)."""
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if limit and config.model_type in OFFSET_POSITIONS:
        limit -= int(config.pad_token_id or 0) + 1
    return int(limit) if limit else None


def check_positions(config: transformers.PretrainedConfig, source: str, max_length: int) -> None:
    """One line when ``max_length`` tokens exceed the positions the checkpoint was trained for."""
    limit = _positions(config)
    if limit is not None and int(max_length) > limit:
        raise SelfSupError(f"checkpoint {source}: max_length {max_length} exceeds the {limit} positions it was trained "
                           f"for; use --max-length {limit} or less")


def _head_names(config: transformers.PretrainedConfig, causal: bool) -> tuple[str, ...] | None:
    """The attributes of the checkpoint's LM model that form its head, when the folder was saved with one."""
    from transformers.models.auto import modeling_auto as auto

    mapping = auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES if causal else auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES
    saved = set(config.architectures or ())
    if config.model_type not in mapping or mapping[config.model_type] not in saved:
        return None
    return CAUSAL_HEAD if causal else MLM_HEADS.get(config.model_type)


def _base_kwargs(config: transformers.PretrainedConfig) -> dict[str, Any]:
    """No pooler for the base model (BERT, RoBERTa): selfsup pools itself, and an unused layer breaks DDP's
    gradient bookkeeping."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    cls = MODEL_MAPPING[type(config)]
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(cls.__init__).parameters else {}


def _load(folder: Path, source: str, config: transformers.PretrainedConfig, causal: bool,
          pretrained: bool) -> tuple[nn.Module, nn.Module | None]:
    """(base model, LM head or None): the checkpoint's weights, or (``pretrained=False``) the same architecture
    at random initialisation."""
    import transformers

    heads = _head_names(config, causal) if pretrained else None
    if not pretrained:
        return transformers.AutoModel.from_config(config, **_base_kwargs(config)), None
    auto = (transformers.AutoModelForCausalLM if causal else transformers.AutoModelForMaskedLM) if heads else \
        transformers.AutoModel
    kwargs = {} if heads else _base_kwargs(config)
    model = load_pretrained(auto, folder, source, config, **kwargs)
    if not heads:
        return model, None
    head = nn.Sequential(*(getattr(model, name) for name in heads)) if len(heads) > 1 else getattr(model, heads[0])
    log.info("checkpoint %s: continuing with its own %s head", source, "causal LM" if causal else "masked LM")
    return model, head


@register_encoder("hf_text", "a Hugging Face text checkpoint (BERT, RoBERTa, DistilBERT, ELECTRA, GPT-2 families) "
                  "from encoder.source, a model folder or a cached model id; set by --init SOURCE")
def hf_text(source: str | None = None, pretrained: bool = True, vocab_size: int | None = None, max_length: int = 128,
            pad_token_id: int = 0, unk_token_id: int = 1, cls_token_id: int = 2, sep_token_id: int = 3,
            mask_token_id: int = 4, pool: str = "mean", image_size: int | None = None,
            language_ids: list[int] | tuple[int, ...] = ()) -> TextEncoder:
    """The checkpoint ``source`` with its own architecture and weights (``pretrained=False``: the same architecture
    randomly initialised, the ``scratch`` baseline); the token ids are the run's tokenizer's."""
    del image_size  # the engine passes it to every encoder; text has no use for it
    if not source:
        raise SelfSupError(f"encoder {NAME!r} needs encoder.source, a Hugging Face model folder or cached model id; "
                           "use --init SOURCE")
    folder, config, causal = text_checkpoint(source)
    spec = _check(NAME, vocab_size, max_length, pool,
                  {"pad_token_id": pad_token_id, "unk_token_id": unk_token_id, "cls_token_id": cls_token_id,
                   "sep_token_id": sep_token_id, "mask_token_id": mask_token_id, "language_ids": language_ids},
                  int(config.hidden_size), int(config.num_attention_heads), causal)
    check_positions(config, source, max_length)
    model, head = _load(folder, source, config, causal, bool(pretrained))
    rows = model.get_input_embeddings().num_embeddings
    if spec.vocab_size > rows:  # tokens the run's tokenizer added (GPT-2: pad, mask)
        with quiet_transformers():  # new rows drawn around the old rows' mean (Hewitt 2021); a tied head grows too
            model.resize_token_embeddings(spec.vocab_size)
        log.info("checkpoint %s: embedding matrix grown from %d to %d rows for the tokens the tokenizer added",
                 source, rows, spec.vocab_size)
    model.train()  # from_pretrained returns eval mode; every selfsup encoder is built in training mode
    base = model.base_model
    if base.config.pad_token_id is None:
        base.config.pad_token_id = spec.pad_token_id
    record = _record(NAME, spec, max_length, pool, {"source": str(source), "pretrained": bool(pretrained)})
    return TextEncoder(base, spec, causal=causal, max_length=int(max_length), pool=pool, config=record,
                       lm_head=head)
