"""Audio encoders: wav2vec 2.0-style waveform transformers behind the selfsup Encoder interface.

Baevski, Zhou, Mohamed, Auli 2020, "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech
Representations" (NeurIPS): a convolutional feature encoder turns the raw waveform into one frame per
20 ms (320 samples at 16 kHz, 25 ms receptive field), a transformer with a convolutional relative position
embedding contextualises the frames. The model is Hugging Face ``Wav2Vec2Model`` built from a config
(random init, no download) with layer-normalised convolutions and pre-LN transformer layers (the
"stable layer norm" variant of wav2vec2-large-lv60, which handles padded batches), no LayerDrop.

``frontend="mel"`` swaps the convolutional feature encoder for log-mel filter banks (25 ms window, 20 ms
hop; filters from ``transformers.audio_utils``), the input of most speech models before wav2vec 2.0.

Inputs are dicts ``{"input_values": [B, L] float, "attention_mask": [B, L]}`` at the encoder's sample rate.
Each clip is normalised to zero mean and unit variance over its real samples (``normalize``), as
``Wav2Vec2FeatureExtractor(do_normalize=True)`` does. ``forward`` gives frames [B, T, D]; ``pool`` averages
the real frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import SelfSupError, did_you_mean
from ..registry import register_encoder
from .base import Encoder

FRONTENDS = ("conv", "mel")
MASK_EMBEDDING = "masked_spec_embed"  # HF's learned vector that replaces masked frames


def standardize_over_time(x: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """``x`` [B, T, ...] shifted and scaled to zero mean and unit variance over its real time steps (``mask`` [B, T]
    1), per row and channel; padded steps are normalised too but do not count."""
    weights = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.ndim - 2)))
    count = weights.sum(1, keepdim=True).clamp_min(1.0)
    mean = (x * weights).sum(1, keepdim=True) / count
    var = ((x - mean).pow(2) * weights).sum(1, keepdim=True) / count
    return (x - mean) / torch.sqrt(var + eps)


def receptive_field(kernels: list[int] | tuple[int, ...], strides: list[int] | tuple[int, ...]) -> tuple[int, int]:
    """(samples one frame sees, samples between frames) of a convolutional feature encoder."""
    window, jump = 1, 1
    for k, s in zip(kernels, strides):
        window, jump = window + (k - 1) * jump, jump * s
    return window, jump


def normalize_clips(waves: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over each clip's real samples (``mask`` 1); padding stays 0
    (``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``)."""
    return standardize_over_time(waves, mask, eps=1e-7) * mask.to(waves.dtype)


def prepare_waves(inputs: dict[str, torch.Tensor], frame_window: int, normalize: bool
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(waveforms padded to at least one frame of ``frame_window`` samples and, with ``normalize``, standardised
    per clip; their sample mask) from the encoder input dict."""
    waves = inputs["input_values"]
    mask = inputs.get("attention_mask")
    mask = torch.ones_like(waves, dtype=torch.long) if mask is None else mask.long()
    if waves.shape[1] < frame_window:  # one frame needs frame_window samples
        pad = frame_window - waves.shape[1]
        waves, mask = nn.functional.pad(waves, (0, pad)), nn.functional.pad(mask, (0, pad))
    if normalize:
        waves = normalize_clips(waves, mask)
    mask = mask.clone()
    mask[:, :frame_window] = 1  # a clip shorter than one frame is padded with silence
    return waves, mask


class LogMelFrontend(nn.Module):
    """Log-mel filter banks [B, n_mels, T] in place of the convolutional feature encoder (same frame grid)."""

    def __init__(self, sample_rate: int, n_mels: int, window: int, hop: int) -> None:
        super().__init__()
        self.sample_rate, self.n_mels, self.window, self.hop = sample_rate, n_mels, window, hop

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        from ..features.audio import log_mel

        return log_mel(waves.float(), self.sample_rate, n_mels=self.n_mels, win_length=self.window,
                       hop_length=self.hop).transpose(1, 2).to(waves.dtype)


class AudioEncoder(Encoder):
    """A ``transformers.Wav2Vec2Model`` (no head) or a model of its family (HuBERT, WavLM, data2vec-audio: the
    ``hf_audio`` encoder); see the module doc for inputs and outputs. ``attention_mask`` False: the model is given
    zero-padded clips without their sample mask (transformers' rule for group-normalised feature encoders such as
    wav2vec2-base, whose feature extractor returns no attention mask)."""

    def __init__(self, hf_model: nn.Module, sample_rate: int, normalize: bool, frontend: str, config: dict,
                 attention_mask: bool = True) -> None:
        super().__init__()
        self.hf_model = hf_model
        self.sample_rate = int(sample_rate)
        self.normalize = normalize
        self.frontend = frontend
        self.attention_mask = attention_mask
        self.dim = int(hf_model.config.hidden_size)
        self.config = config
        # samples one frame sees, samples between frames
        self.frame_window, self.frame_stride = receptive_field(hf_model.config.conv_kernel, hf_model.config.conv_stride)
        # frames are masked only by the methods that predict them; the others must not train this vector
        self.mask_embedding.requires_grad_(False)

    @property
    def mask_embedding(self) -> nn.Parameter:
        """The learned vector that replaces masked frames (wav2vec 2.0 §3.1, HuBERT, data2vec)."""
        return getattr(self.hf_model, MASK_EMBEDDING)

    def pretraining_model(self) -> nn.Module | None:
        """A checkpoint's own ``Wav2Vec2ForPreTraining`` (quantiser, ``project_q``, ``project_hid``) around this
        encoder's model, when it started from one (``--init``); None: ``wav2vec2`` builds a fresh one."""
        return None

    def features_model(self) -> nn.Module:
        """The model ``Wav2Vec2ForPreTraining`` runs: its outputs carry ``last_hidden_state`` and the
        ``extract_features`` wav2vec 2.0 quantises."""
        return self.hf_model

    def model_attention_mask(self, mask: torch.Tensor) -> torch.Tensor | None:
        """What the transformers model is given as ``attention_mask`` for the sample ``mask`` of
        :meth:`prepare_inputs`: the mask, or None where the model takes none (``attention_mask`` False)."""
        return mask if self.attention_mask else None

    def enable_frame_masking(self) -> None:
        """Train the mask vector: called by the methods that mask frames."""
        self.mask_embedding.requires_grad_(True)

    supports_masking = True

    def new_mask_embedding(self) -> None:
        """None: wav2vec 2.0's own mask vector replaces hidden frames; it is made trainable here."""
        self.enable_frame_masking()
        return None

    def forward_masked(self, inputs: dict[str, torch.Tensor], positions: torch.Tensor,
                       mask_embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames at ``positions`` [B, T] replaced by the mask vector: (frames [B, T, D], their mean over the
        real frames [B, D])."""
        frames = self({**inputs, "mask_time_indices": positions})
        return frames, self.pool(frames, self.frame_mask(inputs, frames.shape[1]))

    def layer_states(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return self.layer_outputs({k: v for k, v in inputs.items() if k != "mask_time_indices"})

    @property
    def time_grid(self) -> tuple[int, int, int]:
        """(sample rate, samples between frames, samples per frame)."""
        return self.sample_rate, self.frame_stride, self.frame_window

    def position_mask(self, inputs: dict[str, torch.Tensor], length: int) -> torch.Tensor:
        return self.frame_mask(inputs, length)

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of clips with ``lengths`` samples (at least one)."""
        lengths = lengths.clamp_min(self.frame_window)
        return self.hf_model._get_feat_extract_output_lengths(lengths).long()

    def prepare_inputs(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(waveforms as the transformers model takes them: padded to one frame, normalised; sample mask)."""
        return prepare_waves(inputs, self.frame_window, self.normalize)

    def feature_extractor(self) -> Any:
        """The ``transformers`` feature extractor that feeds :attr:`hf_model` as this encoder does (sample rate,
        per-clip normalisation, attention mask)."""
        import transformers

        return transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=self.sample_rate, padding_value=0.0,
                                                     do_normalize=self.normalize,
                                                     return_attention_mask=self.attention_mask)

    def frame_mask(self, inputs: dict[str, torch.Tensor], num_frames: int) -> torch.Tensor:
        """[B, T] long: 1 on the frames that hold real samples (a clip shorter than one frame has one)."""
        waves, mask = inputs["input_values"], inputs.get("attention_mask")
        lengths = self.num_frames(mask.sum(1) if mask is not None else torch.full_like(waves[:, 0], waves.shape[1]).long())
        return (torch.arange(num_frames, device=waves.device)[None] < lengths[:, None]).long()

    def _run(self, inputs: dict[str, torch.Tensor], hidden_states: bool = False):
        waves, mask = self.prepare_inputs(inputs)
        masked = inputs.get("mask_time_indices")
        kwargs: dict[str, Any] = {"attention_mask": self.model_attention_mask(mask), "output_hidden_states": hidden_states}
        if masked is not None:
            kwargs["mask_time_indices"] = masked.bool()
        return self.hf_model(waves, **kwargs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Frames [B, T, D]; frames where ``inputs["mask_time_indices"]`` [B, T] is True are replaced by the mask
        vector before the transformer."""
        return self._run(inputs).last_hidden_state

    def layer_outputs(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The output of every transformer layer, first to last ([B, T, D] each; data2vec's targets)."""
        return list(self._run(inputs, hidden_states=True).hidden_states[1:])

    def embed(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        frames = self(inputs)
        return self.pool(frames, self.frame_mask(inputs, frames.shape[1]))

    def save_pretrained(self, folder: str) -> None:
        """``config.json`` + ``model.safetensors`` for ``transformers.AutoModel`` and a
        ``preprocessor_config.json`` for ``AutoFeatureExtractor`` (sample rate, normalisation, attention mask)."""
        if self.frontend != "conv":
            raise SelfSupError(f"--format huggingface: the {self.frontend!r} front end has no transformers "
                               "equivalent; use --format safetensors")
        state = {k: v for k, v in self.hf_model.state_dict().items() if k != MASK_EMBEDDING}
        self.hf_model.save_pretrained(folder, state_dict=state)  # its config has mask_time_prob 0: no random masking
        self.feature_extractor().save_pretrained(folder)


@dataclass(frozen=True)
class AudioArch:
    hidden_size: int
    num_layers: int
    num_heads: int
    conv_dim: int
    pos_conv_kernel: int  # frames seen by the convolutional position embedding

    def with_overrides(self, **overrides: Any) -> AudioArch:
        return AudioArch(**{**self.__dict__, **{k: v for k, v in overrides.items() if v is not None}})


def _hf_model(arch: AudioArch, dropout: float, frontend: str, n_mels: int, sample_rate: int) -> nn.Module:
    import transformers

    conv = {"conv_dim": (arch.conv_dim,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2)}
    if frontend == "mel":  # one "layer" with the same 25 ms window and 20 ms hop
        conv = {"conv_dim": (n_mels,), "conv_kernel": (400,), "conv_stride": (320,)}
    hf_config = transformers.Wav2Vec2Config(
        hidden_size=arch.hidden_size, num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads,
        intermediate_size=4 * arch.hidden_size, hidden_dropout=dropout, activation_dropout=0.0,
        attention_dropout=dropout, feat_proj_dropout=0.0, layerdrop=0.0, feat_extract_norm="layer",
        do_stable_layer_norm=True, conv_bias=True, num_conv_pos_embeddings=arch.pos_conv_kernel,
        num_conv_pos_embedding_groups=min(16, arch.hidden_size // 8), apply_spec_augment=True,
        mask_time_prob=0.05, mask_time_length=10, vocab_size=None, **conv,
    )
    try:
        model = transformers.Wav2Vec2Model(hf_config)
    except (ValueError, RuntimeError) as exc:
        raise SelfSupError(f"audio encoder settings do not fit together ({exc}); check encoder.* settings") from None
    # mask_time_prob > 0 only made HF create the mask vector; frames are masked when a method asks, never at random
    model.config.mask_time_prob = 0.0
    if frontend == "mel":
        model.feature_extractor = LogMelFrontend(sample_rate, n_mels, window=400, hop=320)
    return model


def _make_builder(name: str, description: str, preset: AudioArch) -> Any:
    def builder(sample_rate: int = 16000, frontend: str = "conv", n_mels: int = 80, normalize: bool = True,
                pool: str = "mean", hidden_size: int | None = None, num_layers: int | None = None,
                num_heads: int | None = None, conv_dim: int | None = None, pos_conv_kernel: int | None = None,
                dropout: float = 0.1, image_size: int | None = None) -> AudioEncoder:
        del image_size  # the engine passes it to every encoder
        where = f"encoder {name!r}"
        if frontend not in FRONTENDS:
            raise SelfSupError(f"{where}: unknown frontend {frontend!r}{did_you_mean(frontend, FRONTENDS)}; "
                               f"use {' or '.join(FRONTENDS)}")
        if pool != "mean":
            raise SelfSupError(f"{where}: pool {pool!r} is not available for audio; use pool=mean")
        if int(sample_rate) < 1000:
            raise SelfSupError(f"{where}: sample_rate {sample_rate} Hz is too low; use 16000 (the default)")
        arch = preset.with_overrides(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads,
                                     conv_dim=conv_dim, pos_conv_kernel=pos_conv_kernel)
        if arch.hidden_size % arch.num_heads:
            raise SelfSupError(f"{where}: hidden_size {arch.hidden_size} is not divisible by num_heads "
                               f"{arch.num_heads}; choose num_heads dividing {arch.hidden_size}")
        model = _hf_model(arch, float(dropout), frontend, int(n_mels), int(sample_rate))
        config = {"name": name, "sample_rate": int(sample_rate), "frontend": frontend, "n_mels": int(n_mels),
                  "normalize": bool(normalize), "pool": pool, "dropout": float(dropout), **arch.__dict__}
        return AudioEncoder(model, int(sample_rate), bool(normalize), frontend, config)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = description
    return register_encoder(name, description)(builder)


wav2vec2_tiny = _make_builder("wav2vec2_tiny", "wav2vec 2.0-style: 7 conv layers of 64 channels + 2 transformer "
                              "layers of width 128; the CPU default for audio", AudioArch(128, 2, 2, 64, 32))
wav2vec2_mini = _make_builder("wav2vec2_mini", "wav2vec 2.0-style: 7 conv layers of 256 channels + 4 transformer "
                              "layers of width 256", AudioArch(256, 4, 4, 256, 64))
wav2vec2_base = _make_builder("wav2vec2_base", "wav2vec 2.0 BASE's size: 7 conv layers of 512 channels + 12 "
                              "transformer layers of width 768 (for GPUs)", AudioArch(768, 12, 12, 512, 128))
