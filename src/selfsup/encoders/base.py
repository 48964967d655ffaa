"""The encoder interface shared by every modality (DESIGN.md §3)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import MAX_IMAGE_SIZE, Setting
from ..errors import SelfSupError
from .input_stats import valid_mean, valid_std

WIDTH, LAYERS = 65536, 1024
FILLED = "filled in from the training data"
ENCODER_SETTINGS: dict[str, Setting] = {
    # the numeric builder arguments shared by the encoders of every modality, and their valid values
    "image_size": Setting(int, 1, MAX_IMAGE_SIZE, optional=True, help=FILLED),
    "in_chans": Setting(int, 1, 64),
    "patch_size": Setting(int, 1, MAX_IMAGE_SIZE, optional=True),
    "vocab_size": Setting(int, 5, 2**24, optional=True, help="5 special tokens and up; " + FILLED),
    "num_items": Setting(int, 1, 10**9, optional=True, help="set by the data pipeline from the item map"),
    "max_length": Setting(int, 1, 65536),
    **{f"{token}_token_id": Setting(int, 0, 2**24) for token in ("pad", "unk", "cls", "sep", "mask")},
    "language_ids": Setting(object, valid=lambda v: isinstance(v, (list, tuple)) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v), expect="a list of token ids",
        help="the language tags' token ids (data.languages); " + FILLED),
    "hidden_size": Setting(int, 1, WIDTH, optional=True),
    "intermediate_size": Setting(int, 1, 4 * WIDTH, optional=True),
    "num_layers": Setting(int, 1, LAYERS, optional=True),
    "num_heads": Setting(int, 1, LAYERS, optional=True),
    "dropout": Setting(float, 0, 1, high_open=True, optional=True),
    "conv_dim": Setting(int, 1, WIDTH, optional=True),
    "pos_conv_kernel": Setting(int, 1, 4096, optional=True),
    "n_mels": Setting(int, 1, 1024),
    "sample_rate": Setting(int, 1000, 384000),
    "normalize": Setting(bool),
    "pool": Setting(str),
    "frontend": Setting(str),
    "source": Setting(str, help="a Hugging Face model folder or cached model id, or an image weights file (--init)"),
    "pretrained": Setting(bool),
    "arch": Setting(str, help="a timm architecture (timm.list_models()), for a weights file"),
    "input_mean": Setting(object, valid=valid_mean, optional=True, expect="three numbers, e.g. [0.5, 0.5, 0.5]",
                          help="the mean (per RGB channel) the checkpoint's inputs were normalised with"),
    "input_std": Setting(object, valid=valid_std, optional=True, expect="three positive numbers, e.g. [0.5, 0.5, 0.5]",
                         help="the standard deviation (per RGB channel) the checkpoint's inputs were normalised with"),
    "init_from": Setting(str, help="a selfsup run or export folder whose weights the encoder starts from (--init)"),
}


class Encoder(nn.Module):
    """A backbone that maps inputs to a token sequence and pools it to one vector.

    ``forward(inputs) -> [B, T, D]`` tokens (a CNN returns its spatial map flattened),
    ``pool(tokens, mask=None) -> [B, D]`` the embedding used downstream, ``dim == D``.
    ``config`` is a plain dict that rebuilds the same architecture with ``build_encoder``.
    """

    dim: int
    config: dict
    supports_masking: bool = False  # transformers that can hide positions from the student (data2vec)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over tokens (over unmasked tokens where ``mask`` is given, 1 = keep)."""
        if mask is None:
            return tokens.mean(dim=1)
        weights = mask.to(tokens.dtype).unsqueeze(-1)
        return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled embedding [B, D] of a batch of inputs."""
        return self.pool(self(inputs))

    def fit_stored(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights of a stored encoder of this architecture (``--init RUN``) made to fit this one, before they
        are loaded strictly: as they are, unless the data grew a table (a sequence encoder's new items)."""
        return state

    # ------------------------------------------------------------------ positions (distillation)
    @property
    def time_grid(self) -> tuple[int, ...] | None:
        """What places the positions of :meth:`layer_states` in time, for an encoder whose positions are frames
        of a signal (speech: sample rate, samples between frames, samples per frame): two encoders with equal
        grids give frame-aligned states (DistilHuBERT's frame targets). None: positions are not frames in time."""
        return None

    def position_mask(self, inputs, length: int) -> torch.Tensor | None:
        """[B, length] with 1 on the positions of :meth:`layer_states` that hold real input (not padding);
        None when every position does."""
        return None

    # ------------------------------------------------------------------ masked prediction (data2vec)
    def _cannot_mask(self) -> SelfSupError:
        return SelfSupError(f"encoder {self.config.get('name')!r} cannot hide input positions; masked prediction "
                            "needs a transformer encoder: wav2vec2_* (audio), bert_* (text) or vit_* (images)")

    def new_mask_embedding(self) -> nn.Parameter | None:
        """The learned vector that replaces hidden positions, for an encoder that has none of its own (a ViT);
        None when the encoder owns one (wav2vec 2.0's, made trainable here) or the input already hides them
        (text: the ``[MASK]`` token)."""
        raise self._cannot_mask()

    def forward_masked(self, inputs, positions: torch.Tensor,
                       mask_embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's pass with ``positions`` [B, T] (True = hidden) hidden: (states [B, T, D] on the grid of
        ``positions``, pooled embedding [B, D])."""
        raise self._cannot_mask()

    def layer_states(self, inputs) -> list[torch.Tensor]:
        """The states [B, T, D] after each block, first to last, on the grid of :meth:`forward_masked`
        (data2vec's teacher targets)."""
        raise self._cannot_mask()
