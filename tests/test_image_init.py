"""``--init`` for images: a timm architecture plus a local weights file, or a Hugging Face vision folder; the
checkpoint's input statistics; ``--baseline init``; the export back to timm and transformers.

Every checkpoint is made here, tiny: timm's ``test_*`` architectures saved to ``.safetensors`` and ``.pth``, and
ViT, DINOv2 and ConvNeXt configs written with ``save_pretrained`` (one with a ``preprocessor_config.json`` of
non-ImageNet statistics). Nothing is downloaded: a socket guard fails any test that opens a network connection.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file

from cli_checks import assert_one_line_error, logged_losses, run_cli
from conftest import CLASSES, cache_model, make_pattern
from selfsup import api
from selfsup.encoders import build_encoder
from selfsup.encoders.image import ViTEncoder
from selfsup.modalities import get_modality
from selfsup.pretext.image_ops import normalize

SIDE = 32  # the test images' side and the runs' image size: no resizing anywhere, so pixels compare exactly
HALF = [0.5, 0.5, 0.5]  # the Inception-style statistics of timm's test_* weights and of the ViT folder below
HF_FAMILIES = {
    "vit": transformers.ViTConfig(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64),
    "dinov2": transformers.Dinov2Config(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, mlp_ratio=2),
    "convnext": transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=SIDE),
}


pytestmark = pytest.mark.usefixtures("no_network")  # conftest: any connection fails the test


def write_images(root: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make_pattern(kind, rng, size=SIDE)).save(root / kind / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """32 px image folders (unlabeled, labeled train/test), timm weights files and Hugging Face folders."""
    root = tmp_path_factory.mktemp("image_init")
    made = {"root": root, "images": write_images(root / "images", 16, seed=0),
            "train": write_images(root / "train", 8, seed=1), "test": write_images(root / "test", 4, seed=2)}
    torch.manual_seed(0)
    for arch in ("test_resnet", "test_vit", "test_vit2"):
        state = {k: v.contiguous() for k, v in timm.create_model(arch, num_classes=0).state_dict().items()}
        made[arch] = root / f"{arch}.safetensors"
        save_file(state, str(made[arch]))
    made["test_resnet.pth"] = root / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet", num_classes=1000).state_dict(), made["test_resnet.pth"])  # with head
    for family, config in HF_FAMILIES.items():
        made[family] = root / family
        transformers.AutoModel.from_config(config).save_pretrained(made[family])
    (made["vit"] / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "ViTImageProcessor", "image_mean": HALF, "image_std": HALF,
         "size": {"height": SIDE, "width": SIDE}}))
    (made["dinov2"] / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "BitImageProcessor", "image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.3, 0.25],
         "size": {"shortest_edge": 24}, "crop_size": {"height": 24, "width": 24}, "do_center_crop": True}))
    return made


def raw_images(n: int = 4, side: int = SIDE) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def own_normalisation(images: torch.Tensor, mean, std) -> torch.Tensor:
    """What the checkpoint's own preprocessing gives: pixels in 0..1, normalised with its statistics."""
    return (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def timm_embeddings(arch: str, weights: Path, images: torch.Tensor) -> torch.Tensor:
    """What a timm user computes: the model from the file (timm's local-file route), pre-logits features."""
    model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)),
                              num_classes=0).eval()
    with torch.no_grad():
        return model(own_normalisation(images, model.pretrained_cfg["mean"], model.pretrained_cfg["std"]))


def hf_embeddings(folder: Path, pixel_values: torch.Tensor) -> torch.Tensor:
    """What a transformers user computes: the class token of the final states (ViT), else ``pooler_output``."""
    model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    kwargs = {"interpolate_pos_encoding": True} if model.config.model_type == "vit" else {}
    with torch.no_grad():
        out = model(pixel_values=pixel_values, **kwargs)
    return out.last_hidden_state[:, 0] if model.config.model_type == "vit" else out.pooler_output


def folder_images(folder: Path) -> torch.Tensor:
    """The images of a folder as uint8 [N, 3, S, S], in the order ``selfsup embed`` writes them."""
    return torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)
                        for p in sorted(folder.rglob("*.png"))])


def assert_left_the_checkpoint(run: Path) -> None:
    """The run's encoder is no longer the checkpoint it started from (rebuilt from its config: ``--baseline init``)."""
    trained = api.load(run)
    start = build_encoder(trained.config)
    moved = sum(float((a.detach() - b.detach()).double().pow(2).sum())
                for a, b in zip(trained.parameters(), start.parameters()))
    assert moved > 0, f"{run}: the encoder's weights are still the checkpoint's"


def embed(encoder, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return encoder.eval().embed(normalize(images))


@pytest.mark.parametrize("arch,file", [("test_resnet", "test_resnet"), ("test_resnet", "test_resnet.pth"),
                                       ("test_vit", "test_vit"), ("test_vit2", "test_vit2")])
def test_timm_encoder_embeds_as_timm(ws, arch, file, capfd):
    encoder = build_encoder({"name": "timm_image", "arch": arch, "source": str(ws[file]), "image_size": SIDE})
    assert "Loading" not in "".join(capfd.readouterr())  # timm's load messages stay off the terminal
    assert encoder.config["input_mean"] == HALF  # the architecture's pretrained statistics, not ImageNet's
    assert isinstance(encoder, ViTEncoder) == (arch == "test_vit")  # a plain ViT (class token) can be masked
    images = raw_images()
    ours = embed(encoder, images)
    torch.testing.assert_close(ours, timm_embeddings(arch, ws[file], images), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the pooled tokens are the same embedding
        torch.testing.assert_close(encoder.pool(encoder(normalize(images))), ours, rtol=1e-5, atol=1e-5)
    assert encoder.dim == ours.shape[1]
    scratch = build_encoder({**encoder.config, "pretrained": False})
    assert not torch.allclose(embed(scratch, images), ours)


def test_input_statistics_are_converted_exactly_and_can_be_overridden(ws):
    images = raw_images()
    config = {"name": "timm_image", "arch": "test_resnet", "source": str(ws["test_resnet"]), "image_size": SIDE}
    imagenet = build_encoder({**config, "input_mean": [0.485, 0.456, 0.406], "input_std": [0.229, 0.224, 0.225]})
    assert imagenet.stats.identity  # selfsup's own normalisation passes through untouched
    model = timm.create_model("test_resnet", pretrained=True, num_classes=0,
                              pretrained_cfg_overlay=dict(file=str(ws["test_resnet"]))).eval()
    mean, std = [0.3, 0.4, 0.5], [0.2, 0.25, 0.3]
    with torch.no_grad():
        torch.testing.assert_close(embed(build_encoder({**config, "input_mean": mean, "input_std": std}), images),
                                   model(own_normalisation(images, mean, std)), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(embed(imagenet, images), model(normalize(images)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", list(HF_FAMILIES))
def test_hf_encoder_embeds_as_automodel(ws, family, capfd):
    encoder = build_encoder({"name": "hf_image", "source": str(ws[family]), "image_size": SIDE})
    assert "Loading weights" not in "".join(capfd.readouterr())
    stats = {"vit": (HALF, HALF), "dinov2": ([0.4, 0.5, 0.6], [0.2, 0.3, 0.25]),
             "convnext": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}[family]
    assert (encoder.config["input_mean"], encoder.config["input_std"]) == stats  # the folder's preprocessor config
    for side in (SIDE, 48):  # the training size, and another (ViT: interpolated position embeddings)
        images = raw_images(side=side)
        ours = embed(encoder, images)
        torch.testing.assert_close(ours, hf_embeddings(ws[family], own_normalisation(images, *stats)),
                                   rtol=1e-5, atol=1e-5)
    assert encoder.dim == ours.shape[1]
    assert not torch.allclose(embed(build_encoder({**encoder.config, "pretrained": False}), images), ours)


def test_init_settings_come_from_the_checkpoint(ws):
    from selfsup.config import RunConfig, set_value

    image = get_modality("image")
    settings = image.init_settings(str(ws["dinov2"]), RunConfig())
    assert settings == {"encoder.name": "hf_image", "encoder.source": str(ws["dinov2"]),
                        "encoder.input_mean": [0.4, 0.5, 0.6], "encoder.input_std": [0.2, 0.3, 0.25],
                        "data.image_size": 24}  # the processor's crop, not the config's image_size
    config = RunConfig()
    set_value(config, "encoder.name", "test_vit")
    settings = image.init_settings(str(ws["test_vit"]), config)
    assert settings == {"encoder.name": "timm_image", "encoder.arch": "test_vit",
                        "encoder.source": str(ws["test_vit"].resolve()), "encoder.input_mean": HALF,
                        "encoder.input_std": HALF, "data.image_size": 160}


def test_pretrain_from_timm_weights_then_evaluate_and_export(ws, tmp_path):
    run = tmp_path / "run"
    argv = ["pretrain", ws["images"], "--method", "simclr", "--encoder", "test_resnet", "--init",
            ws["test_resnet.pth"], "--out", run, "--image-size", SIDE, "--max-steps", "12", "--batch-size", "16",
            "--set", "optim.lr=0.01", "--no-progress"]
    code, _, err = run_cli(argv)
    assert code == 0, err
    config = json.loads(json.dumps(api.load(run).config))
    assert config["source"] == str(ws["test_resnet.pth"].resolve()) and config["image_size"] == SIDE
    losses = logged_losses(run)
    assert losses[-1] < losses[0]  # continued training lowers the loss
    assert_left_the_checkpoint(run)
    code, out, err = run_cli(["evaluate", run, "--train", ws["train"], "--test", ws["test"], "--protocol",
                              "linear", "--label-fractions", "1.0", "--baseline", "init,scratch,pixels"])
    assert code == 0, err
    assert "gain_init" in out
    rows = json.loads((run / "eval.json").read_text())
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert {r["encoder"] for r in rows} == {"pretrained", "init", "scratch", "pixels"}

    embedded = torch.from_numpy(np.load(api.embed(run, ws["test"], tmp_path / "e.npy")))
    exported = api.export(run, tmp_path / "timm", format="huggingface")
    images = folder_images(ws["test"])
    torch.testing.assert_close(timm_embeddings("test_resnet", exported / "model.safetensors", images), embedded,
                               rtol=1e-4, atol=1e-4)  # timm's own local-file route
    model = transformers.AutoModel.from_pretrained(str(exported), local_files_only=True).eval()  # TimmWrapperModel
    with torch.no_grad():
        pooled = model(pixel_values=own_normalisation(images, HALF, HALF)).pooler_output
    torch.testing.assert_close(pooled, embedded, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(embed(api.load(exported), images), embedded, rtol=1e-4, atol=1e-4)  # selfsup too


def test_pretrain_from_hf_vit_then_export_to_transformers(ws, tmp_path):
    run = tmp_path / "run"
    api.pretrain(ws["images"], "simclr", run, init=ws["vit"], max_steps=12, batch_size=16, progress_bar=False,
                 overrides={"optim.lr": 0.003})
    loaded = api.load(run)
    assert loaded.config["name"] == "hf_image" and loaded.config["image_size"] == SIDE  # the checkpoint's size
    losses = logged_losses(run)
    assert losses[-1] < losses[0]
    assert_left_the_checkpoint(run)
    embedded = torch.from_numpy(np.load(api.embed(run, ws["test"], tmp_path / "e.npy")))
    exported = api.export(run, tmp_path / "hf", format="huggingface")
    model = transformers.AutoModel.from_pretrained(str(exported), local_files_only=True).eval()
    assert type(model).__name__ == "ViTModel"  # the source's architecture
    processor = transformers.AutoImageProcessor.from_pretrained(str(exported))
    assert list(processor.image_mean) == HALF  # the checkpoint's statistics travel with it
    pixels = processor([Image.open(p).convert("RGB") for p in sorted(ws["test"].rglob("*.png"))],
                       return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        theirs = model(pixel_values=pixels).last_hidden_state[:, 0]
    torch.testing.assert_close(theirs, embedded, rtol=1e-4, atol=1e-4)
    reloaded = api.load(exported)  # selfsup reads its own export back
    assert reloaded.config["source"] == str(ws["vit"])
    torch.testing.assert_close(embed(reloaded, folder_images(ws["test"])), embedded, rtol=1e-4, atol=1e-4)


def test_vit_export_at_another_image_size_needs_no_flag(ws, tmp_path):
    """A ViT run at another size than its checkpoint's exports position embeddings for the run's size, resampled as
    the run resampled them: AutoModel reads the run's images as they are."""
    encoder = build_encoder({"name": "hf_image", "source": str(ws["vit"]), "image_size": 48})
    encoder.save_pretrained(str(tmp_path))
    model = transformers.AutoModel.from_pretrained(str(tmp_path), local_files_only=True).eval()
    assert model.config.image_size == 48
    images = raw_images(side=48)
    with torch.no_grad():
        theirs = model(pixel_values=own_normalisation(images, HALF, HALF)).last_hidden_state[:, 0]
    torch.testing.assert_close(theirs, embed(encoder, images), rtol=1e-5, atol=1e-5)


def test_run_with_zero_learning_rate_keeps_the_checkpoint(ws, tmp_path):
    """The whole pipeline (settings, encoder config, checkpoint, reload, --baseline init) keeps the source's
    embeddings; a timm ViT continues with a masked-image method."""
    run = tmp_path / "run"
    api.pretrain(ws["images"], "mae", run, encoder="test_vit", init=ws["test_vit"], image_size=SIDE, max_steps=2,
                 batch_size=16, overrides={"optim.lr": 0.0}, progress_bar=False)
    embedded = torch.from_numpy(np.load(api.embed(run, ws["test"], tmp_path / "e.npy")))
    images = folder_images(ws["test"])
    torch.testing.assert_close(embedded, timm_embeddings("test_vit", ws["test_vit"], images), rtol=1e-4, atol=1e-4)
    rows = api.evaluate(run, ws["train"], ws["test"], protocols=["knn"], label_fractions=[1.0], baseline="init")
    scores = {r.encoder: r.value for r in rows}
    assert set(scores) == {"pretrained", "init"} and scores["init"] == pytest.approx(scores["pretrained"])


def test_mae_continues_a_timm_vit(ws, tmp_path):
    run = tmp_path / "run"
    api.pretrain(ws["images"], "mae", run, encoder="test_vit", init=ws["test_vit"], image_size=SIDE, max_steps=10,
                 batch_size=16, overrides={"optim.lr": 0.003}, progress_bar=False)
    losses = logged_losses(run)
    assert losses[-1] < losses[0]
    assert_left_the_checkpoint(run)


def pretrain_argv(ws, init, *extra) -> list:
    return ["pretrain", ws["images"], "--init", init, "--out", ws["root"] / "never", "--image-size", SIDE, *extra]


def test_init_mistakes_are_one_line(ws, tmp_path):
    bert, notes, pickled, text = tmp_path / "bert", tmp_path / "notes.txt", tmp_path / "evil.pth", tmp_path / "t.pth"
    transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32).save_pretrained(bert)
    notes.write_text("not weights\n")
    text.write_text("not weights either\n")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    pickled.write_bytes(pickle.dumps({"conv1.weight": Evil()}))
    resnet = ("--encoder", "test_resnet")
    cases = [
        (pretrain_argv(ws, ws["test_resnet"]), ("needs the timm architecture", "add --encoder ARCH")),
        (pretrain_argv(ws, ws["test_resnet"], "--encoder", "tiny_cnn"),
         ("--encoder tiny_cnn is a selfsup preset, not a timm architecture",)),
        (pretrain_argv(ws, ws["test_resnet"], "--encoder", "resnet5O"),
         ("--encoder resnet5O is not a timm architecture", "did you mean")),
        (pretrain_argv(ws, tmp_path / "missing.safetensors", *resnet), ("missing.safetensors", "no such weights file")),
        (pretrain_argv(ws, notes, *resnet), ("notes.txt", "not a weights file (.txt)")),
        (pretrain_argv(ws, bert), ("'bert' is not an image model", "--modality text")),
        (pretrain_argv(ws, ws["vit"], "--encoder", "resnet18"), ("leave out --encoder resnet18",)),
    ]
    for argv, fragments in cases:
        assert_one_line_error(*run_cli(argv)[::2], *fragments)
    assert not (ws["root"] / "never").exists()  # each mistake above is caught before anything is written
    # found when the encoder is built: weights of another architecture, a file that is not a state dict
    built = [
        (ws["test_resnet"], ("resnet10t",), ("do not fit timm's resnet10t", "(16, 3, 3, 3) saved, (24, 3, 3, 3) "
                                             "expected", "check that --encoder resnet10t is the architecture "
                                             "test_resnet.safetensors was saved from")),
        (ws["test_resnet"], ("test_vit",), ("weights missing for 78 parameter(s) of timm's test_vit", "cls_token")),
        (pickled, ("test_resnet",), ("evil.pth", "cannot be read as model weights", "weights_only=True")),
        (text, ("test_resnet",), ("t.pth", "cannot be read as model weights")),
    ]
    for i, (weights, (arch,), fragments) in enumerate(built):
        argv = ["pretrain", ws["images"], "--init", weights, "--encoder", arch, "--out", tmp_path / f"run{i}",
                "--image-size", SIDE, "--max-steps", "1", "--no-progress"]
        assert_one_line_error(*run_cli(argv)[::2], str(weights), *fragments)
    assert not marker.exists()  # nothing in the file was unpickled
    code, _, err = run_cli(["pretrain", ws["images"], "--init", ws["dinov2"], "--out", tmp_path / "odd",
                            "--image-size", "30", "--max-steps", "1", "--no-progress"])
    assert_one_line_error(code, err, "image size 30 is not a multiple of its patch size 8", "--image-size 24 or 32")
    code, _, err = run_cli(["pretrain", ws["images"], "--method", "data2vec", "--init", ws["convnext"], "--out",
                            tmp_path / "masked", "--image-size", SIDE, "--max-steps", "1", "--no-progress"])
    assert_one_line_error(code, err, "cannot hide input patches", "--encoder ARCH --init FILE")


JOINT_EMBEDDING = ("simclr", "byol", "moco", "dino", "vicreg", "barlow_twins", "simsiam", "swav")


@pytest.mark.parametrize("method,source", [(m, s) for m in JOINT_EMBEDDING for s in ("test_resnet", "vit", "convnext")]
                         + [(m, "test_vit") for m in ("mae", "simmim", "data2vec")])
def test_methods_train_a_checkpoint(ws, method, source):
    """Every joint-embedding method trains an encoder from a checkpoint, and the masked-image methods a timm ViT:
    finite losses, gradients reach the checkpoint's weights and move them (multi-crop methods feed it smaller local
    crops too)."""
    from selfsup.registry import get_method
    from selfsup.types import Modality

    torch.manual_seed(0)
    config = ({"name": "timm_image", "arch": source, "source": str(ws[source])} if source.startswith("test_")
              else {"name": "hf_image", "source": str(ws[source])})
    encoder = build_encoder({**config, "image_size": SIDE})
    start = [p.detach().clone() for p in encoder.parameters() if p.requires_grad]
    learner = get_method(method, Modality.IMAGE).cls(encoder, SIDE)
    pretext = learner.pretext(Modality.IMAGE)
    optimizer = torch.optim.AdamW([p for p in learner.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for step in range(2):
        out = learner.loss(pretext(raw_images(8), generator))
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        learner.on_step_end((step + 1) / 2)
    moved = [float((p.detach() - s).abs().max()) for p, s in zip(
        (p for p in encoder.parameters() if p.requires_grad), start)]
    assert sum(m > 0 for m in moved) > 0.9 * len(moved), f"{method}: most of the checkpoint's weights stay put"


def test_model_id_resolves_from_the_local_cache_only(ws, tmp_path, monkeypatch):
    """An ``org/name`` vision id is read from the Hugging Face cache (never downloaded) and recorded as the id."""
    cache_model(ws["vit"], "local/tiny-vit", tmp_path / "hub", monkeypatch)
    from selfsup.config import RunConfig

    settings = get_modality("image").init_settings("local/tiny-vit", RunConfig())
    assert settings["encoder.source"] == "local/tiny-vit" and settings["encoder.input_mean"] == HALF
    encoder = build_encoder({"name": "hf_image", "source": "local/tiny-vit", "image_size": SIDE})
    images = raw_images()
    torch.testing.assert_close(embed(encoder, images), hf_embeddings(ws["vit"], own_normalisation(images, HALF, HALF)),
                               rtol=1e-5, atol=1e-5)


def test_vit_saved_without_pooler_loads_and_exports_whole(ws, tmp_path):
    """A ViT folder saved without its pooler (unused by selfsup) loads; the export carries a pooler, so AutoModel
    reads it without a load report."""
    folder = tmp_path / "nopool"
    transformers.ViTModel(HF_FAMILIES["vit"], add_pooling_layer=False).save_pretrained(folder)
    encoder = build_encoder({"name": "hf_image", "source": str(folder), "image_size": SIDE})
    images = raw_images()
    imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    torch.testing.assert_close(embed(encoder, images), hf_embeddings(folder, own_normalisation(images, *imagenet)),
                               rtol=1e-5, atol=1e-5)
    encoder.save_pretrained(str(tmp_path / "export"))
    _, info = transformers.AutoModel.from_pretrained(str(tmp_path / "export"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_timm_hub_folder_is_a_source_of_its_own(ws, tmp_path):
    """A folder in timm's Hub layout (config.json naming the architecture + model.safetensors, as timm's
    save_for_hf writes it) names its architecture itself: no --encoder, embeddings equal timm's local-dir route."""
    from timm.models import save_for_hf

    from selfsup.config import RunConfig

    folder = tmp_path / "timm_folder"
    source = timm.create_model("test_resnet", pretrained=True, num_classes=0,
                               pretrained_cfg_overlay=dict(file=str(ws["test_resnet"])))
    save_for_hf(source, str(folder), model_config={"architecture": "test_resnet"}, safe_serialization=True)
    settings = get_modality("image").init_settings(str(folder), RunConfig())
    assert (settings["encoder.arch"], settings["encoder.source"]) == ("test_resnet",
                                                                       str((folder / "model.safetensors").resolve()))
    encoder = build_encoder({key.split(".", 1)[1]: value for key, value in settings.items()
                             if key.startswith("encoder.")} | {"image_size": SIDE})
    images = raw_images()
    reference = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=0).eval()
    mean, std = settings["encoder.input_mean"], settings["encoder.input_std"]
    with torch.no_grad():
        torch.testing.assert_close(embed(encoder, images), reference(own_normalisation(images, mean, std)),
                                   rtol=1e-5, atol=1e-5)
    (folder / "model.safetensors").unlink()
    with pytest.raises(Exception, match="without weights"):
        get_modality("image").init_settings(str(folder), RunConfig())


@pytest.mark.parametrize("frozen", [None, False])
def test_a_pretrained_cnn_keeps_its_batchnorm_statistics(ws, tmp_path, frozen):
    """Continued pretraining from a checkpoint leaves the encoder's BatchNorm running statistics as the checkpoint
    measured them (by default; trainer.frozen_norm_stats=false updates them from the augmented views), and its
    encoder trains at a tenth of the heads' rate (optim.init_lr_scale)."""
    run = tmp_path / "run"
    overrides = {"optim.init_lr_scale": 1e-9, **({} if frozen is None else {"trainer.frozen_norm_stats": frozen})}
    api.pretrain(ws["images"], "simclr", run, encoder="test_resnet", init=ws["test_resnet"], image_size=SIDE,
                 max_steps=3, batch_size=16, progress_bar=False, overrides=overrides)
    source = build_encoder({**api.load(run).config}).state_dict()
    trained = api.load(run).state_dict()
    stats = [key for key in source if key.endswith(("running_mean", "running_var"))]
    assert stats
    unchanged = all(torch.equal(source[key], trained[key]) for key in stats)
    assert unchanged is (frozen is None)
