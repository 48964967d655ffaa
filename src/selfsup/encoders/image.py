"""Image encoders: timm backbones behind the selfsup Encoder interface.

CNNs (ResNet family) return their last spatial feature map flattened to tokens [B, H*W, C] and pool
by averaging; ViTs return their patch tokens [B, 1 + N, D] (class token first) and pool with the
class token, as in MAE/DINO linear probing. Every encoder records the keyword arguments that rebuild
it in ``self.config`` so exports can be reloaded without pickles.
"""

from __future__ import annotations

import timm
import torch
from timm.layers import resample_abs_pos_embed
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..registry import register_encoder
from .base import Encoder
from .convolution import skip_dead_taps


def _small_image_stem(model: ResNet, in_chans: int) -> None:
    """Replace the 7x7/2 conv + max-pool stem by a 3x3/1 conv without pooling.

    The CIFAR variant of ResNet (He et al. 2016 §4.2; used by SimCLR's CIFAR-10 experiments):
    32 px images keep their resolution through the stem instead of shrinking 4x.
    """
    width = model.conv1.out_channels
    model.conv1 = nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()


class ResNetEncoder(Encoder):
    """A timm ResNet without its classifier; tokens are the final feature map's positions."""

    def __init__(self, model: ResNet, config: dict) -> None:
        super().__init__()
        model.reset_classifier(0)
        # channels-last convolution weights make oneDNN/cuDNN pick NHWC kernels for any input layout:
        # about 1.2-1.4x faster ResNet-18 training steps on a 2-core CPU (both stems, measured 2026-11-25)
        self.model = model.to(memory_format=torch.channels_last)
        # small inputs leave whole kernel rows only on padding in the last stages (a 3x3 conv on a 1x1 map
        # at 32 px with the standard stem); skipping them is exact and 1.4x faster per step there
        skip_dead_taps(self.model)
        self.dim = model.num_features
        self.config = config

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        fmap = self.model.forward_features(inputs)  # [B, C, H, W]
        return fmap.flatten(2).transpose(1, 2)


class ViTEncoder(Encoder):
    """A timm VisionTransformer; ``forward`` can drop patches (MAE) or mask them with a token (SimMIM).

    Tokens are [B, 1 + N, D] with the class token first; ``pool`` returns the class token. Images of
    another size than the build size (e.g. DINO's small local crops) get the absolute position
    embeddings resampled to their patch grid, with timm's ``resample_abs_pos_embed``.
    """

    def __init__(self, model: VisionTransformer, config: dict) -> None:
        super().__init__()
        model.reset_classifier(0)
        model.patch_embed.strict_img_size = False  # any multiple of the patch size; see ``pos_embed_for``
        self.model = model
        self.dim = model.embed_dim
        self.patch_size = model.patch_embed.patch_size[0]
        self.num_patches = model.patch_embed.num_patches
        self.config = config

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """Position embeddings [1, 1 + gh*gw, D] (class token first) for a ``grid`` of patches:
        the learned ones at the build size, bicubically resampled at any other."""
        m = self.model
        return resample_abs_pos_embed(m.pos_embed, new_size=list(grid), old_size=list(m.patch_embed.grid_size),
                                      num_prefix_tokens=m.num_prefix_tokens)

    def forward(self, inputs: torch.Tensor, keep_idx: torch.Tensor | None = None,
                token_mask: torch.Tensor | None = None, mask_token: torch.Tensor | None = None) -> torch.Tensor:
        """``inputs`` [B, C, H, W] -> tokens [B, 1 + N, D] after the blocks and the final norm; the masking
        arguments are :meth:`embedded`'s."""
        m = self.model
        return m.norm(m.blocks(self.embedded(inputs, keep_idx, token_mask, mask_token)))

    supports_masking = True

    def new_mask_embedding(self) -> nn.Parameter:
        mask_token = nn.Parameter(torch.zeros(self.dim))
        nn.init.trunc_normal_(mask_token, std=0.02)
        return mask_token

    def forward_masked(self, inputs: torch.Tensor, positions: torch.Tensor,
                       mask_embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches at ``positions`` [B, N] replaced by ``mask_embedding`` (SimMIM-style): (patch tokens
        [B, N, D], class token [B, D])."""
        out = self(inputs, token_mask=positions, mask_token=mask_embedding)
        return out[:, 1:], self.pool(out)

    def layer_states(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The patch tokens [B, N, D] after each block (class token left out)."""
        return [x[:, 1:] for x in self.layer_outputs(inputs)]

    def layer_outputs(self, inputs: torch.Tensor, token_mask: torch.Tensor | None = None,
                      mask_token: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The tokens [B, 1 + N, D] after each block, first to last (data2vec's targets)."""
        x, outputs = self.embedded(inputs, token_mask=token_mask, mask_token=mask_token), []
        for block in self.model.blocks:
            x = block(x)
            outputs.append(x)
        return outputs

    def embedded(self, inputs: torch.Tensor, keep_idx: torch.Tensor | None = None,
                 token_mask: torch.Tensor | None = None, mask_token: torch.Tensor | None = None) -> torch.Tensor:
        """``inputs`` [B, C, H, W] (H, W multiples of the patch size) -> the tokens [B, 1 + N, D] that enter the
        blocks (patch + position embeddings, class token first).

        ``keep_idx`` [B, K]: keep only these patches (MAE, He et al. 2022) -> [B, 1 + K, D].
        ``token_mask`` [B, N] (True = masked) with ``mask_token`` [D] (or broadcastable, e.g.
        [1, 1, D]): replace the masked patch embeddings by the token before the position
        embeddings are added; every token goes through the blocks (SimMIM, Xie et al. 2022).
        """
        m = self.model
        h, w = inputs.shape[-2:]
        x = m.patch_embed(inputs).flatten(1, -2)  # [B, N, D] (a timm ViT built with dynamic_img_size: [B, H, W, D])
        if token_mask is not None:
            if mask_token is None:
                raise ValueError("token_mask needs a mask_token to put in place of the masked patches")
            x = torch.where(token_mask.unsqueeze(-1), mask_token.to(x.dtype), x)
        pos = self.pos_embed_for((h // self.patch_size, w // self.patch_size))
        x = x + pos[:, m.num_prefix_tokens :, :]
        if keep_idx is not None:  # keep only the visible patches (He et al. 2022)
            x = torch.gather(x, 1, keep_idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        cls = m.cls_token + pos[:, :1, :]
        x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
        return m.norm_pre(x)

    def pool(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return tokens[:, 0]


# timm zero-initialises the last BatchNorm gamma of every residual block (Goyal et al. 2017), which
# leaves the residual branches silent at init: random-init kNN on CIFAR-10 0.200 instead of 0.287
# (torchvision's default init: 0.283). SSL recipes (SimCLR, BYOL, lightly, solo-learn) start from
# the standard init, so selfsup does too.
_STANDARD_INIT = {"zero_init_last": False}


def _resnet(name: str, in_chans: int, small_stem: bool) -> ResNet:
    model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, **_STANDARD_INIT)
    if small_stem:
        _small_image_stem(model, in_chans)
    return model


@register_encoder("tiny_cnn", "4-stage ResNet (1 BasicBlock each, widths 32-256) with the small-image stem; the fast CPU default")
def tiny_cnn(image_size: int = 32, in_chans: int = 3) -> Encoder:
    model = ResNet(block=BasicBlock, layers=(1, 1, 1, 1), channels=(32, 64, 128, 256),
                   stem_width=32, num_classes=0, in_chans=in_chans, **_STANDARD_INIT)
    _small_image_stem(model, in_chans)
    return ResNetEncoder(model, {"name": "tiny_cnn", "image_size": image_size, "in_chans": in_chans})


@register_encoder("resnet18", "standard ResNet-18 (7x7/2 stem + max-pool), for images of 64 px and up")
def resnet18(image_size: int = 224, in_chans: int = 3) -> Encoder:
    model = _resnet("resnet18", in_chans, small_stem=False)
    return ResNetEncoder(model, {"name": "resnet18", "image_size": image_size, "in_chans": in_chans})


@register_encoder("resnet18_cifar", "ResNet-18 with the small-image stem (3x3/1 conv, no max-pool), for 32 px data")
def resnet18_cifar(image_size: int = 32, in_chans: int = 3) -> Encoder:
    model = _resnet("resnet18", in_chans, small_stem=True)
    return ResNetEncoder(model, {"name": "resnet18_cifar", "image_size": image_size, "in_chans": in_chans})


@register_encoder("resnet50", "standard ResNet-50")
def resnet50(image_size: int = 224, in_chans: int = 3) -> Encoder:
    model = _resnet("resnet50", in_chans, small_stem=False)
    return ResNetEncoder(model, {"name": "resnet50", "image_size": image_size, "in_chans": in_chans})


def _default_patch_size(image_size: int) -> int:
    """16 px patches for large images, 4 px for 32 px images, 2 px below (8x8..16x16 grids)."""
    if image_size >= 128:
        return 16
    if image_size >= 32:
        return 4 if image_size < 64 else 8
    return 2


def _vit(name: str, image_size: int, in_chans: int, patch_size: int | None,
         embed_dim: int, depth: int, num_heads: int) -> Encoder:
    patch = patch_size or _default_patch_size(image_size)
    if image_size % patch:
        from ..errors import SelfSupError

        raise SelfSupError(
            f"image size {image_size} is not a multiple of the ViT patch size {patch}; "
            f"choose --image-size {image_size - image_size % patch or patch} or set encoder.patch_size"
        )
    model = VisionTransformer(img_size=image_size, patch_size=patch, in_chans=in_chans,
                              embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                              num_classes=0, mlp_ratio=4.0, qkv_bias=True)
    config = {"name": name, "image_size": image_size, "in_chans": in_chans, "patch_size": patch}
    return ViTEncoder(model, config)


@register_encoder("vit_micro", "ViT with 4 blocks of width 96 (3 heads); the fast CPU ViT for MAE")
def vit_micro(image_size: int = 32, in_chans: int = 3, patch_size: int | None = None) -> Encoder:
    return _vit("vit_micro", image_size, in_chans, patch_size, embed_dim=96, depth=4, num_heads=3)


@register_encoder("vit_tiny", "ViT-Tiny (12 blocks, width 192, 3 heads; Touvron et al. 2021)")
def vit_tiny(image_size: int = 224, in_chans: int = 3, patch_size: int | None = None) -> Encoder:
    return _vit("vit_tiny", image_size, in_chans, patch_size, embed_dim=192, depth=12, num_heads=3)


@register_encoder("vit_small", "ViT-Small (12 blocks, width 384, 6 heads)")
def vit_small(image_size: int = 224, in_chans: int = 3, patch_size: int | None = None) -> Encoder:
    return _vit("vit_small", image_size, in_chans, patch_size, embed_dim=384, depth=12, num_heads=6)
