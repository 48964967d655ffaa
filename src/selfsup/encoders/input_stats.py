"""The input statistics a pretrained image checkpoint expects (``encoder.input_mean`` / ``encoder.input_std``).

selfsup's image pipeline normalises every image with the ImageNet mean and standard deviation
(:data:`~selfsup.pretext.image_ops.IMAGENET_MEAN`); a checkpoint may have been trained on other statistics
(Inception-style mean = std = 0.5: EfficientNet-Lite's TF weights, many timm and Hugging Face models). An
encoder started from such a checkpoint converts its ImageNet-normalised input to the checkpoint's statistics
first, exactly: ``x_raw = x * S_imagenet + M_imagenet`` and ``x' = (x_raw - mean) / std`` are one affine map per
channel, so the pixels the checkpoint sees are those its own preprocessing would give.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import SelfSupError

Stats = tuple[float, float, float]


def _is_triple(value: object, positive: bool) -> bool:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return False
    numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(numbers) == 3 and all((v > 0) if positive else (-1e3 < v < 1e3) for v in numbers)


def valid_mean(value: object) -> bool:
    """Three numbers, one per RGB channel (in the 0..1 pixel scale)."""
    return _is_triple(value, positive=False)


def valid_std(value: object) -> bool:
    """Three positive numbers, one per RGB channel."""
    return _is_triple(value, positive=True)


def as_stats(values: Sequence[float] | None, default: Sequence[float], what: str, source: str) -> Stats:
    """``values`` (or ``default`` when None) as three floats, or one line naming the checkpoint."""
    chosen = default if values is None else values
    if not (valid_std if what == "input_std" else valid_mean)(list(chosen)):
        raise SelfSupError(f"checkpoint {source}: encoder.{what} must be three numbers, one per RGB channel"
                           f"{' (all > 0)' if what == 'input_std' else ''}, e.g. --set encoder.{what}=[0.5,0.5,0.5]; "
                           f"got {values!r}")
    return tuple(float(v) for v in chosen)  # type: ignore[return-value]


class InputStats(nn.Module):
    """ImageNet-normalised images -> images normalised with ``mean``/``std`` (one exact affine map per channel;
    the identity when they are ImageNet's). No weights: the map is rebuilt from the encoder's config."""

    def __init__(self, mean: Stats, std: Stats) -> None:
        from ..pretext.image_ops import IMAGENET_MEAN, IMAGENET_STD  # not at import: encoders.base reads this module

        super().__init__()
        self.mean, self.std = tuple(mean), tuple(std)
        self.identity = self.mean == IMAGENET_MEAN and self.std == IMAGENET_STD
        scale = torch.tensor(IMAGENET_STD) / torch.tensor(self.std)
        shift = (torch.tensor(IMAGENET_MEAN) - torch.tensor(self.mean)) / torch.tensor(self.std)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return images
        return images * self.scale.to(images.dtype) + self.shift.to(images.dtype)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"
