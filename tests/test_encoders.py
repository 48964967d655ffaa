"""The ViT encoder's input flexibility: other input sizes (resampled position embeddings), MAE's
kept patches, SimMIM's mask token."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from selfsup.encoders import build_encoder
from selfsup.encoders.image import ViTEncoder


def _vit(size: int = 32) -> ViTEncoder:
    torch.manual_seed(0)
    encoder = build_encoder({"name": "vit_micro", "image_size": size})
    with torch.no_grad():  # timm starts pos_embed near zero; make positions matter
        encoder.model.pos_embed.normal_(std=1.0)
    return encoder.eval()


def _images(b: int, h: int, w: int | None = None, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, h, w or h, generator=torch.Generator().manual_seed(seed))


def _timm_dynamic_twin(encoder: ViTEncoder) -> VisionTransformer:
    """The same weights in timm's own ViT with ``dynamic_img_size``: the reference for other sizes."""
    m = encoder.model
    twin = VisionTransformer(img_size=encoder.config["image_size"], patch_size=encoder.patch_size,
                             embed_dim=encoder.dim, depth=len(m.blocks), num_heads=m.blocks[0].attn.num_heads,
                             num_classes=0, qkv_bias=True, dynamic_img_size=True)
    twin.load_state_dict(m.state_dict())
    return twin.eval()


def test_vit_at_its_build_size_equals_timm_forward_features():
    encoder, x = _vit(), _images(2, 32)
    with torch.no_grad():
        tokens = encoder(x)
        assert tokens.shape == (2, 1 + 64, encoder.dim)
        torch.testing.assert_close(tokens, encoder.model.forward_features(x), rtol=0, atol=0)


@pytest.mark.parametrize(("h", "w"), [(16, 16), (24, 24), (32, 16), (48, 48)])
def test_vit_on_another_size_resamples_position_embeddings(h, w):
    encoder, x = _vit(), _images(2, h, w)
    with torch.no_grad():
        tokens = encoder(x)
        assert tokens.shape == (2, 1 + (h // 4) * (w // 4), encoder.dim)
        torch.testing.assert_close(tokens, _timm_dynamic_twin(encoder).forward_features(x))
        if h > 32 or w > 32:
            return
        # smaller grids are resampled, not cut off: not the top-left corner of the learned grid
        grid = encoder.model.pos_embed[:, 1:].reshape(1, 8, 8, -1)
        corner = torch.cat([encoder.model.pos_embed[:, :1], grid[:, : h // 4, : w // 4].flatten(1, 2)], dim=1)
        assert not torch.allclose(encoder.pos_embed_for((h // 4, w // 4)), corner)


def test_vit_small_input_trains_the_position_embeddings_and_keeps_mae_path():
    encoder = _vit().train()
    tokens = encoder(_images(2, 16))
    tokens.sum().backward()
    assert encoder.model.pos_embed.grad is not None and encoder.model.pos_embed.grad.abs().sum() > 0

    x = _images(3, 16)
    keep = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(i))[:5] for i in range(3)])
    with torch.no_grad():
        assert encoder.eval()(x, keep_idx=keep).shape == (3, 1 + 5, encoder.dim)
        every = torch.arange(16).expand(3, -1)
        torch.testing.assert_close(encoder(x, keep_idx=every), encoder(x))


def test_vit_mask_token_replaces_masked_patches_only():
    encoder, x = _vit(), _images(2, 32)
    token = torch.randn(encoder.dim, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(2, 64, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x, token_mask=mask, mask_token=token), encoder(x), rtol=0, atol=0)
        mask[0, :10] = True
        masked = encoder(x, token_mask=mask, mask_token=token)
        assert not torch.allclose(masked[0], encoder(x)[0])
        torch.testing.assert_close(masked[1], encoder(x)[1])  # per sample
        # equals feeding the token in place of the patch embeddings by hand
        m = encoder.model
        patches = m.patch_embed(x)
        patches[0, :10] = token
        manual = m.norm(m.blocks(m.norm_pre(torch.cat([m.cls_token.expand(2, -1, -1), patches], 1) + m.pos_embed)))
        torch.testing.assert_close(masked, manual)
    with pytest.raises(ValueError, match="mask_token"):
        encoder(x, token_mask=mask)


def test_vit_rejects_sizes_that_are_not_patch_multiples():
    with pytest.raises(Exception, match="divisible"):
        _vit()(_images(1, 18))
