"""The wav2vec 2.0-style audio encoders: frame grid, padding and gain invariance of the embedding, frame
masking, the log-mel front end, settings errors and the Hugging Face export."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.encoders import build_encoder
from selfsup.encoders.audio import AudioEncoder
from selfsup.errors import SelfSupError

SR = 16000
SMALL = {"hidden_size": 32, "num_heads": 2, "num_layers": 2, "conv_dim": 16}


def tiny(**overrides) -> AudioEncoder:
    torch.manual_seed(0)
    return build_encoder({"name": "wav2vec2_tiny", **SMALL, **overrides}).eval()


def tones(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded mixtures of two random tones [B, max(lengths)] and their sample mask."""
    g = torch.Generator().manual_seed(seed)
    total = max(lengths)
    t = torch.arange(total, dtype=torch.float64) / SR
    freqs = 200 + 2000 * torch.rand(len(lengths), 2, 1, generator=g, dtype=torch.float64)
    waves = (0.3 * torch.sin(2 * math.pi * freqs * t)).sum(1).float()
    mask = (torch.arange(total)[None] < torch.tensor(lengths)[:, None]).long()
    return waves * mask, mask


def batch(waves: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    return {"input_values": waves, "attention_mask": torch.ones_like(waves, dtype=torch.long) if mask is None else mask}


def expected_frames(samples: int) -> int:
    return (samples - 400) // 320 + 1


def test_frame_count_follows_the_wav2vec2_grid():
    encoder = tiny()
    assert (encoder.frame_window, encoder.frame_stride) == (400, 320)
    lengths = [400, 719, 720, 721, 4000, 8000]
    assert encoder.num_frames(torch.tensor(lengths)).tolist() == [expected_frames(n) for n in lengths]
    assert encoder.num_frames(torch.tensor([100])).tolist() == [1]  # shorter than a window: one frame
    with torch.no_grad():
        for n in (400, 721, 8000):
            frames = encoder(batch(tones([n])[0]))
            assert frames.shape == (1, expected_frames(n), 32)
        # a padded batch has the longest clip's frames; frame_mask marks each clip's own frames
        waves, mask = tones([8000, 4000, 721])
        frames = encoder(batch(waves, mask))
        assert frames.shape[1] == expected_frames(8000)
        assert encoder.frame_mask(batch(waves, mask), frames.shape[1]).sum(1).tolist() == [
            expected_frames(n) for n in (8000, 4000, 721)]


def test_pooling_ignores_padding():
    encoder = tiny()
    waves, mask = tones([8000, 5000], seed=1)
    junk = torch.randn(waves.shape, generator=torch.Generator().manual_seed(2))
    padded = torch.where(mask.bool(), waves, junk)  # junk where the mask says padding
    with torch.no_grad():
        together = encoder.embed(batch(padded, mask))
        alone = encoder.embed(batch(waves[1:, :5000]))
        longest_alone = encoder.embed(batch(waves[:1]))
        trusting_junk = encoder.embed(batch(padded[1:]))  # the same samples with the junk counted as real
    assert torch.allclose(together[1], alone[0], atol=1e-5), (together[1] - alone[0]).abs().max()
    assert torch.allclose(together[0], longest_alone[0], atol=1e-5)
    assert (trusting_junk[0] - alone[0]).abs().max() > 1e-2  # the check above can fail


def test_per_clip_normalisation_makes_embedding_gain_invariant():
    encoder = tiny()
    waves, mask = tones([6400, 4000], seed=3)
    with torch.no_grad():
        quiet = encoder.embed(batch(waves, mask))
        loud = encoder.embed(batch(3 * waves, mask))
        other = encoder.embed(batch(tones([6400, 4000], seed=4)[0], mask))
    assert torch.allclose(quiet, loud, atol=1e-5), (quiet - loud).abs().max()
    assert (quiet - other).abs().max() > 1e-2
    raw = tiny(normalize=False)
    with torch.no_grad():
        assert (raw.embed(batch(waves, mask)) - raw.embed(batch(3 * waves, mask))).abs().max() > 1e-3


def test_layer_outputs_one_per_layer_and_last_is_forward():
    encoder = tiny(num_layers=3)
    inputs = batch(*tones([4000, 3000]))
    with torch.no_grad():
        layers = encoder.layer_outputs(inputs)
        last = encoder(inputs)
    assert len(layers) == 3
    assert all(x.shape == last.shape == (2, expected_frames(4000), 32) for x in layers)
    # the last layer's output, through the encoder's final layer norm (pre-LN transformer), is forward's
    assert torch.allclose(encoder.hf_model.encoder.layer_norm(layers[-1]), last, atol=1e-5)
    assert (layers[0] - layers[1]).abs().max() > 1e-3


def test_mask_time_indices_replace_the_masked_frames():
    encoder = tiny()
    waves, mask = tones([6400, 6400], seed=5)
    frames = expected_frames(6400)
    masked = torch.zeros(2, frames, dtype=torch.bool)
    masked[:, 5:10] = True
    with torch.no_grad():
        plain = encoder(batch(waves, mask))
        hidden = encoder({**batch(waves, mask), "mask_time_indices": masked})
        # everything masked: the transformer sees only the mask vector, whatever the sound
        everything = torch.ones(2, frames, dtype=torch.bool)
        blank = encoder({**batch(waves, mask), "mask_time_indices": everything})
    change = (plain - hidden).abs().amax(-1)  # [B, T]
    assert (change[:, 5:10] > 1e-2).all()
    assert change[:, 5:10].mean() > change[:, ~masked[0]].mean()  # the masked frames change most
    assert torch.allclose(blank[0], blank[1], atol=1e-5)
    assert (plain[0] - plain[1]).abs().max() > 1e-2
    # the mask vector trains only in the methods that mask frames
    assert not encoder.mask_embedding.requires_grad
    encoder.enable_frame_masking()
    assert encoder.mask_embedding.requires_grad


def test_mel_frontend_runs_on_the_same_frame_grid():
    encoder = tiny(frontend="mel", n_mels=20)
    assert (encoder.frame_window, encoder.frame_stride) == (400, 320)
    waves, mask = tones([8000, 4321], seed=6)
    with torch.no_grad():
        frames = encoder(batch(waves, mask))
        embedding = encoder.embed(batch(waves, mask))
        alone = encoder.embed(batch(waves[1:, :4321]))
    assert frames.shape == (2, expected_frames(8000), 32)
    assert encoder.frame_mask(batch(waves, mask), frames.shape[1]).sum(1).tolist() == [
        expected_frames(8000), expected_frames(4321)]
    assert torch.isfinite(frames).all() and embedding.shape == (2, 32)
    assert torch.allclose(embedding[1], alone[0], atol=1e-5)
    # trainable end to end
    encoder.train()
    encoder.embed(batch(waves, mask)).sum().backward()
    assert encoder.hf_model.feature_projection.projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("settings", "words"), [
    ({"frontend": "mell"}, ["frontend 'mell'", "conv or mel"]),
    ({"num_heads": 3}, ["hidden_size 32", "num_heads 3"]),
    ({"pool": "cls"}, ["pool"]),
    ({"sample_rate": 100}, ["sample_rate"]),
], ids=["frontend-typo", "heads", "pool", "sample-rate"])
def test_bad_settings_raise_one_line_errors(settings, words, suggests):
    with pytest.raises(SelfSupError) as info:
        build_encoder({"name": "wav2vec2_tiny", **SMALL, **settings})
    message = str(info.value)
    assert "\n" not in message and "wav2vec2_tiny" in message
    assert all(word in message for word in words), message
    if "frontend" in settings:
        assert suggests(message, "mel")


def test_config_rebuilds_the_same_architecture():
    encoder = tiny(frontend="mel", n_mels=24)
    rebuilt = build_encoder(encoder.config)
    assert rebuilt.config == encoder.config
    shapes = {k: v.shape for k, v in encoder.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    rebuilt.load_state_dict(encoder.state_dict())


def test_huggingface_export_reproduces_the_embedding(tmp_path):
    from transformers import AutoFeatureExtractor, AutoModel

    encoder = tiny()
    with torch.no_grad():  # move the weights off their init, so a dropped tensor would show
        for p in encoder.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    encoder.save_pretrained(str(tmp_path))
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in tmp_path.iterdir()}

    lengths = [8000, 5000]
    waves, mask = tones(lengths, seed=7)
    waves = 0.2 * waves + 0.05  # an offset and a level that normalisation must remove
    waves = waves * mask
    with torch.no_grad():
        ours = encoder.embed(batch(waves, mask))

    model = AutoModel.from_pretrained(str(tmp_path), local_files_only=True).eval()
    extractor = AutoFeatureExtractor.from_pretrained(str(tmp_path), local_files_only=True)
    assert extractor.sampling_rate == SR
    raw = [waves[i, :n].numpy() for i, n in enumerate(lengths)]
    inputs = extractor(raw, sampling_rate=SR, padding=True, return_attention_mask=True, return_tensors="pt")
    assert inputs["attention_mask"].sum(1).tolist() == lengths
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    theirs = torch.stack([hidden[i, : expected_frames(n)].mean(0) for i, n in enumerate(lengths)])
    assert hidden.shape[-1] == 32
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_mel_frontend_refuses_huggingface_export(tmp_path):
    with pytest.raises(SelfSupError, match="safetensors"):
        tiny(frontend="mel", n_mels=20).save_pretrained(str(tmp_path))
    assert not any(tmp_path.iterdir())
