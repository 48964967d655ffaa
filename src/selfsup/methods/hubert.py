"""HuBERT — Hsu, Bolte, Tsai, Lakhotia, Salakhutdinov, Mohamed 2021, "HuBERT: Self-Supervised Speech
Representation Learning by Masked Prediction of Hidden Units" (IEEE/ACM TASLP).

Pseudo-code (paper §II-III):
    iteration 1: targets z_t = k-means(MFCC + deltas + delta-deltas of each frame), K = 100
    iteration 2: targets z_t = k-means(hidden features of the iteration-1 model at a middle layer), K = 500
    mask spans: p = 8 % of the frames start a span of l = 10 masked frames (mask_prob 0.8 here)
    h = transformer(features with masked frames replaced by a learned vector)
    p(c | h_t) = softmax_c(cos(A h_t, e_c) / tau)                  # projection A, code embeddings e_c, tau = 0.1
    loss = cross-entropy(p(. | h_t), z_t) over the masked frames    # alpha = 1: masked frames only
The k-means (``pretext.clusters.kmeans``) is fitted once before training on ``kmeans_clips`` recordings
chosen by the seed (the same in every process); its centroids are buffers, saved with the checkpoint, and
each batch's frames are labelled on the fly by their nearest centroid, so random crops and streamed data
get targets too. MFCC features are standardised per dimension before clustering (the fitted mean and
scale are kept with the centroids). Iteration 2: ``--set method.targets_from=RUN`` names an earlier audio
run (or export); its encoder, frozen, gives the features of layer ``target_layer`` (0: the middle layer).
The engine loads that encoder (``teacher_setting``) and hands it over as ``teacher``, and it runs
``prepare`` with the method and the example batches already on the fitting device: this file does no
run-folder I/O and no device moves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import setting
from ..errors import SelfSupError
from ..pretext.clusters import assign, kmeans
from ..pretext.masking import span_mask
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .audio_base import frame_grid, require_audio_encoder
from .base import Examples, Hparams, Method, Pretext, count, scale, softmax_temperature, width

log = logging.getLogger("selfsup")

MFCC_DIM = 39  # 13 coefficients + deltas + delta-deltas


@dataclass
class HuBERTHparams(Hparams):
    num_clusters: int = count(100, 65536, low=2)
    mask_prob: float = scale(0.8)
    mask_length: int = count(10, 10000)
    proj_dim: int = width(256)
    temperature: float = softmax_temperature(0.1)
    targets_from: str = setting("")  # "": MFCC k-means (iteration 1); a run or export folder: its features (iteration 2)
    target_layer: int = count(0, 1024, low=0)  # of the targets_from encoder, 1-based; 0: the middle layer
    kmeans_clips: int = count(2000, 10**7)
    kmeans_iterations: int = count(50, 100000)


@register_method
class HuBERT(Method):
    name = "hubert"
    family = Family.PREDICTIVE
    modalities = frozenset({Modality.AUDIO})
    paper = "Hsu et al. 2021, HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction of Hidden Units (TASLP)"
    default_encoder = "wav2vec2_tiny"
    teacher_setting = "targets_from"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = HuBERTHparams

    def __init__(self, encoder, input_size: int, teacher=None, **hparams) -> None:
        require_audio_encoder(encoder, self.name)
        super().__init__(encoder, input_size, **hparams)
        hp = self.hp
        if hp.num_clusters < 2:
            raise SelfSupError(f"hubert: method.num_clusters={hp.num_clusters} needs to be at least 2 (paper: 100, then 500)")
        if hp.targets_from and teacher is None:
            raise SelfSupError(f"hubert: method.targets_from={hp.targets_from} was not loaded; pass its encoder as teacher=")
        self.teacher, self.teacher_layer = self._frozen_teacher(teacher, hp.targets_from, hp.target_layer) \
            if teacher is not None else (None, 0)
        dim = self.teacher.dim if self.teacher is not None else MFCC_DIM
        self.register_buffer("centroids", torch.zeros(hp.num_clusters, dim))
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_scale", torch.ones(dim))
        self.project = nn.Linear(encoder.dim, hp.proj_dim)
        self.codes = nn.Parameter(torch.randn(hp.num_clusters, hp.proj_dim) * 0.02)
        encoder.enable_frame_masking()

    def _frozen_teacher(self, teacher, path: str, layer: int) -> tuple[nn.Module, int]:
        """The iteration-1 encoder ``teacher`` (stored at ``path``), frozen, and the layer its targets come from."""
        teacher = require_audio_encoder(teacher, f"hubert: method.targets_from={path}")
        if (teacher.frame_stride, teacher.frame_window) != (self.encoder.frame_stride, self.encoder.frame_window) \
                or teacher.sample_rate != self.encoder.sample_rate:
            raise SelfSupError(f"hubert: {path} has another frame grid or sample rate than this encoder; "
                               "use a targets_from run with the same front end and --set data.sample_rate")
        layers = int(teacher.hf_model.config.num_hidden_layers)
        layer = layer or (layers + 1) // 2
        if not 1 <= layer <= layers:
            raise SelfSupError(f"hubert: method.target_layer={layer}, but {path} has {layers} layers; use 1..{layers}")
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher.eval(), layer

    @torch.no_grad()
    def frame_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features [B, T, F] of every frame of ``batch`` (on ``frame_grid``): MFCC, or the teacher's layer."""
        if self.teacher is not None:
            self.teacher.eval()
            return self.teacher.layer_outputs(batch)[self.teacher_layer - 1].float()
        from ..features.audio import mfcc

        waves, _ = self.encoder.prepare_inputs(batch)
        feats = mfcc(waves.float(), self.encoder.sample_rate, win_length=self.encoder.frame_window,
                     hop_length=self.encoder.frame_stride)
        return feats[:, : batch["frame_mask"].shape[1]]

    @torch.no_grad()
    def prepare(self, examples: Examples) -> None:
        """Fit the k-means targets on the recordings ``examples(count, seed)`` yields (on the method's device)."""
        hp = self.hp
        chunks = []
        for batch in examples(hp.kmeans_clips, 0):
            batch = frame_grid(self.encoder, batch)
            chunks.append(self.frame_features(batch)[batch["frame_mask"].bool()])
        features = torch.cat(chunks)
        if features.shape[0] < hp.num_clusters:
            raise SelfSupError(f"hubert: {features.shape[0]} frames cannot make {hp.num_clusters} clusters; "
                               "use more audio or a smaller method.num_clusters")
        self.feature_mean.copy_(features.mean(0))
        self.feature_scale.copy_(features.std(0).clamp_min(1e-5))
        source = f"layer {self.teacher_layer} of {hp.targets_from}" if self.teacher is not None else "MFCC"
        log.info("hubert: k-means of %d frames of %s into %d clusters", features.shape[0], source, hp.num_clusters)
        centroids, _ = kmeans(self._standardised(features), hp.num_clusters, iterations=hp.kmeans_iterations)
        self.centroids.copy_(centroids)

    def _standardised(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_scale

    def pretext(self, modality: Modality) -> Pretext:
        hp = self.hp

        def pretext(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            batch = frame_grid(self.encoder, batch)
            frame_mask = batch["frame_mask"]
            features = self._standardised(self.frame_features(batch))
            labels = assign(features.flatten(0, 1), self.centroids).view(frame_mask.shape)
            return {**batch, "mask_time_indices": span_mask(frame_mask, hp.mask_prob, hp.mask_length), "labels": labels}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        masked = batch["mask_time_indices"]
        frames = self.encoder(batch)
        logits = F.normalize(self.project(frames[masked]), dim=-1) @ F.normalize(self.codes, dim=-1).T / self.hp.temperature
        targets = batch["labels"][masked]
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.detach().argmax(-1) == targets).float().mean()
        embeddings = self.encoder.pool(frames, batch["frame_mask"]).detach()
        return LossOutput(loss, metrics={"unit_accuracy": accuracy}, embeddings=embeddings)
