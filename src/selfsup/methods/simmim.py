"""SimMIM — Xie, Zhang, Cao, Lin, Bao, Yao, Dai, Hu 2022, "SimMIM: A Simple Framework for Masked
Image Modeling" (CVPR).

Pseudo-code (paper §3):
    M = random mask of square mask-patches (32 px over 16 px ViT patches), ratio 0.6
    tokens = ViT(patch_embed(x) with the patches under M REPLACED by a learned [MASK] token)
                                               # unlike MAE, every token goes through the encoder
    pred = Linear(tokens)                      # one-layer head: the raw pixels of each patch
    loss = L1(pred, x) averaged over the MASKED pixels only
Defaults: mask ratio 0.6; a mask patch is 2x2 ViT patches, the paper's 32 px / 16 px ratio (at 32 px
with 4 px patches: 8 px mask patches on the 8x8 grid); crop scale (0.67, 1) and flip as the paper.
Targets are the input-normalised pixels, as in the paper. AdamW with weight decay 0.05 as the paper;
the learning rate is raised from its 1e-4 per 512 images (ViT-B, 800 epochs) to MAE's setting here
for short runs of tiny ViTs. The [MASK] token lives in this method, so the exported encoder is a
plain ViT. Health-monitor embeddings are the class token of the masked pass (no extra forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..encoders.image import ViTEncoder
from ..errors import SelfSupError
from ..losses import masked_patch_l1, patchify
from ..pretext.masking import random_block_mask
from ..pretext.image_recipes import light_augment
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, count, ratio, scale


@dataclass
class SimMIMHparams(Hparams):
    mask_ratio: float = ratio(0.6)
    mask_block: int = count(2, 1024)  # mask-patch side in ViT patches (paper: 32 px / 16 px)
    min_crop_scale: float = scale(0.67)


@register_method
class SimMIM(Method):
    name = "simmim"
    family = Family.PREDICTIVE
    modalities = frozenset({Modality.IMAGE})
    paper = "Xie et al. 2022, SimMIM: A Simple Framework for Masked Image Modeling (CVPR)"
    default_encoder = "vit_micro"
    optim_defaults = {"lr": 1.5e-3, "weight_decay": 0.05}
    Hparams = SimMIMHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        if not isinstance(encoder, ViTEncoder):
            raise SelfSupError(
                f"simmim needs a Vision Transformer encoder, got {encoder.config.get('name')!r}; "
                "use --encoder vit_micro, vit_tiny or vit_small, or a timm ViT's weights (--encoder ARCH --init FILE)"
            )
        super().__init__(encoder, input_size, **hparams)
        patch, block = encoder.patch_size, self.hp.mask_block
        if input_size % (patch * block):
            raise SelfSupError(
                f"simmim: image size {input_size} is not a multiple of the mask patch "
                f"({block} x {patch} px ViT patches = {block * patch} px); change --image-size or method.mask_block"
            )
        self.mask_token = nn.Parameter(torch.zeros(encoder.dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Linear(encoder.dim, patch**2 * encoder.config.get("in_chans", 3))

    def pretext(self, modality: Modality) -> Pretext:
        augment = light_augment(self.input_size, scale=(self.hp.min_crop_scale, 1.0))
        grid = self.input_size // self.encoder.patch_size

        def pretext(images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            mask = random_block_mask(images.shape[0], grid, self.hp.mask_block, self.hp.mask_ratio,
                                     images.device, generator)
            return {"images": augment(images, generator=generator), "mask": mask}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        images, mask = batch["images"], batch["mask"]
        tokens = self.encoder(images, token_mask=mask, mask_token=self.mask_token)
        pred = self.head(tokens[:, 1:])  # [B, N, p*p*C]
        loss = masked_patch_l1(pred, patchify(images, self.encoder.patch_size), mask)
        return LossOutput(loss, embeddings=self.encoder.pool(tokens).detach())
