"""A timm architecture plus a local weights file as a selfsup image encoder (``--encoder ARCH --init FILE``;
``timm_image``).

The weights are loaded with timm's own mechanism for local files, ``timm.create_model(arch, pretrained=True,
pretrained_cfg_overlay=dict(file=FILE), num_classes=0)``: the architecture's checkpoint filter (position
embeddings resampled, original key layouts renamed) and its classifier handling apply as for timm's own
weights. timm reads ``.safetensors`` with safetensors and ``.pth``/``.pt``/``.bin`` with
``torch.load(weights_only=True)`` (``timm.models._helpers.load_state_dict``): nothing is unpickled beyond
tensors and plain containers. timm only logs weights the file lacks when the classifier is dropped; selfsup
reads that report and stops with one line instead of training a half-initialised network.

The encoder's embedding is what the model itself offers (``forward_head(forward_features(x), pre_logits=True)``:
average pooling for CNNs, the class token for ViTs), so it equals ``timm.create_model(..., num_classes=0)(x)``.
A plain timm ViT (class token, absolute position embeddings, no register tokens) becomes a
:class:`~selfsup.encoders.image.ViTEncoder`, so the masked-image methods (MAE, SimMIM, data2vec) continue it.
``--format huggingface`` exports timm's Hugging Face Hub layout (``config.json`` + ``model.safetensors`` with
timm's key names), which ``timm.create_model("local-dir:DIR")``, the ``pretrained_cfg_overlay`` file route and
``transformers.AutoModel`` (``TimmWrapperModel``) all load.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..errors import SelfSupError, did_you_mean
from ..pretext.image_ops import IMAGENET_MEAN, IMAGENET_STD
from ..registry import encoder_names, register_encoder
from .base import Encoder
from .image import ViTEncoder
from .input_stats import InputStats, Stats, as_stats

log = logging.getLogger("selfsup")

NAME = "timm_image"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
TIMM_BUILDER_LOG = "timm.models._builder"  # where timm reports the weights a file lacks or has in excess
_REPORT = re.compile(r"^(Missing|Unexpected) keys \((.*)\) (?:discovered|found) while loading pretrained weights")
_MISMATCH = re.compile(r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
                       r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)")


def is_weights_file(source: str) -> bool:
    """Whether ``--init source`` names a weights file (an existing file, or a name with a weights suffix) rather
    than a Hugging Face model folder or id."""
    path = Path(source).expanduser()
    return path.is_file() or (not path.is_dir() and path.suffix.lower() in WEIGHT_SUFFIXES)


TIMM_FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # timm's Hub layout, in timm's order of preference


@dataclass(frozen=True)
class TimmFolder:
    """A folder in timm's Hugging Face Hub layout (``config.json`` naming an ``architecture``, beside
    ``model.safetensors`` or ``pytorch_model.bin``), as ``timm.models.push_to_hf_hub``/``save_for_hf`` and a
    timm_image run's ``--format huggingface`` export write it."""

    arch: str
    weights: Path
    mean: Stats | None
    std: Stats | None
    image_size: int | None


def timm_folder(source: str) -> TimmFolder | None:
    """``source`` as a timm Hub-layout folder, None when it is not one (a Hugging Face transformers folder has a
    ``model_type``, not an ``architecture``); one line when its weights file is missing."""
    folder = Path(source).expanduser()
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or "model_type" in config or not isinstance(config.get("architecture"), str):
        return None
    weights = next((folder / name for name in TIMM_FOLDER_WEIGHTS if (folder / name).is_file()), None)
    if weights is None:
        raise SelfSupError(f"--init {source}: a timm model folder ({config['architecture']}) without weights; it needs "
                           f"{' or '.join(TIMM_FOLDER_WEIGHTS)} beside its config.json")
    cfg = config.get("pretrained_cfg") or {}
    size = cfg.get("input_size")
    return TimmFolder(config["architecture"], weights.resolve(), tuple(cfg["mean"]) if "mean" in cfg else None,
                      tuple(cfg["std"]) if "std" in cfg else None, int(size[-1]) if size else None)


def weights_path(source: str) -> Path:
    """The absolute path of a weights file, or one line saying why ``source`` is not one."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise SelfSupError(f"--init {source}: no such weights file; give a .safetensors, .pth, .pt or .bin file "
                           "saved from a timm model, or a Hugging Face model folder")
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise SelfSupError(f"--init {source}: not a weights file ({path.suffix or 'no suffix'}); give a .safetensors, "
                           ".pth, .pt or .bin file saved from a timm model, or a Hugging Face model folder")
    return path.resolve()


def check_arch(arch: str | None, source: str) -> str:
    """``arch`` when it names a timm architecture (``timm.list_models()``, with or without a pretrained tag), else
    one line: none given, a selfsup-only preset, or an unknown name."""
    example = "e.g. --encoder resnet50; timm.list_models() lists them"
    if not arch:
        raise SelfSupError(f"--init {source}: a weights file needs the timm architecture it was saved from; add "
                           f"--encoder ARCH ({example})")
    if timm.is_model(arch):
        return arch
    if arch in encoder_names():
        raise SelfSupError(f"--init {source}: --encoder {arch} is a selfsup preset, not a timm architecture; name the "
                           f"timm architecture the weights were saved from ({example})")
    raise SelfSupError(f"--init {source}: --encoder {arch} is not a timm architecture"
                       f"{did_you_mean(arch, timm.list_models())}; name the one the weights were saved from ({example})")


@dataclass(frozen=True)
class TimmDefaults:
    """What an architecture's pretrained config says about its inputs."""

    mean: Stats
    std: Stats
    image_size: int


def timm_defaults(arch: str) -> TimmDefaults:
    """Input statistics and side of ``arch``'s default pretrained weights (ImageNet's and 224 px when timm has
    none)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    if cfg is None:
        return TimmDefaults(IMAGENET_MEAN, IMAGENET_STD, 224)
    return TimmDefaults(tuple(cfg.mean), tuple(cfg.std), int(cfg.input_size[-1]))


class _TimmReport(logging.Handler):
    """Collects the weights timm reports missing or unused while it loads a file (timm logs them, at INFO, only
    when the classifier is dropped), and keeps its loading messages off the user's terminal."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.keys: dict[str, list[str]] = {"Missing": [], "Unexpected": []}

    def emit(self, record: logging.LogRecord) -> None:
        found = _REPORT.match(record.getMessage())
        if found:
            self.keys[found.group(1)] += [k.strip() for k in found.group(2).split(",") if k.strip()]


@contextmanager
def _timm_report() -> Iterator[_TimmReport]:
    logger = logging.getLogger(TIMM_BUILDER_LOG)
    handler, level, propagate = _TimmReport(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.strip("[]").split(",") if n.strip())


def create(arch: str, source: str | None, pretrained: bool) -> nn.Module:
    """``timm.create_model(arch, num_classes=0)`` with the weights of the file ``source`` (timm's local-file
    route), or at random initialisation; one line for a file that cannot be read or does not fit."""
    if not pretrained:
        return timm.create_model(arch, pretrained=False, num_classes=0)
    path = weights_path(str(source))
    fix = f"check that --encoder {arch} is the architecture {path.name} was saved from"
    # custom_load=False: always timm's state-dict route (a few architectures default to their own .npz reader)
    overlay = {"file": str(path), "custom_load": False}
    with _timm_report() as report:
        try:
            model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=0)
        except RuntimeError as err:
            mismatched = _MISMATCH.findall(str(err))
            if mismatched:
                key, saved, built = mismatched[0]
                raise SelfSupError(f"--init {source}: {len(mismatched)} weight(s) do not fit timm's {arch} (e.g. "
                                   f"{key}: {_shape(saved)} saved, {_shape(built)} expected); {fix}") from None
            if "Error(s) in loading state_dict" in str(err):  # a strict load: keys missing or left over
                reason = " ".join(str(err).split())[:240]
                raise SelfSupError(f"--init {source}: does not fit timm's {arch} ({reason}); {fix}") from None
            raise _unreadable(source, err) from None
        except Exception as err:  # safetensors / unpickling errors, a file holding something else than weights
            raise _unreadable(source, err) from None
    missing = report.keys["Missing"]
    if missing:
        raise SelfSupError(f"--init {source}: weights missing for {len(missing)} parameter(s) of timm's {arch} (e.g. "
                           f"{missing[0]}); {fix}")
    if report.keys["Unexpected"]:
        log.info("--init %s: weights not used by %s: %s", source, arch, ", ".join(report.keys["Unexpected"][:8]))
    return model


def _unreadable(source: str, err: Exception) -> SelfSupError:
    reason = (" ".join(str(err).split()) or type(err).__name__)[:200]
    return SelfSupError(f"--init {source}: cannot be read as model weights ({reason}); give a .safetensors file, or a "
                        ".pth/.pt/.bin state dict saved with torch.save (read with weights_only=True)")


def _fits_vit_encoder(model: nn.Module) -> bool:
    """A plain ViT that :class:`ViTEncoder` drives (class token, absolute position embeddings including it, no
    register tokens, a patch embedding of square patches)."""
    return (type(model) is VisionTransformer and model.cls_token is not None and model.reg_token is None
            and model.pos_embed is not None and not model.no_embed_class and model.num_prefix_tokens == 1
            and type(model.patch_embed) is PatchEmbed and len(set(model.patch_embed.patch_size)) == 1)


def _pooled_dim(model: nn.Module) -> int:
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


class TimmExport:
    """What both timm encoders share: the export in timm's Hugging Face Hub layout, and reading it back."""

    model: nn.Module
    stats: InputStats
    config: dict

    def load_export(self, folder: Path) -> None:
        """The weights of a ``huggingface`` export (timm's key names)."""
        from safetensors.torch import load_file

        missing, unexpected = self.model.load_state_dict(load_file(str(Path(folder) / "model.safetensors")),
                                                         strict=False)
        if missing or unexpected:
            raise SelfSupError(f"{folder}: weights do not fit timm's {self.config['arch']} (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}); re-export the run")

    def save_pretrained(self, folder: str) -> None:
        """timm's Hub layout: ``model.safetensors`` (timm key names, no classifier) and ``config.json`` (the
        architecture, and as its preprocessing the run's image side and the input statistics)."""
        from safetensors.torch import save_file
        from timm.models._hub import save_config_for_hf

        out = Path(folder)
        size = int(self.config["image_size"])
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(out / "model.safetensors"))
        data = {"input_size": (3, size, size), "mean": self.stats.mean, "std": self.stats.std, "crop_pct": 1.0,
                "crop_mode": "center", "interpolation": "bilinear"}
        save_config_for_hf(self.model, str(out / "config.json"), data_config=data)
        config = json.loads((out / "config.json").read_text())
        # transformers' TimmWrapperModel passes num_classes=0 itself; the root num_classes (0) tells timm
        config.get("model_args", {}).pop("num_classes", None)
        config.get("pretrained_cfg", {}).pop("tag", None)  # the tag of timm's own weights; these are the run's
        (out / "config.json").write_text(json.dumps(config, indent=2))


class TimmEncoder(TimmExport, Encoder):
    """Any timm model without its classifier. Tokens are ``forward_features`` as [B, T, D] (a CNN's feature map
    flattened; a transformer's tokens as they are); the embedding is the model's own head (pre-logits)."""

    def __init__(self, model: nn.Module, stats: InputStats, config: dict) -> None:
        super().__init__()
        self.model, self.stats, self.config = model, stats, config
        self.dim = _pooled_dim(model)
        self.channels_last = getattr(model, "output_fmt", "NCHW") == "NHWC"  # Swin-style [B, H, W, C] maps
        self.spatial: bool | None = None  # whether forward_features gives a map (known after the first pass)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(self.stats(inputs))
        self.spatial = features.ndim == 4
        return features

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.features(inputs)
        if not self.spatial:
            return features
        return features.flatten(1, 2) if self.channels_last else features.flatten(2).transpose(1, 2)

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The model's own head on the features the tokens of :meth:`forward` came from (a CNN's square map
        rebuilt)."""
        if self.spatial is None:
            raise RuntimeError("pool() takes the tokens of forward(); call forward first, or embed()")
        if self.spatial:
            b, t, c = tokens.shape
            side = math.isqrt(t)
            if side * side != t:
                raise ValueError(f"{t} tokens are not a square feature map; use embed() for this input")
            grid = tokens.reshape(b, side, side, c)
            tokens = grid if self.channels_last else grid.permute(0, 3, 1, 2)
        return self.model.forward_head(tokens, pre_logits=True)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.features(inputs), pre_logits=True)

    def _cannot_mask(self) -> SelfSupError:
        return SelfSupError(f"encoder {NAME!r} ({self.config['arch']}) cannot hide input patches; masked image methods "
                            "need a plain timm ViT (class token, no register tokens; e.g. vit_small_patch16_224) or "
                            "--encoder vit_micro, vit_tiny or vit_small")


class TimmViTEncoder(TimmExport, ViTEncoder):
    """A plain timm ViT from a weights file: :class:`ViTEncoder` (masking for MAE, SimMIM, data2vec) with the
    checkpoint's input statistics and its own head (class token or average, then ``fc_norm``) as the embedding."""

    def __init__(self, model: VisionTransformer, stats: InputStats, config: dict) -> None:
        super().__init__(model, config)
        self.stats = stats
        self.dim = _pooled_dim(model)
        self.num_patches = (int(config["image_size"]) // self.patch_size) ** 2  # the run's grid (MAE's masks)

    def embedded(self, inputs: torch.Tensor, keep_idx: torch.Tensor | None = None,
                 token_mask: torch.Tensor | None = None, mask_token: torch.Tensor | None = None) -> torch.Tensor:
        return super().embedded(self.stats(inputs), keep_idx, token_mask, mask_token)

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.forward_head(tokens, pre_logits=True)


@register_encoder("timm_image", "any timm architecture (encoder.arch) with the weights of a local file "
                  "(encoder.source: .safetensors/.pth/.pt/.bin); set by --encoder ARCH --init FILE")
def timm_image(arch: str | None = None, source: str | None = None, pretrained: bool = True, image_size: int = 224,
               input_mean: list[float] | None = None, input_std: list[float] | None = None) -> Encoder:
    """timm's ``arch`` with the weights in ``source`` (``pretrained=False``: the same architecture at random
    initialisation, the ``scratch`` baseline). ``input_mean``/``input_std``: the statistics the weights expect
    (default: the architecture's pretrained config)."""
    label = source or f"encoder {NAME}"
    arch = check_arch(arch, label)
    if pretrained and not source:
        raise SelfSupError(f"encoder {NAME!r} needs encoder.source, a weights file; use --encoder {arch} --init FILE, "
                           "or encoder.pretrained=false for random weights")
    defaults = timm_defaults(arch)
    mean = as_stats(input_mean, defaults.mean, "input_mean", label)
    std = as_stats(input_std, defaults.std, "input_std", label)
    model = create(arch, source, bool(pretrained))
    model.train()
    config = {"name": NAME, "arch": arch, **({"source": str(source)} if source else {}),
              "pretrained": bool(pretrained), "image_size": int(image_size), "input_mean": list(mean),
              "input_std": list(std)}
    stats = InputStats(mean, std)
    if not _fits_vit_encoder(model):
        return TimmEncoder(model, stats, config)
    patch = model.patch_embed.patch_size[0]
    if int(image_size) % patch:
        raise SelfSupError(f"image size {image_size} is not a multiple of {arch}'s patch size {patch}; use "
                           f"--image-size {max(patch, int(image_size) // patch * patch)} or "
                           f"{(int(image_size) // patch + 1) * patch}")
    return TimmViTEncoder(model, stats, config)
