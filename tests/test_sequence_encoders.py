"""Sequence encoders (selfsup.encoders.sequence): shapes, padding, causality, scoring, config and HF round trips."""

from __future__ import annotations

import pytest
import torch
import transformers

import selfsup.encoders.sequence  # noqa: F401  (importing registers sasrec_tiny / bert4rec_tiny)
from selfsup.encoders import build_encoder
from selfsup.encoders.sequence import SequenceEncoder
from selfsup.errors import SelfSupError

ITEMS, MAX_LEN = 40, 12
NAMES = ("sasrec_tiny", "bert4rec_tiny")


def make(name: str, **kwargs) -> SequenceEncoder:
    torch.manual_seed(0)
    return build_encoder({"name": name, "num_items": ITEMS, "max_length": MAX_LEN, **kwargs})


def batch(histories: list[list[int]], total: int | None = None, left: bool = False) -> dict[str, torch.Tensor]:
    """Histories padded with 0 to ``total`` (right-padded unless ``left``)."""
    total = total or max(map(len, histories))
    ids = torch.zeros(len(histories), total, dtype=torch.long)
    for row, items in enumerate(histories):
        if left:
            ids[row, total - len(items):] = torch.tensor(items)
        else:
            ids[row, : len(items)] = torch.tensor(items)
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


HISTORIES = [[3, 7, 1, 40, 9], [5, 2], [12, 12, 30]]


@pytest.mark.parametrize("name", NAMES)
def test_shapes_attributes_and_presets(name):
    enc = make(name).eval()
    inputs = batch(HISTORIES)
    with torch.no_grad():
        tokens = enc(inputs)
        assert tokens.shape == (3, 5, 64) and enc.dim == 64
        assert enc.embed(inputs).shape == (3, 64)
        assert torch.allclose(enc.embed(inputs), enc.pool(tokens, inputs["attention_mask"]))
    assert enc.causal == (name == "sasrec_tiny")
    assert (enc.num_items, enc.mask_item_id, enc.max_length) == (ITEMS, ITEMS + 1, MAX_LEN)
    assert enc.item_embeddings is enc.hf_model.get_input_embeddings()
    assert enc.item_embeddings.weight.shape == (ITEMS + 2, 64)
    hf = enc.hf_model.config
    if enc.causal:
        assert isinstance(enc.hf_model, transformers.GPT2Model)
        assert (hf.n_layer, hf.n_head, hf.resid_pdrop, hf.attn_pdrop, hf.n_positions) == (2, 2, 0.2, 0.2, MAX_LEN)
    else:
        assert isinstance(enc.hf_model, transformers.BertModel) and enc.hf_model.pooler is None
        assert (hf.num_hidden_layers, hf.num_attention_heads, hf.hidden_dropout_prob) == (2, 2, 0.1)


def test_pool_takes_the_last_real_state_for_causal_and_the_mean_for_bidirectional():
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    causal, bidir = make("sasrec_tiny"), make("bert4rec_tiny")
    assert torch.equal(causal.pool(tokens, mask), torch.stack([tokens[0, 1], tokens[1, 3]]))
    assert torch.allclose(bidir.pool(tokens, mask), torch.stack([tokens[0, :2].mean(0), tokens[1, 1:].mean(0)]))


@pytest.mark.parametrize("name", NAMES)
def test_embedding_ignores_padding(name):
    enc = make(name).eval()
    history = [3, 7, 1]
    with torch.no_grad():
        alone = enc.embed(batch([history]))
        right = enc.embed(batch([[9, 8, 7, 6, 5], history], total=8))[1]
        left = enc.embed(batch([[9, 8, 7, 6, 5], history], total=8, left=True))[1]
    assert torch.allclose(alone[0], right, atol=1e-5)
    assert torch.allclose(alone[0], left, atol=1e-5)  # position ids count real items only


@pytest.mark.parametrize("name", NAMES)
def test_causal_states_ignore_later_items_and_bidirectional_ones_do_not(name):
    enc = make(name).eval()
    a, b = batch([[3, 7, 1, 40, 9]]), batch([[3, 7, 1, 22, 15]])
    with torch.no_grad():
        sa, sb = enc(a), enc(b)
    same_prefix = torch.allclose(sa[:, :3], sb[:, :3], atol=1e-5)
    assert same_prefix == enc.causal
    assert not torch.allclose(sa[:, 3:], sb[:, 3:], atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_score_items_is_the_tied_matmul(name):
    enc = make(name).eval()
    states = torch.randn(2, 5, 64)
    scores = enc.score_items(states)
    assert scores.shape == (2, 5, ITEMS + 2)
    assert torch.allclose(scores, torch.einsum("btd,nd->btn", states, enc.item_embeddings.weight), atol=1e-5)
    # the gradient reaches the shared input table
    enc.score_items(states).sum().backward()
    assert enc.item_embeddings.weight.grad is not None and enc.item_embeddings.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_config_rebuilds_the_same_architecture_with_overrides(name):
    enc = make(name, hidden_size=32, num_heads=4, num_layers=1, dropout=0.0)
    assert enc.config == {"name": name, "num_items": ITEMS, "max_length": MAX_LEN, "hidden_size": 32,
                          "num_heads": 4, "num_layers": 1, "dropout": 0.0}
    again = build_encoder(enc.config)
    assert isinstance(again, SequenceEncoder) and again.dim == 32 and again.causal == enc.causal
    shapes = {k: v.shape for k, v in enc.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}
    assert shapes != {k: v.shape for k, v in make(name).state_dict().items()}


def test_user_mistakes_raise_one_line_errors():
    for num_items in (None, 0):
        with pytest.raises(SelfSupError, match="num_items.*item map") as info:
            build_encoder({"name": "sasrec_tiny", "num_items": num_items})
        assert "\n" not in str(info.value)
    with pytest.raises(SelfSupError, match="not divisible by num_heads 3"):
        make("bert4rec_tiny", num_heads=3)
    with pytest.raises(SelfSupError, match="max_length"):
        make("sasrec_tiny")(batch([list(range(1, MAX_LEN + 2))]))
    build_encoder({"name": "bert4rec_tiny", "num_items": 5, "image_size": 224})  # the engine passes image_size


@pytest.mark.parametrize("name", NAMES)
def test_save_pretrained_round_trips_through_transformers(name, tmp_path):
    enc = make(name).eval()
    enc.save_pretrained(str(tmp_path))
    extra = {} if enc.causal else {"add_pooling_layer": False}
    loaded = transformers.AutoModel.from_pretrained(str(tmp_path), **extra).eval()
    inputs = batch(HISTORIES)
    with torch.no_grad():
        ours = enc(inputs)
        theirs = loaded(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-5)


def test_pool_setting_chooses_the_user_embedding() -> None:
    torch.manual_seed(0)
    ids = torch.tensor([[3, 4, 5, 0]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    last = build_encoder({"name": "sasrec_tiny", "num_items": 9, "max_length": 4, "dropout": 0.0}).eval()
    mean = build_encoder({"name": "sasrec_tiny", "num_items": 9, "max_length": 4, "dropout": 0.0, "pool": "mean"}).eval()
    mean.load_state_dict(last.state_dict())
    with torch.no_grad():
        states = last(batch)[0]
        assert torch.allclose(last.embed(batch)[0], states[2]) and torch.allclose(mean.embed(batch)[0], states[:3].mean(0))
        # the next-item scores always come from the last state, whatever the user embedding
        assert torch.allclose(mean.next_item_scores(batch), last.next_item_scores(batch))
    assert mean.config["pool"] == "mean"
    with pytest.raises(SelfSupError, match="pool='mean'"):
        build_encoder({"name": "bert4rec_tiny", "num_items": 9, "pool": "last"})
    with pytest.raises(SelfSupError, match="unknown pool 'max'"):
        build_encoder({"name": "sasrec_tiny", "num_items": 9, "pool": "max"})
