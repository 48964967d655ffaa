"""Speed recognition — a transformation-prediction pretext for audio, as RotNet's rotations for images:
the network must tell at which speed a clip plays (Jeong et al. 2021, "Playback-rate prediction for
speech representations" and Wang et al. 2020, "Self-supervised learning of audio representations by
speed prediction"; the speed change is Ko et al. 2015's speed perturbation).

Pseudo-code:
    k ~ uniform over the speed factors (0.8, 0.9, 1.0, 1.1, 1.2)
    x' = resample(x, factor_k), cropped to the clip length   # faster: shorter and higher-pitched
    loss = cross_entropy(head(pool(f(x'))), k)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import SelfSupError
from ..heads import MLP
from ..pretext.audio import SPEED_FACTORS, change_speed, random_crops
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .audio_base import require_audio_encoder
from .base import Hparams, Method, Pretext, distinct_numbers, width


@dataclass
class SpeedHparams(Hparams):
    factors: list[float] = distinct_numbers(lambda: list(SPEED_FACTORS), 0, 10)
    head_hidden_dim: int = width(256)


@register_method
class Speed(Method):
    name = "speed"
    family = Family.TRANSFORMATION
    modalities = frozenset({Modality.AUDIO})
    paper = "Wang et al. 2020, Self-supervised learning of audio representations by speed prediction; Ko et al. 2015 (speed perturbation)"
    default_encoder = "wav2vec2_tiny"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = SpeedHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        require_audio_encoder(encoder, self.name)
        super().__init__(encoder, input_size, **hparams)
        factors = [float(f) for f in self.hp.factors]
        if len(factors) < 2 or len(set(factors)) != len(factors) or min(factors) <= 0:
            raise SelfSupError(f"speed: method.factors={self.hp.factors} needs two or more distinct positive speeds, "
                               "e.g. [0.8, 0.9, 1.0, 1.1, 1.2]")
        self.register_buffer("factors", torch.tensor(factors), persistent=False)
        self.head = MLP(encoder.dim, self.hp.head_hidden_dim, len(factors))

    def pretext(self, modality: Modality) -> Pretext:
        crop = self.input_size

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            waves, lengths = batch["input_values"], batch["attention_mask"].sum(1)
            factors = self.factors.to(waves.device)
            labels = torch.randint(len(factors), (waves.shape[0],), device=waves.device, generator=generator)
            fast, lengths = change_speed(waves, lengths, factors[labels])
            fast, lengths = random_crops(fast, lengths, crop, generator=generator)  # slowed clips grow past the crop
            mask = (torch.arange(fast.shape[1], device=fast.device)[None] < lengths[:, None]).long()
            return {"input_values": fast, "attention_mask": mask, "labels": labels}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        h = self.encoder.embed(batch)
        logits = self.head(h)
        loss = F.cross_entropy(logits, batch["labels"])
        accuracy = (logits.detach().argmax(-1) == batch["labels"]).float().mean()
        return LossOutput(loss, metrics={"speed_accuracy": accuracy}, embeddings=h.detach())
