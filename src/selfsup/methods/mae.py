"""MAE — He, Chen, Xie, Li, Dollár, Girshick 2022, "Masked Autoencoders Are Scalable Vision
Learners" (CVPR).

Pseudo-code (paper §3):
    patches = patchify(x); shuffle per sample; keep the first 25 %      # mask ratio 0.75
    latent = ViT_encoder(visible patches + their position embeddings)
    pred = decoder(latent + mask tokens, un-shuffled)                     # lightweight decoder
    loss = MSE(pred, normalised target pixels) on the MASKED patches only
Defaults: mask ratio 0.75, per-patch normalised targets (norm_pix_loss); the paper's 8-block,
512-wide decoder is 2 blocks of width 128 here for small images and CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import setting
from ..encoders.image import ViTEncoder
from ..errors import SelfSupError
from ..heads import MAEDecoder
from ..losses import masked_patch_mse, patchify
from ..pretext.masking import random_patch_mask
from ..pretext.image_recipes import light_augment
from ..registry import register_method
from ..types import Family, LossOutput, Modality
from .base import Hparams, Method, Pretext, count, ratio, width


@dataclass
class MAEHparams(Hparams):
    mask_ratio: float = ratio(0.75)
    decoder_dim: int = width(128)
    decoder_depth: int = count(2, 1024)
    decoder_heads: int = count(4, 1024)
    norm_pix_loss: bool = setting(True)


@register_method
class MAE(Method):
    name = "mae"
    family = Family.GENERATIVE
    modalities = frozenset({Modality.IMAGE})
    paper = "He et al. 2022, Masked Autoencoders Are Scalable Vision Learners (CVPR)"
    default_encoder = "vit_micro"
    optim_defaults = {"lr": 1.5e-3, "weight_decay": 0.05}
    Hparams = MAEHparams

    def __init__(self, encoder, input_size: int, **hparams) -> None:
        if not isinstance(encoder, ViTEncoder):
            raise SelfSupError(
                f"mae needs a Vision Transformer encoder, got {encoder.config.get('name')!r}; "
                "use --encoder vit_micro, vit_tiny or vit_small, or a timm ViT's weights (--encoder ARCH --init FILE)"
            )
        super().__init__(encoder, input_size, **hparams)
        channels = encoder.config.get("in_chans", 3)
        self.decoder = MAEDecoder(encoder.dim, encoder.num_patches, encoder.patch_size**2 * channels,
                                  self.hp.decoder_dim, self.hp.decoder_depth, self.hp.decoder_heads)

    def pretext(self, modality: Modality) -> Pretext:
        augment = light_augment(self.input_size)
        num_patches, ratio = self.encoder.num_patches, self.hp.mask_ratio

        def pretext(images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
            mask = random_patch_mask(images.shape[0], num_patches, ratio, images.device, generator)
            return {"images": augment(images, generator=generator), "keep_idx": mask.keep_idx,
                    "restore_idx": mask.restore_idx, "mask": mask.mask}

        return pretext

    def loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        images = batch["images"]
        tokens = self.encoder(images, keep_idx=batch["keep_idx"])
        pred = self.decoder(tokens, batch["restore_idx"])
        target = patchify(images, self.encoder.patch_size)
        loss = masked_patch_mse(pred, target, batch["mask"], normalize_target=self.hp.norm_pix_loss)
        return LossOutput(loss, embeddings=self.encoder.pool(tokens).detach())
