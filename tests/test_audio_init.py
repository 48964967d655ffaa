"""``--init`` from a Hugging Face speech checkpoint (wav2vec 2.0, HuBERT, WavLM, data2vec-audio), the methods that
continue it, ``--baseline init`` and the export back to transformers.

Every checkpoint is made here, tiny (width 32, 2 layers, 7 convolutions of 16 channels), with ``save_pretrained``
and a ``Wav2Vec2FeatureExtractor`` whose settings differ per family as on the Hub (wav2vec2-base: group norm, no
attention mask; hubert-base: no normalisation; ...); nothing is downloaded: a socket guard fails any test that
opens a network connection.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
import yaml

from cli_checks import assert_one_line_error, global_step, logged_losses, run_cli
from conftest import cache_model, damaged_copies
from selfsup import api
from selfsup.encoders import build_encoder
from selfsup.modalities import get_modality
from selfsup.modalities.audio.readers import unlabeled_waves
from selfsup.registry import get_method
from selfsup.types import Modality
from test_audio_cli import write_classes
from test_audio_methods import HPARAMS, fit_hubert, seed_all, tone_mixtures

RATE = 16000
CONV = {"conv_dim": (16,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2)}
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2, **CONV}
QUANTISER = {"num_codevector_groups": 2, "num_codevectors_per_group": 8, "codevector_dim": 16,
             "proj_codevector_dim": 16}
# name: (model class, config, feature extractor settings (do_normalize, return_attention_mask))
CHECKPOINTS = {
    "wav2vec2": (transformers.Wav2Vec2Model, transformers.Wav2Vec2Config(**TINY, feat_extract_norm="group"),
                 (True, False)),  # as wav2vec2-base: group norm, given no attention mask
    "wav2vec2_pt": (transformers.Wav2Vec2ForPreTraining, transformers.Wav2Vec2Config(
        **TINY, **QUANTISER, feat_extract_norm="layer", do_stable_layer_norm=True), (True, True)),
    "hubert": (transformers.HubertModel, transformers.HubertConfig(**TINY, feat_extract_norm="group"),
               (False, False)),  # as hubert-base-ls960: raw waveforms
    "wavlm": (transformers.WavLMModel, transformers.WavLMConfig(
        **TINY, feat_extract_norm="layer", num_buckets=16, max_bucket_distance=40), (False, True)),
    # no masking probabilities: saved without a mask vector, so selfsup adds one for the masking methods
    "data2vec": (transformers.Data2VecAudioModel, transformers.Data2VecAudioConfig(
        **{**TINY, "num_conv_pos_embeddings": 3}, conv_pos_kernel_size=3, mask_time_prob=0.0), (True, True)),
}
FAMILIES = list(CHECKPOINTS)


pytestmark = pytest.mark.usefixtures("no_network")  # conftest: any connection fails the test


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """Labeled train (2 x 10) / test (2 x 4) class folders of 8 kHz recordings and one checkpoint per family."""
    root = tmp_path_factory.mktemp("audio_init")
    folders = {"root": root, "train": write_classes(root / "train", per_class=10, seed=1),
               "test": write_classes(root / "test", per_class=4, seed=2)}
    torch.manual_seed(0)
    for name, (cls, config, (normalize, mask)) in CHECKPOINTS.items():
        folders[name] = root / name
        cls(config).save_pretrained(folders[name])
        transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=normalize,
                                              return_attention_mask=mask).save_pretrained(folders[name])
    return folders


def clips(n: int = 3, seed: int = 0) -> list[np.ndarray]:
    """Recordings of different lengths (0.15-0.5 s) with different levels and offsets."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(0.1, 2.0) * rng.standard_normal(int(rng.uniform(0.15, 0.5) * RATE))
             + rng.uniform(-0.2, 0.2)).astype(np.float32) for _ in range(n)]


def as_batch(waves: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """The audio engine's batch: zero-padded raw waveforms and their sample mask."""
    longest = max(len(w) for w in waves)
    values = torch.zeros(len(waves), longest)
    mask = torch.zeros(len(waves), longest, dtype=torch.long)
    for i, w in enumerate(waves):
        values[i, : len(w)], mask[i, : len(w)] = torch.from_numpy(w), 1
    return {"input_values": values, "attention_mask": mask}


def source_embeddings(folder: Path, waves: list[np.ndarray]) -> torch.Tensor:
    """What a transformers user computes: each clip through the folder's feature extractor, zero-padded to the
    longest, with the attention mask only where the extractor returns one; AutoModel's last hidden states
    averaged over each clip's own frames."""
    extractor = transformers.AutoFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    each = [extractor(w, sampling_rate=RATE, return_tensors="pt") for w in waves]
    batch = as_batch([e["input_values"][0].numpy() for e in each])
    mask = batch["attention_mask"] if extractor.return_attention_mask else None
    with torch.no_grad():
        states = model(batch["input_values"], attention_mask=mask).last_hidden_state
    frames = model._get_feat_extract_output_lengths(torch.tensor([len(w) for w in waves]))
    keep = (torch.arange(states.shape[1])[None] < frames[:, None]).unsqueeze(-1).float()
    return (states * keep).sum(1) / keep.sum(1)


@pytest.mark.parametrize("family", FAMILIES)
def test_encoder_from_checkpoint_embeds_as_the_source_model(ws, family, capfd):
    capfd.readouterr()
    encoder = build_encoder({"name": "hf_audio", "source": str(ws[family])}).eval()
    printed = "".join(capfd.readouterr())
    assert "UNEXPECTED" not in printed and "LOAD REPORT" not in printed  # no transformers load report
    source = transformers.AutoModel.from_pretrained(str(ws[family]), local_files_only=True)
    assert type(encoder.hf_model).__name__ == type(source).__name__  # the checkpoint's architecture
    normalize, mask = CHECKPOINTS[family][2]
    assert (encoder.sample_rate, encoder.normalize, encoder.attention_mask) == (RATE, normalize, mask)
    assert encoder.config == {"name": "hf_audio", "source": str(ws[family]), "pretrained": True, "sample_rate": RATE,
                              "pool": "mean"}
    waves = clips()
    with torch.no_grad():
        ours = encoder.embed(as_batch(waves))
        frames = encoder(as_batch(waves))
    assert frames.shape[-1] == encoder.dim == 32
    torch.testing.assert_close(ours, source_embeddings(ws[family], waves), rtol=1e-5, atol=1e-5)
    scratch = build_encoder({**encoder.config, "pretrained": False}).eval()
    with torch.no_grad():
        assert not torch.allclose(scratch.embed(as_batch(waves)), ours, atol=1e-3)
    # while it trains, frames are masked only where a method asks, and every layer runs (no LayerDrop)
    config = encoder.hf_model.config
    assert (config.mask_time_prob, config.mask_feature_prob, config.layerdrop) == (0.0, 0.0, 0.0)
    assert source.config.layerdrop == 0.1


def masked_batch(encoder, seed: int = 0) -> dict[str, torch.Tensor]:
    """A wav2vec2 batch (masks and distractors drawn with a fixed seed)."""
    seed_all(seed)
    method = get_method("wav2vec2", Modality.AUDIO).cls(encoder, 6400, **HPARAMS["wav2vec2"])
    return method.pretext(Modality.AUDIO)(tone_mixtures(8, seed=seed))


def test_wav2vec2_continues_with_the_checkpoints_own_quantiser(ws, caplog):
    folder = ws["wav2vec2_pt"]
    source = transformers.Wav2Vec2ForPreTraining.from_pretrained(str(folder), local_files_only=True).eval()
    wav2vec2 = get_method("wav2vec2", Modality.AUDIO).cls
    with caplog.at_level(logging.INFO, logger="selfsup"):
        method = wav2vec2(build_encoder({"name": "hf_audio", "source": str(folder)}), 6400).eval()
    assert any("own quantiser (2 codebooks of 8 entries)" in r.getMessage() for r in caplog.records)
    assert method.hp.codebook_size == 8 and method.hp.proj_dim == 16  # the checkpoint's, not the defaults
    for name in ("quantizer.codevectors", "quantizer.weight_proj.weight", "project_q.weight", "project_hid.weight"):
        torch.testing.assert_close(method.pretraining.get_parameter(name), source.get_parameter(name), rtol=0, atol=0)
    assert method.pretraining.wav2vec2 is method.encoder.hf_model  # trained together with the exported encoder
    batch = masked_batch(method.encoder)
    waves, mask = method.encoder.prepare_inputs(batch)
    with torch.no_grad():
        ours = method.loss(batch).loss
        theirs = source(waves, attention_mask=mask, mask_time_indices=batch["mask_time_indices"],
                        sampled_negative_indices=batch["negatives"]).loss / batch["mask_time_indices"].sum()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)  # the same quantiser: the same loss
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="selfsup"):  # a folder saved without it: a fresh quantiser, said
        fresh = wav2vec2(build_encoder({"name": "hf_audio", "source": str(ws["wav2vec2"])}), 6400,
                         **HPARAMS["wav2vec2"])
    assert any("holds no quantiser" in r.getMessage() for r in caplog.records)
    assert fresh.pretraining.quantizer.codevectors.shape[1] == 2 * HPARAMS["wav2vec2"]["codebook_size"]


@pytest.mark.parametrize("family,name", [("wav2vec2_pt", "wav2vec2"), ("hubert", "wav2vec2"), ("hubert", "data2vec"),
                                         ("wavlm", "hubert"), ("data2vec", "data2vec")])
def test_methods_continue_a_checkpoint_and_lower_their_loss(ws, family, name):
    """A fixed batch, fixed masks per step: the method's loss falls over 15 steps and the encoder moves; HuBERT's
    model (no extract_features) feeds wav2vec 2.0's quantiser, data2vec-audio saved without a mask vector gets
    one that trains."""
    seed_all(0)
    encoder = build_encoder({"name": "hf_audio", "source": str(ws[family])})
    method = get_method(name, Modality.AUDIO).cls(encoder, 6400, **HPARAMS[name])
    if name == "hubert":
        fit_hubert(method, [tone_mixtures(8, seed=1), tone_mixtures(8, seed=2)])
    start = {k: v.detach().clone() for k, v in encoder.named_parameters()}
    pretext = method.pretext(get_modality("audio"))
    batch = tone_mixtures(8)
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(15):
        seed_all(step % 3)
        out = method.loss(pretext(batch, torch.Generator().manual_seed(step % 3)))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_step_end((step + 1) / 15)
        losses.append(out.loss.item())
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    moved = {k for k, v in encoder.named_parameters() if not torch.equal(v, start[k])}
    assert any(k.startswith("hf_model.encoder.") for k in moved) and "hf_model.masked_spec_embed" in moved


def test_pretrain_from_init_then_evaluate_embed_and_export(ws, tmp_path):
    run = tmp_path / "run"
    argv = ["pretrain", ws["train"], "--modality", "audio", "--method", "wav2vec2", "--init", ws["wav2vec2_pt"],
            "--out", run, "--batch-size", "8", "--no-progress"]
    code, out, err = run_cli([*argv, "--max-steps", "4"])
    assert code == 0, err
    assert "LOAD REPORT" not in err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["encoder"] == {"name": "hf_audio", "source": str(ws["wav2vec2_pt"]), "sample_rate": RATE}
    assert config["data"]["sample_rate"] == RATE  # the feature extractor's (the files are 8 kHz)
    assert (config["method"]["codebooks"], config["method"]["codebook_size"]) == (2, 8)  # the checkpoint's quantiser
    assert all(np.isfinite(logged_losses(run)))
    trained = api.load(run)
    start = build_encoder(trained.config)
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), start.state_dict().values()))
    code, _, err = run_cli([*argv, "--max-steps", "6"])
    assert code == 0 and global_step(run) == 6, err  # the same command with more steps resumes

    code, out, err = run_cli(["evaluate", run, "--train", ws["train"], "--test", ws["test"], "--protocol",
                              "knn,linear", "--label-fractions", "1.0", "--baseline", "init,scratch,mfcc"])
    assert code == 0, err
    assert "gain_init" in out  # the run against the checkpoint it started from
    rows = json.loads((run / "eval.json").read_text())
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert {r["encoder"] for r in rows} == {"pretrained", "init", "scratch", "mfcc"}
    assert {r["protocol"] for r in rows if r["encoder"] == "init"} == {"knn", "linear"}

    embedded = torch.from_numpy(np.load(api.embed(run, ws["test"], tmp_path / "e.npy")))
    exported = api.export(run, tmp_path / "hf", format="huggingface")
    model = transformers.AutoModel.from_pretrained(str(exported), local_files_only=True)
    assert type(model).__name__ == "Wav2Vec2Model"  # the source's architecture
    source = transformers.AutoConfig.from_pretrained(str(ws["wav2vec2_pt"]), local_files_only=True)
    for key in ("mask_time_prob", "layerdrop", "do_stable_layer_norm", "feat_extract_norm", "conv_dim"):
        assert getattr(model.config, key) == getattr(source, key), key  # training-time changes put back
    extractor = transformers.AutoFeatureExtractor.from_pretrained(str(exported), local_files_only=True)
    assert (extractor.sampling_rate, extractor.do_normalize, extractor.return_attention_mask) == (RATE, True, True)
    waves, _ = unlabeled_waves(ws["test"], RATE, None, progress=False)
    waves = [w[~torch.isnan(w)].numpy() for w in waves]
    torch.testing.assert_close(source_embeddings(exported, waves), embedded, rtol=1e-4, atol=1e-4)
    reloaded = api.load(exported)  # selfsup reads its own huggingface export back
    assert reloaded.config["source"] == str(ws["wav2vec2_pt"])


def test_run_with_zero_learning_rate_embeds_as_the_source(ws, tmp_path):
    """The whole pipeline (sample rate, encoder config, checkpoint, reload, resampled files) keeps the source's
    embeddings; a checkpoint without a mask vector exports without one."""
    run = tmp_path / "run"
    api.pretrain(ws["train"], "data2vec", run, modality="audio", init=ws["data2vec"], max_steps=2, batch_size=8,
                 overrides={"optim.lr": 0.0}, progress_bar=False)
    embedded = torch.from_numpy(np.load(api.embed(run, ws["test"], tmp_path / "e.npy")))
    waves, _ = unlabeled_waves(ws["test"], RATE, None, progress=False)
    waves = [w[~torch.isnan(w)].numpy() for w in waves]
    torch.testing.assert_close(embedded, source_embeddings(ws["data2vec"], waves), rtol=1e-4, atol=1e-4)
    rows = api.evaluate(run, ws["train"], ws["test"], protocols=["linear"], label_fractions=[1.0],
                        baseline="init")
    scores = {r.encoder: r.value for r in rows}
    assert scores["init"] == pytest.approx(scores["pretrained"])  # lr 0: the run is still its checkpoint
    exported = api.export(run, tmp_path / "hf", format="huggingface")
    model = transformers.AutoModel.from_pretrained(str(exported), local_files_only=True)
    assert not hasattr(model, "masked_spec_embed")  # as the source: its config masks nothing


def pretrain_argv(ws, init, *extra) -> list:
    return ["pretrain", ws["train"], "--modality", "audio", "--init", init, "--out", ws["root"] / "never", *extra]


def test_init_mistakes_are_one_line(ws, tmp_path):
    bert, whisper = tmp_path / "bert", tmp_path / "whisper"
    transformers.BertConfig().save_pretrained(bert)
    transformers.WhisperConfig().save_pretrained(whisper)
    no_extractor, mel_extractor = tmp_path / "no-extractor", tmp_path / "mel-extractor"
    shutil.copytree(ws["hubert"], no_extractor)
    (no_extractor / "preprocessor_config.json").unlink()
    shutil.copytree(ws["hubert"], mel_extractor)
    transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(mel_extractor)
    cases = [
        (bert, (), ("'bert' is not an audio model", "--modality text", "give an audio checkpoint")),
        (whisper, (), ("'whisper' is not a waveform model", "wav2vec2, hubert, wavlm, data2vec-audio")),
        (no_extractor, (), ("no preprocessor_config.json", "AutoFeatureExtractor.from_pretrained(ORIGINAL)")),
        (mel_extractor, (), ("WhisperFeatureExtractor does not take raw waveforms", "feature_size 80")),
        (ws["hubert"], ("--sample-rate", "8000"), ("takes recordings at 16000 Hz", "not data.sample_rate=8000",
                                                   "leave out --sample-rate")),
        (ws["hubert"], ("--encoder", "wav2vec2_tiny"), ("sets the architecture", "leave out --encoder wav2vec2_tiny")),
        (ws["hubert"], ("--clip-seconds", "0.02"), ("clips of 0.02 s are shorter than two of its frames (0.045 s",
                                                    "--clip-seconds 1")),
    ]
    for source, extra, fragments in cases:
        line = assert_one_line_error(*run_cli(pretrain_argv(ws, source, *extra))[::2], *fragments)
        assert str(source) in line
    assert not (ws["root"] / "never").exists()  # every mistake above is caught before anything is written
    # a sample rate set after --init, weights that do not fit the config beside them, a folder without weights:
    # found when the encoder is built
    reshaped, unweighted = damaged_copies(ws["wavlm"], tmp_path)
    for folder, extra, fragments in (
            (ws["wavlm"], ("--set", "data.sample_rate=8000"), ("takes recordings at 16000 Hz",)),
            (reshaped, (), ("do not fit the architecture", "(64,) saved, (48,) expected")),
            (unweighted, (), ("cannot be loaded", "no file named model.safetensors"))):
        code, _, err = run_cli(["pretrain", ws["train"], "--modality", "audio", "--init", folder, "--out",
                                tmp_path / f"run-{folder.name}", "--max-steps", "1", "--no-progress", *extra])
        assert_one_line_error(code, err, str(folder), *fragments)


def test_model_id_resolves_from_the_local_cache_only(ws, tmp_path, monkeypatch):
    """An ``org/name`` id is read from the Hugging Face cache (never downloaded) and recorded as the id."""
    from selfsup.config import RunConfig

    cache_model(ws["hubert"], "local/tiny-hubert", tmp_path / "hub", monkeypatch)
    config = RunConfig()
    config.data.modality = "audio"
    settings = get_modality("audio").init_settings("local/tiny-hubert", config)
    assert settings == {"encoder.name": "hf_audio", "encoder.source": "local/tiny-hubert", "data.sample_rate": RATE}
    encoder = build_encoder({"name": "hf_audio", "source": "local/tiny-hubert", "sample_rate": RATE}).eval()
    waves = clips(2, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(encoder.embed(as_batch(waves)), source_embeddings(ws["hubert"], waves))
