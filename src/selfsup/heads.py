"""Learned heads that sit on top of an encoder: projection/prediction MLPs, prototypes and the MAE decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn


class MLP(nn.Sequential):
    """Linear → BatchNorm → ReLU blocks, then a final Linear (optionally BatchNorm'ed).

    The projection head of SimCLR (Chen et al. 2020) and the projector/predictor of BYOL
    (Grill et al. 2020) are instances: ``MLP(d, hidden, out, num_layers=2)``.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                 last_batch_norm: bool = False) -> None:
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_batch_norm))
        if last_batch_norm:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        super().__init__(*layers)


class Prototypes(nn.Linear):
    """Cosine scores of (L2-normalised) inputs against K unit-norm prototype vectors: [..., K].

    The prototype layer of SwAV (Caron et al. 2020) and DINO's weight-normalised last layer with its
    gain fixed to 1 (Caron et al. 2021; ``weight_norm`` with g = 1 is exactly ``normalize(W)``).
    ``frozen`` (both recipes' first iterations) gives the weights a zero gradient while keeping
    them in the graph, so DDP, which expects a gradient for every parameter, still works.
    """

    def __init__(self, in_dim: int, num_prototypes: int) -> None:
        super().__init__(in_dim, num_prototypes, bias=False)
        self.frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.normalize(self.weight, dim=1)
        if self.frozen:
            weight = weight.detach() + 0.0 * weight  # same values, zero gradient
        return F.linear(F.normalize(x, dim=-1), weight)

    @torch.no_grad()
    def normalize_(self) -> None:
        """Rescale every prototype to unit norm in place (SwAV does so before each forward pass)."""
        self.weight.copy_(F.normalize(self.weight, dim=1))


class MAEDecoder(nn.Module):
    """The lightweight Transformer decoder of MAE (He et al. 2022, §3).

    Takes the encoder's tokens of the visible patches (class token first), inserts a shared learned
    mask token at every hidden position, un-shuffles to the original patch order, adds position
    embeddings, and predicts the pixels of every patch: [B, N, patch_pixels].
    """

    def __init__(self, encoder_dim: int, num_patches: int, patch_pixels: int, dim: int = 128,
                 depth: int = 2, num_heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.predict = nn.Linear(dim, patch_pixels)
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, tokens: torch.Tensor, restore_idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        cls, visible = x[:, :1], x[:, 1:]
        batch, num_patches = restore_idx.shape
        hidden = self.mask_token.expand(batch, num_patches - visible.shape[1], -1)
        patches = torch.cat([visible, hidden], dim=1)
        patches = torch.gather(patches, 1, restore_idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([cls, patches], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.predict(x[:, 1:])


class TokenPredictionHead(nn.Module):
    """Scores over the vocabulary for each token state: [..., D] → [..., V].

    BERT's masked-LM head (Devlin et al. 2019): Linear → GELU → LayerNorm, then an output layer that
    shares its weight with the input word embeddings (Press & Wolf 2017, "Using the Output Embedding to
    Improve Language Models") plus a bias. ``transform=False`` gives GPT's head (Radford et al. 2019):
    the tied output layer alone, on states the decoder has already normalised.
    """

    def __init__(self, embeddings: nn.Embedding, transform: bool = True) -> None:
        super().__init__()
        dim = embeddings.embedding_dim
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim)) if transform else nn.Identity()
        self.embeddings = embeddings  # shared with the encoder, not a copy
        self.bias = nn.Parameter(torch.zeros(embeddings.num_embeddings))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(states), self.embeddings.weight, self.bias)
