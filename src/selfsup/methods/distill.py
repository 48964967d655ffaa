"""Knowledge distillation: a student encoder learns to reproduce a frozen teacher's representation of the
user's unlabeled data, under the modality's augmentations.

The teacher is any checkpoint ``--init`` accepts, named by ``--set method.teacher=SOURCE`` (a Hugging Face
model folder or cached id, or whatever else the modality starts from); the engine builds it
(``selfsup.teachers``) and the student reads the same inputs (text: the teacher's tokenizer, so the same token
ids feed both). The student is any encoder (``--encoder``), or itself an ``--init`` checkpoint.

Pooled target (``method.target=pooled``), on one augmented view of each sample::

    x = view(sample)                 # the modality's augmentation (Modality.one_view); text: the sentence as is
    t = teacher.embed(x)             # frozen, eval mode, no gradient: the SAME view, no dropout
    s = W student.embed(x)           # a linear head to the teacher's width (dropped after training)
    loss = mean_b |s_b/|s_b| - t_b/|t_b||^2 = 2 - 2 cos(s, t)           # normalize=true (default)
         | mean (s - t)^2                                              # normalize=false

``normalize=false`` is the MSE of Reimers & Gurevych 2020, "Making Monolingual Sentence Embeddings Multilingual
using Knowledge Distillation" (EMNLP, Eq. 1), which also matches the teacher's norms; the default compares
directions only, as lightly-train's distillation does with its student head to the teacher's width. Teacher and
student see the same augmented view: the "consistent teaching" of Beyer et al. 2022, "Knowledge distillation:
A good teacher is patient and consistent" (CVPR); the student's dropout is its only extra noise. Images: with
``method.teacher_input_size=S`` the teacher sees that same view resized to S × S (its pretraining resolution),
the student at ``--image-size`` (a small, fast student: a 32 px CIFAR network under a 224 px ImageNet teacher).

Layer targets (``method.target=layers``; speech by default), DistilHuBERT (Chang, Yang, Lee 2022,
"DistilHuBERT: Speech Representation Learning by Layer-wise Distillation of Hidden-Unit BERT", ICASSP)::

    h = the student's last-layer states [B, T, D] on the teacher's grid of positions (speech frames)
    for k in 1..K (K = method.layers = 3):  target y_k = teacher layer ceil(k L / K)   # 4, 8, 12 of 12
        loss += mean_t [ mean_d |W_k h_t - y_k,t| - lambda log sigmoid(cos(W_k h_t, y_k,t)) ]   # lambda = 1

over the real positions (padding left out). ``method.target=tokens`` is the same with one head on the
teacher's last layer. ``auto`` asks the encoders: ``layers`` when both give frames on the same time grid
(``Encoder.time_grid``: same sample rate, stride and window), ``pooled`` otherwise (text, images, or speech
encoders whose frames do not line up).

The teacher runs under ``torch.no_grad`` (``inference_mode`` tensors could not be saved for the loss's
backward pass), in eval mode, in bfloat16 autocast on a GPU that supports it and in float32 elsewhere. It is
kept out of the method's modules: not trained, not in the optimiser, not in the checkpoint (a resumed run
rebuilds it from SOURCE) and not in the exported encoder. When the modality's view is the sample itself
(text: a pretext marked ``deterministic``) the teacher's pooled embeddings are cached by the sample's content
(``method.cache_teacher``, up to 2 GiB per process): from the second epoch on, the teacher only sees new texts.
Augmented views (images, audio) are new at every step and never cached.

Not implemented: SEED's similarity-distribution loss against a queue (Fang et al. 2021); a student with its own
tokenizer (the teacher would need the raw text).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import setting
from ..encoders.base import Encoder
from ..errors import SelfSupError
from ..losses import embedding_regression, layer_regression
from ..modalities import get_modality
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, count, loss_weight, probability, scale

TARGETS = ("auto", "pooled", "tokens", "layers")
CACHE_BYTES = 2 << 30  # of cached teacher embeddings per process


@dataclass
class DistillHparams(Hparams):
    teacher: str = setting("")  # any --init SOURCE: a Hugging Face model folder or cached id, ...
    teacher_encoder: str = setting("")  # the teacher's architecture where SOURCE needs one (as --encoder for --init)
    target: str = setting("auto", choices=TARGETS)  # auto: layers for frame-aligned speech encoders, else pooled
    layers: int = count(3, 64)  # teacher layers the layers target regresses (DistilHuBERT: 3, layers 4/8/12 of 12)
    normalize: bool = setting(True)  # pooled: compare unit vectors (2 - 2 cos); false: Reimers & Gurevych's MSE
    cosine_weight: float = loss_weight(1.0)  # layers/tokens: lambda of DistilHuBERT's -log sigmoid(cos) term
    cache_teacher: bool = setting(True)  # reuse the teacher's pooled embedding of a sample seen before (text)
    teacher_input_size: int = count(0, 4096, low=0)  # images: the teacher sees each view at this side (0: --image-size)
    crop_min_scale: float = scale(0.08)  # images: RandomResizedCrop scale (crop_min_scale, 1) of the one view
    flip_p: float = probability(0.5)


def _device(inputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.device:
    return next(iter(inputs.values())).device if isinstance(inputs, dict) else inputs.device


def teacher_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """The fastest safe precision for a frozen teacher's forward pass: bfloat16 autocast on a GPU that supports
    it, float32 elsewhere (also when the student trains in a lower precision on a CPU)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    try:
        return torch.autocast(device.type, enabled=False)
    except RuntimeError:  # a device type without autocast: nothing to turn off
        return contextlib.nullcontext()


def _teacher_input(inputs: Any, teacher: Encoder) -> Any:
    """``inputs`` with floating tensors in the teacher's dtype (a student trained in ``bf16-true`` gets bfloat16
    images; the teacher keeps its float32 weights)."""
    dtype = next(teacher.parameters()).dtype

    def cast(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype) if x.is_floating_point() else x

    return {k: cast(v) for k, v in inputs.items()} if isinstance(inputs, dict) else cast(inputs)


def _has_layer_states(encoder: Encoder) -> bool:
    return type(encoder).layer_states is not Encoder.layer_states


def _masked_mean(states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return states.mean(1)
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class TeacherCache:
    """A frozen teacher's pooled embeddings of the samples it has seen, by content: for inputs that are the
    samples themselves (no random view), so the same sample always gets the same embedding. A sample is a row of
    a dict of right-padded [B, T] tensors with an ``attention_mask`` (its real positions: the key ignores the
    padding, which depends on the batch). Rows past ``limit_bytes`` are computed, not stored."""

    def __init__(self, limit_bytes: int = CACHE_BYTES) -> None:
        self.rows: dict[bytes, torch.Tensor] = {}
        self.limit_bytes = limit_bytes
        self.bytes = 0

    @staticmethod
    def keys(inputs: Any) -> list[bytes] | None:
        """One key per row of ``inputs``; None for inputs that are not padded rows (image tensors)."""
        if not isinstance(inputs, dict) or "attention_mask" not in inputs:
            return None
        lengths = inputs["attention_mask"].sum(1).tolist()
        rows = [inputs[name].cpu().numpy() for name in sorted(inputs)]
        return [b"|".join(r[i, :n].tobytes() for r in rows) for i, n in enumerate(lengths)]

    def embed(self, teacher: Encoder, inputs: Any) -> torch.Tensor:
        """``teacher.embed(inputs)`` [B, D], computed only for the rows not seen before."""
        keys = self.keys(inputs)
        if keys is None:
            return teacher.embed(inputs)
        new = sorted({key: i for i, key in enumerate(keys) if key not in self.rows}.values())
        fresh = {}
        if new:
            index = torch.tensor(new, device=inputs["attention_mask"].device)
            out = teacher.embed({name: value.index_select(0, index) for name, value in inputs.items()}).float()
            fresh = {keys[i]: row for i, row in zip(new, out)}
            for key, row in fresh.items():
                if self.bytes + row.numel() * row.element_size() <= self.limit_bytes:
                    self.rows[key] = row
                    self.bytes += row.numel() * row.element_size()
        return torch.stack([fresh[key] if key in fresh else self.rows[key] for key in keys])


@register_method
class Distill(Method):
    name = "distill"
    family = Family.DISTILLATION
    modalities = frozenset({Modality.IMAGE, Modality.TEXT, Modality.AUDIO})
    paper = ("Reimers & Gurevych 2020, Making Monolingual Sentence Embeddings Multilingual using Knowledge "
             "Distillation (EMNLP); Chang et al. 2022, DistilHuBERT (ICASSP)")
    teacher_setting = "teacher"
    teacher_from_init = True
    teacher_encoder_setting = "teacher_encoder"
    optim_defaults = {"lr": 1e-3, "weight_decay": 0.01}
    Hparams = DistillHparams

    def __init__(self, encoder: Encoder, input_size: int, teacher_model: Encoder | None = None,
                 **hparams: Any) -> None:
        """``teacher_model``: the teacher ``method.teacher`` names, built by the engine (``selfsup.teachers``)."""
        super().__init__(encoder, input_size, **hparams)
        teacher = teacher_model
        if teacher is None:
            raise SelfSupError("distill: no teacher was built; add --set method.teacher=SOURCE")
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._teacher = (teacher.eval(),)  # a tuple: not a submodule, so never trained, saved or exported
        self.target = self._choose_target(encoder, teacher, self.hp.target)
        self.cache: TeacherCache | None = None  # set by pretext() when the modality's view is the sample itself
        if self.target == "pooled":
            self.head = nn.Linear(encoder.dim, teacher.dim)
        else:
            heads = 1 if self.target == "tokens" else self.hp.layers
            self.heads = nn.ModuleList(nn.Linear(encoder.dim, teacher.dim) for _ in range(heads))

    @property
    def teacher(self) -> Encoder:
        """The frozen teacher (on the device of the last batch)."""
        return self._teacher[0]

    @staticmethod
    def _choose_target(student: Encoder, teacher: Encoder, target: str) -> str:
        if target == "auto":
            grid = student.time_grid
            aligned = grid is not None and grid == teacher.time_grid
            return "layers" if aligned and _has_layer_states(student) and _has_layer_states(teacher) else "pooled"
        if target != "pooled" and not (_has_layer_states(student) and _has_layer_states(teacher)):
            which = "student" if not _has_layer_states(student) else "teacher"
            raise SelfSupError(f"distill: method.target={target} regresses the teacher's states position by "
                               f"position, but the {which} encoder exposes no layer states; use method.target=pooled")
        return target

    def pretext(self, modality: Modality | str) -> Pretext:
        """One augmented view of each sample, as the modality makes it (``Modality.one_view``)."""
        pretext = get_modality(modality).one_view(self.input_size, self.hp)
        cacheable = getattr(pretext, "deterministic", False) and self.target == "pooled" and self.hp.cache_teacher
        self.cache = TeacherCache() if cacheable else None
        return pretext

    def _teacher_on(self, device: torch.device) -> Encoder:
        teacher = self.teacher
        if next(teacher.parameters()).device != device:
            teacher.to(device)
        return teacher.eval()

    def teacher_layers(self, depth: int) -> list[int]:
        """The 0-based teacher layers the heads regress: ceil(k L / K) - 1 for k = 1..K (4, 8, 12 of 12 for K = 3)."""
        heads = len(self.heads)
        return [math.ceil(k * depth / heads) - 1 for k in range(1, heads + 1)]

    def loss(self, batch: dict[str, Any]) -> LossOutput:
        x = batch["view"]
        device = _device(x)
        teacher = self._teacher_on(device)
        seen = _teacher_input(x, teacher)
        if self.target == "pooled":
            with torch.no_grad(), teacher_precision(device):
                target = self.cache.embed(teacher, seen) if self.cache is not None else teacher.embed(seen)
            h = self.encoder.embed(x)
            s = self.head(h)
            loss = embedding_regression(s, target.float(), normalize=self.hp.normalize)
            cosine = F.cosine_similarity(s.detach().float(), target.float(), dim=-1).mean()
            return LossOutput(loss, metrics={"teacher_cosine": cosine}, embeddings=h.detach())
        with torch.no_grad(), teacher_precision(device):
            states = teacher.layer_states(seen)
            targets = [states[i].float() for i in self.teacher_layers(len(states))]
        h = self.encoder.layer_states(x)[-1]
        if h.shape[1] != targets[0].shape[1]:
            raise SelfSupError(f"distill: method.target={self.target} needs the student's and the teacher's states on "
                               f"one grid of positions, got {h.shape[1]} and {targets[0].shape[1]} positions; use "
                               "method.target=pooled")
        mask = self.encoder.position_mask(x, h.shape[1])
        preds = [head(h) for head in self.heads]
        loss = sum(layer_regression(p, y, mask, self.hp.cosine_weight) for p, y in zip(preds, targets))
        cosine = F.cosine_similarity(preds[-1].detach().float(), targets[-1], dim=-1)
        cosine = _masked_mean(cosine.unsqueeze(-1), mask).mean()
        return LossOutput(loss, metrics={"teacher_cosine": cosine},
                          embeddings=_masked_mean(h, mask).detach())
