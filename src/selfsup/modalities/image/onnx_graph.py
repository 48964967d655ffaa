"""The image encoder as ``--format onnx`` exports it: uint8 ``pixels`` [B, 3, S, S] at the run's image size in,
selfsup's normalisation inside the graph (pixels / 255, then the ImageNet mean and standard deviation, as
:func:`~selfsup.pretext.image_eval.eval_transform` does; an encoder started from a checkpoint with other input
statistics converts to them inside itself, :class:`~selfsup.encoders.input_stats.InputStats`)."""

from __future__ import annotations

import torch
from torch import nn

from ...pretext.image_ops import IMAGENET_MEAN, IMAGENET_STD


class PixelsToEmbedding(nn.Module):
    """uint8 pixels [B, 3, S, S] -> (embedding [B, D] as ``encoder.embed`` of the normalised images, the encoder's
    tokens [B, T, D]: a ViT's patch tokens, a CNN's feature map flattened)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = (pixels.to(torch.float32) / 255.0 - self.mean) / self.std
        tokens = self.encoder(images)
        return self.encoder.pool(tokens), tokens


def image_graph(loaded):
    """:meth:`~selfsup.modalities.base.Modality.onnx_graph` for images: an example batch of two random images."""
    from ...onnx_export import OnnxGraph

    side = loaded.input_size
    pixels = torch.randint(0, 256, (2, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return OnnxGraph(PixelsToEmbedding(loaded.encoder), {"pixels": pixels}, {"pixels": {0: "batch"}},
                     {"image_size": side, "pixels": "uint8 RGB, resized to image_size x image_size by the caller "
                                                     "(grayscale repeated to 3 channels)",
                      "normalisation": {"scale": 1 / 255, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}})
