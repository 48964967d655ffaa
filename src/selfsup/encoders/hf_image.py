"""A Hugging Face vision checkpoint as a selfsup image encoder (``--init SOURCE`` on images; ``hf_image``).

The architecture is the checkpoint's (``AutoConfig``/``AutoModel``: ViT, DINOv2, ConvNeXt and their close
relatives), never selfsup's presets. Tokens are ``last_hidden_state`` as [B, T, D] (a ConvNeXt's feature map
flattened); the embedding is the one the model itself offers for an image: the class token of the final
(layer-normed) states for ViT (Dosovitskiy et al. 2021) and DINOv2 (Oquab et al. 2024), ConvNeXt's
``pooler_output``, the layer-normed average of its last map (Liu et al. 2022). ViTs read other image sizes than
they were trained at through ``interpolate_pos_encoding``. The checkpoint's input statistics come from its
``preprocessor_config.json`` (``image_mean``/``image_std``; :mod:`.input_stats`). ``--format huggingface``
writes the model back (``AutoModel.from_pretrained``) with an image processor that prepares images as selfsup
does (shorter side resized, centre crop, the checkpoint's statistics).
"""

from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import SelfSupError
from ..pretext.image_ops import IMAGENET_MEAN, IMAGENET_STD
from ..registry import register_encoder
from .base import Encoder
from .hf_checkpoint import load_hf_config, load_pretrained, open_checkpoint
from .input_stats import InputStats, Stats, as_stats

if TYPE_CHECKING:  # pragma: no cover
    import transformers

NAME = "hf_image"
PROCESSOR_FILE = "preprocessor_config.json"
# how each architecture family turns its last states into the image's embedding, by model_type
CLASS_TOKEN = ("vit", "dinov2", "dinov2_with_registers", "deit")
NORMED_AVERAGE = ("convnext", "convnextv2")  # pooler_output: layernorm(mean over the final map)
POOLING = {**{kind: "cls" for kind in CLASS_TOKEN}, **{kind: "normed_mean" for kind in NORMED_AVERAGE}}


@dataclass(frozen=True)
class ImageCheckpoint:
    """A vision checkpoint folder and what it says about its inputs."""

    folder: Path
    config: transformers.PretrainedConfig
    mean: Stats
    std: Stats
    image_size: int
    patch_size: int | None  # None: any size (a CNN)


def _processor(folder: Path) -> dict:
    path = folder / PROCESSOR_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _side(value: object) -> int | None:
    """The side of a processor's ``size``/``crop_size`` entry (an int, or a dict of height/shortest_edge)."""
    if isinstance(value, dict):
        value = value.get("height", value.get("shortest_edge"))
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def image_checkpoint(source: str) -> ImageCheckpoint:
    """The vision checkpoint ``source`` (a folder or a cached model id), or one line saying why it is not one."""
    folder, config = open_checkpoint(source, "image")
    if config.model_type not in POOLING:
        raise SelfSupError(f"checkpoint {source}: selfsup does not know how {config.model_type!r} models embed an "
                           f"image; use one of {', '.join(POOLING)}, or a timm architecture with a weights file "
                           "(--encoder ARCH --init FILE)")
    processor = _processor(folder)
    size = (_side(processor.get("crop_size")) if processor.get("do_center_crop", True) else None) \
        or _side(processor.get("size")) or _side(getattr(config, "image_size", None)) or 224
    mean = as_stats(processor.get("image_mean"), IMAGENET_MEAN, "input_mean", source)
    std = as_stats(processor.get("image_std"), IMAGENET_STD, "input_std", source)
    patch = getattr(config, "patch_size", None) if POOLING[config.model_type] == "cls" else None
    return ImageCheckpoint(folder, config, mean, std, int(size), int(patch) if patch else None)


def check_patch_size(checkpoint: ImageCheckpoint, source: str, image_size: int) -> None:
    """One line when ``image_size`` is not a whole number of the checkpoint's patches."""
    patch = checkpoint.patch_size
    if patch and image_size % patch:
        lower = max(patch, image_size // patch * patch)
        raise SelfSupError(f"checkpoint {source}: image size {image_size} is not a multiple of its patch size {patch}; "
                           f"use --image-size {lower} or {lower + patch}")


class HFImageEncoder(Encoder):
    """A transformers vision model: tokens [B, T, D] and the model's own image embedding (see the module)."""

    def __init__(self, hf_model: nn.Module, stats: InputStats, pooling: str, patch_size: int | None,
                 config: dict) -> None:
        super().__init__()
        self.hf_model, self.stats, self.pooling, self.config = hf_model, stats, pooling, config
        self.dim = int(getattr(hf_model.config, "hidden_size", None) or hf_model.config.hidden_sizes[-1])
        if patch_size:
            self.patch_size = patch_size  # multi-crop methods size their local crops by it
        parameters = inspect.signature(hf_model.forward).parameters
        self.kwargs = {"interpolate_pos_encoding": True} if "interpolate_pos_encoding" in parameters else {}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        states = self.hf_model(pixel_values=self.stats(inputs), **self.kwargs).last_hidden_state
        return states.flatten(2).transpose(1, 2) if states.ndim == 4 else states

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pooling == "cls":
            return tokens[:, 0]
        return self.hf_model.layernorm(tokens.mean(dim=1))

    def _cannot_mask(self) -> SelfSupError:
        return SelfSupError(f"encoder {NAME!r} (a Hugging Face vision checkpoint) cannot hide input patches; masked "
                            "image methods need a ViT selfsup drives: a timm ViT's weights (--encoder ARCH --init FILE) "
                            "or --encoder vit_micro, vit_tiny or vit_small")

    def load_export(self, folder: Path) -> None:
        """The weights of a ``huggingface`` export, read by transformers (it maps the names it saved to the model's)."""
        self.hf_model = _frozen_unused(_from_folder(folder, str(folder), load_hf_config(folder, str(folder))))

    def save_pretrained(self, folder: str) -> None:
        """The model (``AutoModel.from_pretrained``) and an image processor preparing images as selfsup does: the
        shorter side resized to the run's image size (bilinear), a centre crop, the checkpoint's statistics."""
        import transformers
        from PIL import Image

        size = int(self.config["image_size"])
        (_at_size(self.hf_model, size) if self.kwargs else self.hf_model).save_pretrained(folder)
        transformers.BitImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_center_crop=True,
            resample=Image.Resampling.BILINEAR, image_mean=list(self.stats.mean), image_std=list(self.stats.std),
        ).save_pretrained(folder)


def _at_size(model: nn.Module, size: int) -> nn.Module:
    """A ViT-family model whose position embeddings cover ``size`` px images: its own at the size it was built for,
    else resampled by its own ``interpolate_pos_encoding`` (what it computed at every step of the run) into a copy
    whose config says ``image_size`` = ``size``, so the export reads the run's images without any flag."""
    import transformers

    built, patch = int(model.config.image_size), int(model.config.patch_size)
    if built == size:
        return model
    saved = model.embeddings.position_embeddings
    prefix = saved.shape[1] - (built // patch) ** 2  # class (and distillation) tokens
    with torch.no_grad():
        resampled = model.embeddings.interpolate_pos_encoding(
            saved.new_zeros(1, prefix + (size // patch) ** 2, saved.shape[2]), size, size)
    config = copy.deepcopy(model.config)
    config.image_size = size
    resized = transformers.AutoModel.from_config(config)
    if getattr(model, "pooler", True) is None:
        resized.pooler = None
    resized.load_state_dict({**model.state_dict(), "embeddings.position_embeddings": resampled})
    return resized


def _from_folder(folder: Path, source: str, config: transformers.PretrainedConfig) -> nn.Module:
    """``AutoModel.from_pretrained(folder)`` with its pooler (ViT's dense + tanh: kept so that an export is the same
    architecture; fresh, as transformers itself makes it, when the folder was saved without one)."""
    import transformers

    return load_pretrained(transformers.AutoModel, folder, source, config, allow_missing=("pooler",))


def _model(checkpoint: ImageCheckpoint, source: str, pretrained: bool) -> nn.Module:
    """The checkpoint's model, or (``pretrained=False``) the same architecture at random initialisation; what
    selfsup does not use (ViT's pooler, DINOv2's mask token) is kept but frozen (:func:`_frozen_unused`)."""
    import transformers

    if pretrained:
        return _frozen_unused(_from_folder(checkpoint.folder, source, checkpoint.config))
    return _frozen_unused(transformers.AutoModel.from_config(checkpoint.config))


def _frozen_unused(model: nn.Module) -> nn.Module:
    """``model`` with what selfsup does not use frozen (ViT's pooler, DINOv2's mask token): DDP wants a gradient for
    every trainable parameter."""
    for name, parameter in model.named_parameters():
        if name.startswith("pooler.") or name.endswith("mask_token"):
            parameter.requires_grad_(False)
    return model


@register_encoder("hf_image", "a Hugging Face vision checkpoint (ViT, DINOv2, ConvNeXt families) from encoder.source, "
                  "a model folder or a cached model id; set by --init SOURCE")
def hf_image(source: str | None = None, pretrained: bool = True, image_size: int = 224,
             input_mean: list[float] | None = None, input_std: list[float] | None = None) -> Encoder:
    """The checkpoint ``source`` with its own architecture and weights (``pretrained=False``: the same architecture
    randomly initialised, the ``scratch`` baseline). ``input_mean``/``input_std``: the statistics it expects
    (default: its ``preprocessor_config.json``, else ImageNet's)."""
    if not source:
        raise SelfSupError(f"encoder {NAME!r} needs encoder.source, a Hugging Face model folder or cached model id; "
                           "use --init SOURCE")
    checkpoint = image_checkpoint(source)
    check_patch_size(checkpoint, source, int(image_size))
    mean = as_stats(input_mean, checkpoint.mean, "input_mean", source)
    std = as_stats(input_std, checkpoint.std, "input_std", source)
    model = _model(checkpoint, source, bool(pretrained))
    model.train()  # from_pretrained returns eval mode; every selfsup encoder is built in training mode
    config = {"name": NAME, "source": str(source), "pretrained": bool(pretrained), "image_size": int(image_size),
              "input_mean": list(mean), "input_std": list(std)}
    return HFImageEncoder(model, InputStats(mean, std), POOLING[checkpoint.config.model_type], checkpoint.patch_size,
                          config)
