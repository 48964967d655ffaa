"""Text encoders (selfsup.encoders.text): shapes, padding, causality, dropout, config and HF round trips."""

from __future__ import annotations

import pytest
import torch
import transformers

from selfsup.encoders import build_encoder
from selfsup.encoders.text import TextEncoder, TokenSpec  # importing registers the text encoders
from selfsup.errors import SelfSupError

VOCAB, MAX_LEN = 100, 32
SMALL = {"bert_mini": 256, "bert_small": 512, "gpt_mini": 256}


def make(name: str, **kwargs) -> TextEncoder:
    torch.manual_seed(0)
    return build_encoder({"name": name, "vocab_size": VOCAB, "max_length": MAX_LEN, **kwargs})


def batch(lengths: list[int], total: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded [CLS] ... [SEP] sequences of the given lengths (special tokens included)."""
    gen = torch.Generator().manual_seed(seed)
    total = total or max(lengths)
    ids = torch.zeros(len(lengths), total, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, 0], ids[row, n - 1] = 2, 3
        ids[row, 1 : n - 1] = torch.randint(5, VOCAB, (n - 2,), generator=gen)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "word_starts": mask.bool()}


@pytest.mark.parametrize("name,dim", [("bert_tiny", 128), ("gpt_tiny", 128), *SMALL.items()])
def test_shapes_of_forward_pool_and_embed(name, dim):
    enc = make(name).eval()
    inputs = batch([7, 5, 3])
    with torch.no_grad():
        tokens = enc(inputs)
        assert tokens.shape == (3, 7, dim) and enc.dim == dim
        assert enc.pool(tokens, inputs["attention_mask"]).shape == (3, dim)
        assert torch.allclose(enc.embed(inputs), enc.pool(tokens, inputs["attention_mask"]))
    assert enc.causal == name.startswith("gpt")
    assert enc.input_embeddings is enc.hf_model.get_input_embeddings()
    assert enc.input_embeddings.weight.shape == (VOCAB, dim)
    assert enc.spec == TokenSpec(vocab_size=VOCAB) and enc.spec.special_ids == (0, 1, 2, 3, 4)


def test_presets_have_the_documented_architecture():
    bert, gpt = make("bert_tiny").hf_model.config, make("gpt_tiny").hf_model.config
    assert (bert.num_hidden_layers, bert.num_attention_heads, bert.intermediate_size) == (2, 2, 512)
    assert bert.hidden_dropout_prob == bert.attention_probs_dropout_prob == 0.1
    assert (gpt.n_layer, gpt.n_head, gpt.n_inner, gpt.n_positions) == (2, 2, 512, MAX_LEN)
    assert (gpt.bos_token_id, gpt.eos_token_id, gpt.pad_token_id) == (2, 3, 0)
    assert make("bert_small").hf_model.config.num_attention_heads == 8
    assert make("gpt_mini").hf_model.config.n_layer == 4
    assert bert._attn_implementation == "sdpa"
    assert make("bert_tiny").hf_model.pooler is None  # unused weights would break DDP


@pytest.mark.parametrize("name", ["bert_tiny", "gpt_tiny"])
def test_mean_pool_ignores_padding(name):
    enc = make(name).eval()
    short, padded = batch([6, 4]), batch([6, 4], total=11)
    with torch.no_grad():
        a, b = enc.embed(short), enc.embed(padded)
        unmasked = enc.pool(enc(padded))  # pads counted: a different vector
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a[1], unmasked[1], atol=1e-3)


def test_cls_pool_takes_the_first_token():
    enc = make("bert_tiny", pool="cls").eval()
    inputs = batch([5, 3])
    with torch.no_grad():
        assert torch.equal(enc.embed(inputs), enc(inputs)[:, 0])


@pytest.mark.parametrize("name,causal", [("gpt_tiny", True), ("bert_tiny", False)])
def test_later_tokens_change_earlier_states_only_without_causal_mask(name, causal):
    enc = make(name).eval()
    inputs = batch([8])
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["input_ids"][0, 5] = 5 if inputs["input_ids"][0, 5] != 5 else 6
    with torch.no_grad():
        a, b = enc(inputs), enc(changed)
    assert torch.allclose(a[0, :5], b[0, :5], atol=1e-6) == causal
    assert not torch.allclose(a[0, 5:], b[0, 5:], atol=1e-6)


def test_bert_gets_zero_token_type_ids():
    enc = make("bert_tiny").eval()
    inputs = batch([6, 4])
    with torch.no_grad():
        explicit = enc.hf_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                token_type_ids=torch.zeros_like(inputs["input_ids"])).last_hidden_state
        ones = enc.hf_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                            token_type_ids=torch.ones_like(inputs["input_ids"])).last_hidden_state
        assert torch.allclose(enc(inputs), explicit, atol=1e-6)
        assert not torch.allclose(enc(inputs), ones, atol=1e-3)


@pytest.mark.parametrize("name", ["bert_tiny", "gpt_tiny"])
def test_dropout_differs_in_train_mode_only(name):
    enc = make(name)
    inputs = batch([6, 4])
    with torch.no_grad():
        enc.train()
        assert not torch.allclose(enc.embed(inputs), enc.embed(inputs), atol=1e-4)
        enc.eval()
        assert torch.equal(enc.embed(inputs), enc.embed(inputs))
    quiet = make(name, dropout=0.0).train()
    with torch.no_grad():
        assert torch.allclose(quiet.embed(inputs), quiet.embed(inputs), atol=1e-6)


@pytest.mark.parametrize("name,extra", [
    ("bert_tiny", {}),
    ("gpt_tiny", {}),
    ("bert_tiny", {"hidden_size": 64, "num_layers": 1, "num_heads": 4, "intermediate_size": 96,
                   "dropout": 0.2, "pool": "cls", "pad_token_id": 9, "mask_token_id": 7}),
])
def test_config_rebuilds_the_same_architecture(name, extra):
    enc = make(name, **extra).eval()
    assert enc.config["name"] == name and enc.config["vocab_size"] == VOCAB
    assert all(enc.config[k] == v for k, v in extra.items())
    torch.manual_seed(1)  # a different init: only the loaded weights can make outputs equal
    again = build_encoder(enc.config).eval()
    assert again.config == enc.config and again.spec == enc.spec
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in enc.state_dict().items()}
    inputs = batch([6, 4])
    with torch.no_grad():
        assert not torch.allclose(again.embed(inputs), enc.embed(inputs))
        again.load_state_dict(enc.state_dict())
        assert torch.equal(again.embed(inputs), enc.embed(inputs))


def test_engine_image_size_is_ignored_and_long_positions_are_allowed():
    enc = build_encoder({"name": "bert_tiny", "vocab_size": VOCAB, "max_length": 600, "image_size": 32})
    assert "image_size" not in enc.config and enc.max_length == 600
    assert enc.hf_model.config.max_position_embeddings == 600


@pytest.mark.parametrize("name", ["bert_tiny", "gpt_tiny"])
def test_save_pretrained_loads_offline_with_automodel(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    enc = make(name).eval()
    enc.save_pretrained(str(tmp_path))
    assert (tmp_path / "model.safetensors").is_file()
    assert transformers.AutoConfig.from_pretrained(str(tmp_path)).model_type == enc.hf_model.config.model_type
    loaded = transformers.AutoModel.from_pretrained(str(tmp_path)).eval()
    inputs = batch([6, 4])
    mask = inputs["attention_mask"]
    with torch.no_grad():
        out = loaded(input_ids=inputs["input_ids"], attention_mask=mask).last_hidden_state
        assert torch.allclose(enc.pool(out, mask), enc.embed(inputs), atol=1e-5)


def test_token_spec_round_trip():
    spec = TokenSpec(vocab_size=50, pad_token_id=4, unk_token_id=3, cls_token_id=2, sep_token_id=1, mask_token_id=0)
    assert TokenSpec.from_dict({**spec.to_dict(), "name": "bert_tiny"}) == spec
    assert spec.special_ids == (4, 3, 2, 1, 0)


@pytest.mark.parametrize("config,words", [
    ({"name": "bert_tiny"}, "needs vocab_size"),
    ({"name": "gpt_tiny", "max_length": 16}, "needs vocab_size"),
    ({"name": "bert_tiny", "vocab_size": 100, "pool": "maen"}, "did you mean mean"),
    ({"name": "gpt_tiny", "vocab_size": 100, "pool": "cls"}, "pool='mean'"),
    ({"name": "bert_tiny", "vocab_size": 100, "mask_token_id": 100}, "outside the vocabulary"),
    ({"name": "bert_tiny", "vocab_size": 100, "num_heads": 3}, "not divisible"),
])
def test_user_mistakes_raise_one_line_errors(config, words):
    with pytest.raises(SelfSupError, match=words) as info:
        build_encoder(config)
    assert "\n" not in str(info.value)
