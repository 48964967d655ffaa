"""The encoder-decoder a text run translates with (a fresh copy each time, so every fine-tuning starts the same):

- a ``bart`` run (``bart_tiny`` / ``bart_small``): its own ``BartForConditionalGeneration``, decoder included;
- a bidirectional run (``mlm``, ``simcse``, ``tsdae``, an ``--init`` BERT): a transformers ``EncoderDecoderModel``
  warm-started as in Rothe, Narayan & Severyn 2020 ("Leveraging Pre-trained Checkpoints for Sequence Generation
  Tasks", TACL; BERT2BERT): the encoder AND the decoder start from the run's weights; the decoder's cross-attention
  is new;
- a causal run (``clm``, an ``--init`` GPT-2): the run's weights warm-start the decoder (BERT2GPT in Rothe et al.);
  the encoder is a BERT of the same width and depth from a random start.

The decoder starts from [CLS] and stops at [SEP] of the run's tokenizer, which both sides share.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from ...encoders.text import Seq2SeqTextEncoder, TextEncoder
from ...errors import SelfSupError

if TYPE_CHECKING:  # pragma: no cover
    import transformers

NUM_BEAMS = 4


def _quiet():
    from ...encoders.hf_checkpoint import quiet_transformers

    return quiet_transformers()


def _decoder_from(base: "transformers.PreTrainedModel", name: str) -> "transformers.PreTrainedModel":
    """A causal LM with cross-attention of ``base``'s architecture, its weights warm-started from ``base``."""
    import transformers

    config = copy.deepcopy(base.config)
    config.is_decoder, config.add_cross_attention = True, True
    try:
        with _quiet():
            decoder = transformers.AutoModelForCausalLM.from_config(config)
    except ValueError:
        raise SelfSupError(f"encoder {name!r} ({config.model_type}) has no decoder form in transformers to "
                           "warm-start a translation model; pretrain with --method bart, mlm (BERT) or clm (GPT-2)") \
            from None
    missing, unexpected = decoder.base_model.load_state_dict(base.state_dict(), strict=False)
    if unexpected or any("cross" not in key for key in missing):
        raise SelfSupError(f"encoder {name!r}: its weights do not fit a {config.model_type} decoder "
                           f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return decoder


def _fresh_bert_like(config: "transformers.PretrainedConfig") -> "transformers.PreTrainedModel":
    """A randomly initialised BERT encoder as wide and deep as ``config`` (a GPT-2's)."""
    import transformers

    bert = transformers.BertConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                                   num_hidden_layers=config.num_hidden_layers,
                                   num_attention_heads=config.num_attention_heads,
                                   intermediate_size=4 * config.hidden_size,
                                   max_position_embeddings=config.max_position_embeddings,
                                   pad_token_id=config.pad_token_id)
    return transformers.BertModel(bert, add_pooling_layer=False)


def configure_generation(model: "transformers.PreTrainedModel", encoder: TextEncoder, num_beams: int = NUM_BEAMS,
                         forced_bos_token_id: int | None = None) -> None:
    """The decoder's start ([CLS]), end ([SEP]) and pad ids in the model's config and generation config, the
    beam search ``translate`` and the evaluation decode with, and the first token the decoder must write (the target
    language's tag of a tagged run, as mBART decodes; None: free)."""
    spec = encoder.spec
    model.config.decoder_start_token_id = spec.cls_token_id
    model.config.pad_token_id = spec.pad_token_id
    model.config.eos_token_id = spec.sep_token_id
    generation = model.generation_config
    generation.decoder_start_token_id = spec.cls_token_id
    generation.bos_token_id = spec.cls_token_id
    generation.eos_token_id = spec.sep_token_id
    generation.pad_token_id = spec.pad_token_id
    generation.forced_bos_token_id = forced_bos_token_id
    generation.num_beams = num_beams
    generation.max_new_tokens = encoder.max_length - 1
    generation.max_length = None


def seq2seq_model(encoder: TextEncoder, forced_bos_token_id: int | None = None) -> "transformers.PreTrainedModel":
    """A new encoder-decoder warm-started from ``encoder`` (see the module docstring), in training mode;
    ``forced_bos_token_id``: the target language's tag a tagged run decodes first."""
    import transformers

    name = str(encoder.config.get("name"))
    if isinstance(encoder, Seq2SeqTextEncoder):
        model = copy.deepcopy(encoder.hf_model)
    else:
        base = copy.deepcopy(getattr(encoder.hf_model, "base_model", encoder.hf_model))
        decoder = _decoder_from(base, name)
        source = _fresh_bert_like(base.config) if encoder.causal else base
        with _quiet():
            model = transformers.EncoderDecoderModel(encoder=source, decoder=decoder)
    configure_generation(model, encoder, forced_bos_token_id=forced_bos_token_id)
    return model.train()
