"""Reconstruction losses of generative pretext tasks, and the patch reshaping they need."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["masked_patch_l1", "masked_patch_mse", "patchify", "unpatchify"]


def _masked_patch_loss(
    name: str,
    error: Callable[[Tensor], Tensor],
    pred: Tensor,
    target: Tensor,
    mask: Tensor,
    normalize_target: bool,
    eps: float,
) -> Tensor:
    """Mean over the masked patches of the per-patch mean of ``error(pred - target)``.

    Shared by :func:`masked_patch_mse` and :func:`masked_patch_l1`; see them for the formulas.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(
            f"{name} expects pred and target of the same shape [B, N, P], got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if mask.shape != pred.shape[:2]:
        raise ValueError(
            f"{name} expects mask of shape [B, N] = {tuple(pred.shape[:2])}, got {tuple(mask.shape)}"
        )
    target = target.float()
    if normalize_target:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, unbiased=False, keepdim=True)
        target = (target - mean) / torch.sqrt(var + eps)
    per_patch = error(pred.float() - target).mean(dim=-1)  # [B, N]
    m = mask.to(per_patch.dtype)
    total = m.sum()
    if total == 0:
        return (pred * 0).sum().float()
    return (per_patch * m).sum() / total


def masked_patch_mse(pred: Tensor, target: Tensor, mask: Tensor, normalize_target: bool = True,
                        eps: float = 1e-6) -> Tensor:
    """MAE reconstruction loss: per-pixel MSE averaged over the masked patches only.

    He, Chen, Xie, Li, Dollar & Girshick (2022), "Masked Autoencoders Are Scalable
    Vision Learners". ``pred`` and ``target`` are [B, N, P] (P pixels per patch) and
    ``mask`` is [B, N] with 1/True for masked (predicted) patches. With
    ``normalize_target`` each target patch is standardised by its own pixels,
    ``t <- (t - mean(t)) / sqrt(var(t) + eps)`` (population variance over the P pixels),
    then::

        L = sum_{b,n} m_{bn} * (1/P) * sum_j (pred_{bnj} - t_{bnj})^2  /  sum_{b,n} m_{bn}

    Returns 0 (still attached to ``pred``'s graph) when no patch is masked.
    """
    return _masked_patch_loss("masked_patch_mse", torch.square, pred, target, mask, normalize_target, eps)


def masked_patch_l1(pred: Tensor, target: Tensor, mask: Tensor, normalize_target: bool = False,
                       eps: float = 1e-6) -> Tensor:
    """SimMIM reconstruction loss: L1 distance to the raw pixels, averaged over the masked pixels only.

    Xie, Zhang, Cao, Lin, Bao, Yao, Dai & Hu (2022), "SimMIM: A Simple Framework for Masked
    Image Modeling" (CVPR), eq. 1: ``L = 1/Omega(x_M) * || y_M - x_M ||_1`` with ``Omega`` the
    number of masked pixels. Shapes as :func:`masked_patch_mse` (every patch has P pixels, so
    the mean over masked patches of per-patch means is the mean over masked pixels)::

        L = sum_{b,n} m_{bn} * (1/P) * sum_j |pred_{bnj} - t_{bnj}|  /  sum_{b,n} m_{bn}

    Targets are the raw (input-normalised) pixels by default, as in the paper; ``normalize_target``
    standardises each target patch as MAE does. Nothing is gathered across processes under DDP:
    each process averages over its own masked pixels and DDP averages the gradients. Returns 0
    (still attached to ``pred``'s graph) when no patch is masked.
    """
    return _masked_patch_loss("masked_patch_l1", torch.abs, pred, target, mask, normalize_target, eps)


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into flattened non-overlapping square patches, MAE ordering.

    ``[B, C, H, W] -> [B, (H/p) * (W/p), p * p * C]``: patches are listed row-major over
    the patch grid and each patch is flattened in (row, column, channel) order, as in
    He et al. (2022), "Masked Autoencoders Are Scalable Vision Learners".
    """
    if images.ndim != 4:
        raise ValueError(f"patchify expects images [B, C, H, W], got shape {tuple(images.shape)}")
    if patch_size <= 0:
        raise ValueError(f"patchify patch_size must be positive, got {patch_size}")
    b, c, h, w = images.shape
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"patchify: image size {h}x{w} is not divisible by patch_size={patch_size}; "
            f"resize or crop the images to a multiple of {patch_size}"
        )
    gh, gw = h // patch_size, w // patch_size
    x = images.reshape(b, c, gh, patch_size, gw, patch_size)
    x = x.permute(0, 2, 4, 3, 5, 1)  # [B, gh, gw, p, p, C]
    return x.reshape(b, gh * gw, patch_size * patch_size * c)


def unpatchify(
    patches: Tensor,
    patch_size: int,
    channels: int,
    grid_size: tuple[int, int] | None = None,
) -> Tensor:
    """Inverse of :func:`patchify`: ``[B, N, p * p * C] -> [B, C, H, W]``.

    The patch grid is ``grid_size = (H/p, W/p)``; when omitted it is taken to be square
    (N must then be a perfect square).
    """
    if patches.ndim != 3:
        raise ValueError(f"unpatchify expects patches [B, N, P], got shape {tuple(patches.shape)}")
    b, n, dim = patches.shape
    if dim != patch_size * patch_size * channels:
        raise ValueError(
            f"unpatchify: last dim {dim} != patch_size^2 * channels = "
            f"{patch_size}^2 * {channels} = {patch_size * patch_size * channels}"
        )
    if grid_size is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(
                f"unpatchify: {n} patches do not form a square grid; pass grid_size=(rows, cols)"
            )
        grid_size = (side, side)
    gh, gw = grid_size
    if gh * gw != n:
        raise ValueError(f"unpatchify: grid_size {gh}x{gw} does not hold {n} patches")
    x = patches.reshape(b, gh, gw, patch_size, patch_size, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # [B, C, gh, p, gw, p]
    return x.reshape(b, channels, gh * patch_size, gw * patch_size)
