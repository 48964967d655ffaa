"""``selfsup export RUN --format onnx``: for every modality and encoder family, the exported ``model.onnx`` run by
onnxruntime on what a user has (uint8 pixels, token ids, waveforms, item ids) gives the embeddings ``selfsup embed``
writes for the same files, at two batch sizes and (text, audio, sequences) two lengths; without the extra, one line.

Every encoder is tiny and made here (random weights; the pretrained families from configs written with
``save_pretrained`` or a timm ``test_*`` architecture); it is written as a safetensors export folder, which
``selfsup export`` and ``selfsup embed`` both read like a run folder. Nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import timm
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file

from cli_checks import assert_one_line_error, run_cli
from conftest import CLASSES, make_pattern
from selfsup.artifacts import LoadedEncoder, export_safetensors, load as load_stored
from selfsup.encoders import build_encoder
from selfsup.modalities.text.tokenizer import token_spec, train_tokenizer
from selfsup.pretext.image_ops import normalize

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from selfsup.onnx_export import run_onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")  # conftest: any connection fails the test

SIDE, RATE, CLIP = 32, 8000, 4000  # image size; audio: sample rate and clip samples (0.5 s)
TEXTS = ["the cat sat", "a dog ran in the park after the rain", "birds sing", "the green mat was on the floor "
         "near the door of the old house", "rain"]
ATOL = 1e-4
TINY_AUDIO = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2, "conv_dim": (16,) * 7}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """Data of each modality and the pretrained checkpoints the ``hf_*`` / ``timm_image`` encoders start from."""
    root = tmp_path_factory.mktemp("onnx")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(5):
        Image.fromarray(make_pattern(CLASSES[i % 3], rng, size=SIDE)).save(root / "images" / f"{i}.png")
    (root / "texts").mkdir()
    (root / "texts" / "a.txt").write_text("\n".join(TEXTS) + "\n")
    (root / "audio").mkdir()
    for i, seconds in enumerate((0.2, 0.3, 0.7, 0.35, 0.5)):  # longer than a clip: centre-cropped
        t = np.arange(int(seconds * RATE)) / RATE
        sf.write(root / "audio" / f"{i}.wav", (0.4 * np.sin(2 * np.pi * (200 + 300 * i) * t)).astype(np.float32), RATE)
    rows = ["user,item,timestamp"] + [f"u{u},i{(u + t) % 7},{10 * u + t}" for u in range(5) for t in range(2 + 2 * u)]
    (root / "log.csv").write_text("\n".join(rows) + "\n")
    torch.manual_seed(0)
    tok = train_tokenizer(TEXTS, vocab_size=80, min_frequency=1)
    made = {"root": root, "images": root / "images", "texts": root / "texts", "audio": root / "audio",
            "log": root / "log.csv", "tokenizer": tok, "timm": root / "test_resnet.safetensors"}
    save_file({k: v.contiguous() for k, v in timm.create_model("test_resnet", num_classes=0).state_dict().items()},
              str(made["timm"]))
    made["hf_image"] = root / "vit"
    transformers.ViTModel(transformers.ViTConfig(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                                 num_attention_heads=2, intermediate_size=64),
                          add_pooling_layer=False).save_pretrained(made["hf_image"])
    made["hf_text"] = root / "bert"
    transformers.BertModel(transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=64,
                                                   pad_token_id=tok.pad_token_id)).save_pretrained(made["hf_text"])
    tok.save_pretrained(made["hf_text"])
    made["hf_audio"] = root / "wav2vec2"
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**TINY_AUDIO, feat_extract_norm="layer",
                                                           do_stable_layer_norm=True)).save_pretrained(made["hf_audio"])
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=True,
                                          return_attention_mask=True).save_pretrained(made["hf_audio"])
    return made


def encoder_case(ws, name: str) -> LoadedEncoder:
    """The encoder ``name`` (a family of each modality) as a loaded export, with what its modality needs."""
    tok = ws["tokenizer"]
    image = {"tiny_cnn": {}, "resnet18_cifar": {}, "vit_micro": {"patch_size": 8},
             "timm_image": {"arch": "test_resnet", "source": str(ws["timm"])}, "hf_image": {"source": str(ws["hf_image"])}}
    if name in image:
        return LoadedEncoder(build_encoder({"name": name, "image_size": SIDE, **image[name]}).eval(), "image", SIDE, "simclr")
    if name in ("bert_tiny", "gpt_tiny", "hf_text"):
        source = {"source": str(ws["hf_text"])} if name == "hf_text" else {"max_length": 16}
        encoder = build_encoder({"name": name, **token_spec(tok).to_dict(), **source})
        return LoadedEncoder(encoder.eval(), "text", 16, "simcse", tokenizer=tok)
    if name in ("wav2vec2_tiny", "hf_audio"):
        settings = {"source": str(ws["hf_audio"])} if name == "hf_audio" else {"sample_rate": RATE}
        return LoadedEncoder(build_encoder({"name": name, **settings}).eval(), "audio", CLIP, "wav2vec2")
    item_map = {f"i{i}": i + 1 for i in range(7)}
    encoder = build_encoder({"name": name, "num_items": len(item_map), "max_length": 6, "dropout": 0.0})
    return LoadedEncoder(encoder.eval(), "sequence", 6, "sasrec", item_map=item_map)


def exported(ws, tmp_path: Path, name: str) -> tuple[Path, Path, dict]:
    """(the safetensors export folder that stands for the run, the ONNX export folder, its selfsup.json)."""
    torch.manual_seed(0)
    run = export_safetensors(encoder_case(ws, name), tmp_path / "run")
    code, out, err = run_cli(["export", run, "--format", "onnx", "--out", tmp_path / "onnx"])
    assert code == 0, err
    assert (tmp_path / "onnx" / "model.onnx").is_file()
    print(f"{name}: exporter", json.loads((tmp_path / "onnx" / "selfsup.json").read_text())["onnx"]["exporter"])
    return run, tmp_path / "onnx", json.loads((tmp_path / "onnx" / "selfsup.json").read_text())


def embedded(run: Path, data: Path, out: Path) -> np.ndarray:
    """What ``selfsup embed RUN DATA --out out.npy`` writes."""
    code, _, err = run_cli(["embed", run, data, "--out", out])
    assert code == 0, err
    return np.load(out)


def check_batches(model: Path, batches: list[dict[str, torch.Tensor]], expected: np.ndarray, dim: int) -> None:
    """Each batch (rows of ``expected`` in order) run by onnxruntime gives those rows, and token states [B, T, D]."""
    row = 0
    for batch in batches:
        embedding, tokens = run_onnx(model, batch)
        size = next(iter(batch.values())).shape[0]
        np.testing.assert_allclose(embedding, expected[row: row + size], atol=ATOL, rtol=0)
        assert embedding.shape == (size, dim) and tokens.ndim == 3 and tokens.shape[::2] == (size, dim)
        row += size
    assert row == len(expected)
    last = {name: value[-1:] for name, value in batches[-1].items()}  # a batch of one
    np.testing.assert_allclose(run_onnx(model, last)[0], expected[-1:], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18_cifar", "vit_micro", "timm_image", "hf_image"])
def test_image_encoders(ws, tmp_path, name):
    from selfsup.modalities.image.readers import load_unlabeled

    run, folder, meta = exported(ws, tmp_path, name)
    assert meta["format"] == "onnx" and meta["onnx"]["inputs"]["pixels"] == {"dtype": "uint8",
                                                                          "shape": ["batch", 3, SIDE, SIDE]}
    expected = embedded(run, ws["images"], tmp_path / "emb.npy")
    pixels = load_unlabeled(ws["images"], SIDE).images  # uint8 [5, 3, S, S], in the order embed writes
    assert pixels.dtype == torch.uint8
    check_batches(folder / "model.onnx", [{"pixels": pixels[:2]}, {"pixels": pixels[2:]}], expected,
                  load_stored(run).encoder.dim)


@pytest.mark.parametrize("name", ["bert_tiny", "gpt_tiny", "hf_text"])
def test_text_encoders(ws, tmp_path, name):
    run, folder, meta = exported(ws, tmp_path, name)
    assert meta["onnx"]["inputs"]["input_ids"]["shape"] == ["batch", "length"]
    expected = embedded(run, ws["texts"], tmp_path / "emb.npy")
    tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)  # the tokenizer beside it
    short = tok(TEXTS[:2], padding=True, truncation=True, max_length=16, return_tensors="np")  # its own longest
    full = tok(TEXTS[2:], padding="max_length", truncation=True, max_length=16, return_tensors="np")  # padded to 16
    assert short["input_ids"].shape[1] != full["input_ids"].shape[1]
    batches = [{"input_ids": torch.from_numpy(b["input_ids"]).long(),
                "attention_mask": torch.from_numpy(b["attention_mask"]).long()} for b in (short, full)]
    check_batches(folder / "model.onnx", batches, expected, load_stored(run).encoder.dim)


@pytest.mark.parametrize("name", ["wav2vec2_tiny", "hf_audio"])
def test_audio_encoders(ws, tmp_path, name):
    from selfsup.modalities.audio.readers import unlabeled_waves

    run, folder, meta = exported(ws, tmp_path, name)
    assert meta["onnx"]["sample_rate"] == RATE and meta["onnx"]["inputs"]["waveform"]["dtype"] == "float32"
    expected = embedded(run, ws["audio"], tmp_path / "emb.npy")
    waves, _ = unlabeled_waves(ws["audio"], RATE, CLIP, progress=False)  # the recordings as embed reads them
    mask = (~torch.isnan(waves)).long()
    waves = torch.nan_to_num(waves, nan=0.0)  # raw samples, zero-padded: not normalised
    first = int(mask[:2].sum(1).max())  # the first batch trimmed to its longest clip, the second at full width
    batches = [{"waveform": waves[:2, :first], "attention_mask": mask[:2, :first]},
               {"waveform": waves[2:], "attention_mask": mask[2:]}]
    assert first != waves.shape[1]
    check_batches(folder / "model.onnx", batches, expected, load_stored(run).encoder.dim)


@pytest.mark.parametrize("name", ["sasrec_tiny", "bert4rec_tiny"])
def test_sequence_encoders(ws, tmp_path, name):
    run, folder, meta = exported(ws, tmp_path, name)
    assert meta["onnx"]["inputs"]["item_ids"]["shape"] == ["batch", "length"]
    expected = embedded(run, ws["log"], tmp_path / "emb.npy")  # users u0..u4, histories of 2, 4, 6, 8, 10 items
    item_map = json.loads((folder / "item_map.json").read_text())
    histories = [[item_map[f"i{(u + t) % 7}"] for t in range(2 + 2 * u)][-6:] for u in range(5)]

    def padded(rows: list[list[int]]) -> torch.Tensor:
        ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)  # 0 = padding
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids

    batches = [{"item_ids": padded(histories[:2])}, {"item_ids": padded(histories[2:])}]
    assert batches[0]["item_ids"].shape[1] != batches[1]["item_ids"].shape[1]
    check_batches(folder / "model.onnx", batches, expected, load_stored(run).encoder.dim)


def test_without_the_extra_it_is_one_line(ws, tmp_path, monkeypatch):
    run = export_safetensors(encoder_case(ws, "tiny_cnn"), tmp_path / "run")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if it were not installed
    code, _, err = run_cli(["export", run, "--format", "onnx", "--out", tmp_path / "onnx"])
    assert_one_line_error(code, err, "onnxruntime", "pip install 'selfsup[onnx]'")
    assert not (tmp_path / "onnx").exists()


def test_the_torchscript_exporter_takes_over_when_dynamo_fails(ws, tmp_path, monkeypatch):
    import selfsup.onnx_export as onnx_export

    export = onnx_export._export

    def dynamo_fails(graph, path, dynamo):
        if dynamo:
            raise RuntimeError("unsupported operator\nmore detail")
        export(graph, path, dynamo)

    run = export_safetensors(encoder_case(ws, "tiny_cnn"), tmp_path / "run")
    monkeypatch.setattr(onnx_export, "_export", dynamo_fails)
    code, _, err = run_cli(["export", run, "--format", "onnx", "--out", tmp_path / "onnx"])
    assert code == 0, err
    assert json.loads((tmp_path / "onnx" / "selfsup.json").read_text())["onnx"]["exporter"] == "torchscript"
    pixels = torch.randint(0, 256, (3, 3, SIDE, SIDE), dtype=torch.uint8)
    with torch.no_grad():
        own = load_stored(run).encoder.embed(normalize(pixels))  # selfsup's own normalisation
    np.testing.assert_allclose(run_onnx(tmp_path / "onnx" / "model.onnx", {"pixels": pixels})[0], own.numpy(),
                               atol=ATOL, rtol=0)

    def both_fail(graph, path, dynamo):
        raise RuntimeError(f"{'dynamo' if dynamo else 'tracing'} cannot do this")

    monkeypatch.setattr(onnx_export, "_export", both_fail)
    code, _, err = run_cli(["export", run, "--format", "onnx", "--out", tmp_path / "again"])
    assert_one_line_error(code, err, "'tiny_cnn' could not be exported", "dynamo cannot do this", "tracing cannot",
                          "--format safetensors")
    assert not (tmp_path / "again" / "model.onnx").exists()
