"""A Hugging Face speech checkpoint as a selfsup audio encoder (``--init SOURCE`` on audio; ``hf_audio``).

wav2vec 2.0 (Baevski et al. 2020, NeurIPS), HuBERT (Hsu et al. 2021, IEEE/ACM TASLP), WavLM (Chen et al. 2022,
"WavLM: Large-Scale Self-Supervised Pre-Training for Full Stack Speech Processing", IEEE JSTSP) and
data2vec-audio (Baevski et al. 2022, "data2vec: A General Framework for Self-supervised Learning in Speech,
Vision and Language", ICML) share one shape: a convolutional feature encoder over the raw waveform, a learned
vector for masked frames (``masked_spec_embed``) and a transformer. Domain-adaptive pretraining (Gururangan et
al. 2020) continues such a model on the user's recordings.

The architecture and weights are the checkpoint's (``AutoConfig``/``AutoModel``), never selfsup's presets, and
the folder's feature extractor (``AutoFeatureExtractor``, ``preprocessor_config.json``) decides the input:
its ``sampling_rate`` is the run's ``data.sample_rate``, ``do_normalize`` whether each clip is standardised,
``return_attention_mask`` whether the model is given the sample mask (transformers' rule: group-normalised
feature encoders such as wav2vec2-base get zero-padded clips and no mask). A folder without a feature extractor
is refused (one line naming the file and how to write it), rather than guessed: the families differ in
normalisation (hubert-base: none; wav2vec2-base: per clip).

Settings that belong to selfsup's training, not to the architecture, are changed while it trains and put back on
export: frames are masked only where a method asks (``mask_time_prob`` and ``mask_feature_prob`` 0, SpecAugment
on so that a method's mask applies) and there is no LayerDrop (data2vec's teacher needs every layer, DDP every
parameter). A folder saved from ``Wav2Vec2ForPreTraining`` (``config.architectures``) keeps its quantiser and
projections, which ``wav2vec2`` then continues to train (:meth:`PretrainedAudioEncoder.pretraining_model`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import SelfSupError
from ..registry import register_encoder
from .audio import MASK_EMBEDDING, AudioEncoder, receptive_field
from .hf_checkpoint import load_pretrained, open_checkpoint, quiet_transformers

if TYPE_CHECKING:  # pragma: no cover
    import transformers

log = logging.getLogger("selfsup")

NAME = "hf_audio"
FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")  # model_type of the checkpoints hf_audio loads
PRETRAINING = "Wav2Vec2ForPreTraining"  # a folder saved from it holds the quantiser and projections
WITHOUT_FEATURES = ("hubert",)  # families whose model outputs carry no extract_features
TRAINING_CONFIG = {"apply_spec_augment": True, "mask_time_prob": 0.0, "mask_feature_prob": 0.0, "layerdrop": 0.0}
EXTRACTOR_HINT = ("save the feature extractor beside the model: AutoFeatureExtractor.from_pretrained(ORIGINAL)"
                  ".save_pretrained(FOLDER), or Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=..., "
                  "return_attention_mask=...).save_pretrained(FOLDER) with the values its model was trained with")


@dataclass(frozen=True)
class AudioCheckpoint:
    """A speech checkpoint folder: its transformers config and its feature extractor."""

    folder: Path
    config: transformers.PretrainedConfig
    extractor: Any  # a transformers SequenceFeatureExtractor taking raw waveforms

    @property
    def sample_rate(self) -> int:
        return int(self.extractor.sampling_rate)

    @property
    def normalize(self) -> bool:
        return bool(getattr(self.extractor, "do_normalize", False))

    @property
    def attention_mask(self) -> bool:
        return bool(getattr(self.extractor, "return_attention_mask", False))

    @property
    def frame(self) -> tuple[int, int]:
        """(samples one frame of its feature encoder sees, samples between frames)."""
        return receptive_field(self.config.conv_kernel, self.config.conv_stride)


def _feature_extractor(folder: Path, source: str) -> Any:
    """The folder's own feature extractor, or one line saying why it cannot feed the model."""
    import transformers
    from transformers.utils import FEATURE_EXTRACTOR_NAME

    if not (folder / FEATURE_EXTRACTOR_NAME).is_file():
        raise SelfSupError(f"checkpoint {source}: no {FEATURE_EXTRACTOR_NAME} (its feature extractor: sample rate, "
                           f"normalisation, attention mask); {EXTRACTOR_HINT}")
    try:
        with quiet_transformers():
            extractor = transformers.AutoFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # ValueError (unknown type), OSError, JSON errors ...
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SelfSupError(f"checkpoint {source}: {FEATURE_EXTRACTOR_NAME} cannot be read by transformers "
                           f"({reason}); {EXTRACTOR_HINT}") from None
    if getattr(extractor, "feature_size", None) != 1 or not getattr(extractor, "sampling_rate", None):
        raise SelfSupError(f"checkpoint {source}: its feature extractor {type(extractor).__name__} does not take raw "
                           f"waveforms (feature_size {getattr(extractor, 'feature_size', None)}); {EXTRACTOR_HINT}")
    return extractor


def audio_checkpoint(source: str) -> AudioCheckpoint:
    """The speech checkpoint ``source`` (a folder or a cached model id), or one line saying why it is not one."""
    folder, config = open_checkpoint(source, "audio")
    if config.model_type not in FAMILIES:
        raise SelfSupError(f"checkpoint {source}: model_type {config.model_type!r} is not a waveform model selfsup "
                           f"loads; --init on audio takes {', '.join(FAMILIES)} checkpoints")
    return AudioCheckpoint(folder, config, _feature_extractor(folder, source))


def check_sample_rate(checkpoint: AudioCheckpoint, source: str, sample_rate: int | None) -> None:
    """One line when the run's sample rate is not the one the checkpoint's feature extractor expects."""
    if sample_rate is not None and int(sample_rate) != checkpoint.sample_rate:
        raise SelfSupError(f"checkpoint {source} takes recordings at {checkpoint.sample_rate} Hz (its feature "
                           f"extractor's sampling_rate), not data.sample_rate={sample_rate}; leave out --sample-rate "
                           f"(selfsup resamples every recording to {checkpoint.sample_rate} Hz)")


def _load(checkpoint: AudioCheckpoint, source: str, pretrained: bool) -> tuple[nn.Module, nn.Module | None]:
    """(model, its ``Wav2Vec2ForPreTraining`` or None): the checkpoint's weights, or (``pretrained=False``) the same
    architecture at random initialisation."""
    import transformers

    config = checkpoint.config
    if not pretrained:
        return transformers.AutoModel.from_config(config), None
    own = config.model_type == "wav2vec2" and PRETRAINING in (config.architectures or ())
    auto = transformers.Wav2Vec2ForPreTraining if own else transformers.AutoModel
    model = load_pretrained(auto, checkpoint.folder, source, config, allow_missing=(MASK_EMBEDDING,))
    return (model.wav2vec2, model) if own else (model, None)


class WithConvFeatures(nn.Module):
    """A model whose outputs carry no ``extract_features`` (HuBERT), wrapped so that they do: the input of its
    feature projection's linear layer (the convolutional features, layer-normalised where the model does so), which
    is what wav2vec 2.0 quantises."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                mask_time_indices: torch.Tensor | None = None, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import Wav2Vec2BaseModelOutput

        seen: list[torch.Tensor] = []
        hook = self.model.feature_projection.projection.register_forward_pre_hook(
            lambda module, args: seen.append(args[0]))
        try:
            out = self.model(input_values, attention_mask=attention_mask, mask_time_indices=mask_time_indices,
                             **kwargs)
        finally:
            hook.remove()
        return Wav2Vec2BaseModelOutput(last_hidden_state=out.last_hidden_state, extract_features=seen[0])


class PretrainedAudioEncoder(AudioEncoder):
    """An :class:`AudioEncoder` around a checkpoint's own model, fed as its feature extractor says."""

    def __init__(self, hf_model: nn.Module, checkpoint: AudioCheckpoint, config: dict,
                 pretraining: nn.Module | None = None) -> None:
        model_config = hf_model.config
        # data2vec-audio has no apply_spec_augment (always on): only the keys a family has are changed
        saved = {key: getattr(model_config, key) for key in TRAINING_CONFIG if hasattr(model_config, key)}
        model_config.update({key: TRAINING_CONFIG[key] for key in saved})
        if getattr(hf_model, MASK_EMBEDDING, None) is None:  # a config without masking probabilities has none
            setattr(hf_model, MASK_EMBEDDING, nn.Parameter(torch.empty(model_config.hidden_size).uniform_()))
        super().__init__(hf_model, checkpoint.sample_rate, checkpoint.normalize, "conv", config,
                         attention_mask=checkpoint.attention_mask)
        self.extractor = checkpoint.extractor
        self._saved = saved  # the config values training changed, put back on export
        self._pretraining: tuple[nn.Module, ...] = (pretraining,) if pretraining is not None else ()

    def pretraining_model(self) -> nn.Module | None:
        return self._pretraining[0] if self._pretraining else None

    def feature_extractor(self) -> Any:
        """The checkpoint's own feature extractor."""
        return self.extractor

    def features_model(self) -> nn.Module:
        return WithConvFeatures(self.hf_model) if self.hf_model.config.model_type in WITHOUT_FEATURES else self.hf_model

    def save_pretrained(self, folder: str) -> None:
        """The checkpoint's architecture (its own config, training-time changes put back) with this encoder's
        weights, and its feature extractor: ``AutoModel`` and ``AutoFeatureExtractor`` load the folder."""
        config = self.hf_model.config
        training = {key: getattr(config, key) for key in self._saved}
        config.update(self._saved)
        try:  # the mask vector is part of the model only where its config has masking probabilities
            keep = config.mask_time_prob > 0 or config.mask_feature_prob > 0
            state = {k: v for k, v in self.hf_model.state_dict().items() if keep or k != MASK_EMBEDDING}
            self.hf_model.save_pretrained(folder, state_dict=state)
        finally:
            config.update(training)
        self.extractor.save_pretrained(folder)


@register_encoder("hf_audio", "a Hugging Face speech checkpoint (wav2vec 2.0, HuBERT, WavLM, data2vec-audio) from "
                  "encoder.source, a model folder or a cached model id; set by --init SOURCE")
def hf_audio(source: str | None = None, pretrained: bool = True, sample_rate: int | None = None, pool: str = "mean",
             image_size: int | None = None) -> PretrainedAudioEncoder:
    """The checkpoint ``source`` with its own architecture, weights and feature extractor (``pretrained=False``: the
    same architecture randomly initialised, the ``scratch`` baseline); ``sample_rate`` (the run's) must be the
    feature extractor's."""
    del image_size  # the engine passes it to every encoder
    if not source:
        raise SelfSupError(f"encoder {NAME!r} needs encoder.source, a Hugging Face model folder or cached model id; "
                           "use --init SOURCE")
    if pool != "mean":
        raise SelfSupError(f"encoder {NAME!r}: pool {pool!r} is not available for audio; use pool=mean")
    checkpoint = audio_checkpoint(source)
    check_sample_rate(checkpoint, source, sample_rate)
    model, pretraining = _load(checkpoint, source, bool(pretrained))
    model.train()  # from_pretrained returns eval mode; every selfsup encoder is built in training mode
    if pretraining is not None:
        pretraining.train()
    config = {"name": NAME, "source": str(source), "pretrained": bool(pretrained),
              "sample_rate": checkpoint.sample_rate, "pool": pool}
    return PretrainedAudioEncoder(model, checkpoint, config, pretraining)
