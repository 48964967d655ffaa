"""Optimiser choice, default settings and parameter groups for pretraining.

- ``adamw``: Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization" (ICLR).
- ``sgd``: SGD with momentum.
- ``lars``: You et al. 2017, "Large Batch Training of Convolutional Networks" (LARS), as in SimCLR and BYOL:
  SGD with momentum whose step for each weight matrix is scaled by the ratio of its weight norm to its
  gradient norm; biases and normalisation weights are neither decayed nor adapted (BYOL appendix C).
  The implementation is ``timm.optim.Lars``.
"""

from __future__ import annotations

import timm.optim
import torch

from ..config import OPTIMIZERS, OptimConfig
from ..errors import SelfSupError, did_you_mean
from ..methods.base import Method

# lr for batch 256 and weight decay, used when the user picks an optimiser other than the method's own
GENERIC_DEFAULTS: dict[str, dict[str, float]] = {
    "adamw": {"lr": 2e-3, "weight_decay": 1e-4},
    "sgd": {"lr": 0.06, "weight_decay": 5e-4},
    "lars": {"lr": 0.3, "weight_decay": 1e-6},  # SimCLR appendix B.6: 0.3 x batch / 256, 1e-6
}


def recipe_optimizer(method: type[Method]) -> str:
    """The optimiser of ``method``'s recipe (``optim_defaults["optimizer"]``, adamw when absent)."""
    return str(method.optim_defaults.get("optimizer", "adamw"))


def choose_optimizer(method: type[Method], requested: str | None) -> str:
    """The optimiser to train ``method`` with: ``requested`` (validated), else the method's recipe's."""
    name = str(requested or recipe_optimizer(method)).lower()
    if name not in OPTIMIZERS:
        raise SelfSupError(f"optim.optimizer={requested!r} is not supported{did_you_mean(name, OPTIMIZERS)}; "
                           f"use one of {', '.join(OPTIMIZERS)}")
    return name


def default_lr_and_decay(method: type[Method], optim: OptimConfig, global_batch: int) -> tuple[float, float]:
    """``(lr, weight_decay)``: the user's where given, else the method's recipe (its lr is for batch 256 and
    scales linearly with the global batch), or the generic defaults of a user-chosen optimiser that is not
    the method's own."""
    own = optim.optimizer == recipe_optimizer(method)
    defaults = method.optim_defaults if own else GENERIC_DEFAULTS[optim.optimizer]
    lr = optim.lr if optim.lr is not None else float(defaults["lr"]) * global_batch / 256
    weight_decay = optim.weight_decay if optim.weight_decay is not None else float(defaults["weight_decay"])
    return float(lr), float(weight_decay)


def param_groups(method: Method, weight_decay: float, encoder_scale: float = 1.0) -> list[dict]:
    """Trainable parameters in groups: no weight decay (and no LARS adaptation) on biases and normalisation
    weights (1-D tensors), as in the papers' code; the submodules named in ``method.lr_multipliers`` get their
    own groups, whose ``lr_scale`` multiplies the scheduled learning rate, and so does the encoder's
    ``encoder_scale`` (a pretrained encoder's smaller steps, :func:`encoder_lr_scale`). The plain decayed group
    is first."""
    scale_of = {id(p): encoder_scale for p in method.encoder.parameters()} if encoder_scale != 1.0 else {}
    scale_of.update({id(p): scale for name, scale in method.lr_multipliers.items()
                     for p in getattr(method, name).parameters()})
    buckets: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for p in method.parameters():
        if p.requires_grad:
            buckets.setdefault((scale_of.get(id(p), 1.0), p.ndim <= 1), []).append(p)
    order = sorted(buckets, key=lambda key: (key[0] != 1.0, key[1], key[0]))
    return [{"params": buckets[key], "lr_scale": key[0], "decay": not key[1],
             "weight_decay": 0.0 if key[1] else weight_decay, "always_adapt": not key[1]} for key in order]


def build_optimizer(name: str, groups: list[dict], lr: float, momentum: float) -> torch.optim.Optimizer:
    """The optimiser ``name`` (one of :data:`OPTIMIZERS`) over ``groups`` from :func:`param_groups`."""
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "lars":
        return timm.optim.Lars(groups, lr=lr, momentum=momentum, trust_coeff=1e-3)
    raise SelfSupError(f"optim.optimizer={name!r} is not supported; use one of {', '.join(OPTIMIZERS)}")
