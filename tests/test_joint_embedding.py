"""``methods.joint_embedding.embed_views``: the one "concatenate, embed, project, split" of the six
two-view methods (SimCLR, MoCo, BYOL, SimSiam, Barlow Twins, VICReg)."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.encoders import build_encoder
from selfsup.methods.joint_embedding import embed_views, first_view

SIZE = 16


def _views(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"view1": torch.rand(4, 3, SIZE, SIZE, generator=gen), "view2": torch.rand(4, 3, SIZE, SIZE, generator=gen)}


def test_embed_views_is_one_pass_then_each_head_then_split():
    torch.manual_seed(0)
    encoder = build_encoder({"name": "tiny_cnn", "image_size": SIZE}).train()
    projector, predictor = nn.Linear(encoder.dim, 6), nn.Linear(6, 5)
    batch = _views()
    h, (z1, z2), (p1, p2) = embed_views(encoder, batch, projector, predictor)

    h_ref = encoder.embed(torch.cat([batch["view1"], batch["view2"]]))
    z_ref = projector(h_ref)
    p_ref = predictor(z_ref)
    assert torch.equal(h, h_ref)
    assert torch.equal(torch.cat([z1, z2]), z_ref) and z1.shape == (4, 6)
    assert torch.equal(torch.cat([p1, p2]), p_ref) and p2.shape == (4, 5)
    # BatchNorm sees both views as one batch: embedding view 1 alone gives other features
    assert not torch.allclose(h[:4], encoder.embed(batch["view1"]))
    assert torch.equal(first_view(h), h_ref[:4]) and not first_view(h).requires_grad


def test_embed_views_without_heads_and_with_token_views():
    class MeanEmbed(nn.Module):
        def embed(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            mask = inputs["attention_mask"].float()
            return (inputs["input_ids"].float() * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True)

    short = {"input_ids": torch.tensor([[1, 2], [3, 4]]), "attention_mask": torch.ones(2, 2, dtype=torch.long)}
    long = {"input_ids": torch.tensor([[5, 6, 7], [8, 9, 10]]), "attention_mask": torch.ones(2, 3, dtype=torch.long)}
    (h,) = embed_views(MeanEmbed(), {"view1": short, "view2": long})
    # the shorter view is right-padded with mask 0, so each row keeps its own mean
    assert h.squeeze(1).tolist() == [1.5, 3.5, 6.0, 9.0]
