"""Space-time ViT over cached Video Swin tokens, and the per-frame head that turns its tokens into frame features.

MGENet's RGB encoder and mask encoder (arXiv 2312.04119 §3) share this architecture: a linear projection of the
(t, h, w, C_b) tokens, a learned space-time position embedding, and pre-norm transformer blocks with joint attention
over all P = t*h*w tokens (no factorisation into space and time). The mask encoder passes ``keep``: it embeds and
attends over the visible tokens only, so a masked token cannot reach its output (as in MAE's encoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mgenet.config import FromDict


@dataclass
class ViTConfig(FromDict):
    """Architecture of a space-time ViT encoder.

    Attributes:
        t: token steps in time (T / 2 for Video Swin's 2x4x4 patches).
        h: token rows (H / 8 after Video Swin stage 2).
        w: token columns (W / 8).
        in_dim: channels of the cached tokens (C_b = 192 for Video Swin-T stage 2).
        dim: model width.
        depth: transformer blocks.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of each block's MLP, as a multiple of ``dim``.
        dropout: dropout after attention and MLP (0 keeps training free of RNG draws).
    """

    t: int = 12
    h: int = 16
    w: int = 8
    in_dim: int = 192
    dim: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if min(self.t, self.h, self.w, self.in_dim, self.dim, self.depth, self.heads) < 1:
            raise ValueError(f"ViT sizes must be positive, got {self}")
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")

    @property
    def n_tokens(self) -> int:
        return self.t * self.h * self.w


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape  # (B, N, D)
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, D / heads)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.mlp(self.norm2(x))


class SpaceTimeViT(nn.Module):
    """Joint space-time attention encoder over a clip's tokens."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.in_dim, cfg.dim)
        self.pos = nn.Parameter(torch.zeros(cfg.n_tokens, cfg.dim))  # one vector per (t, h, w) position
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a batch of clips.

        Args:
            tokens: (B, t, h, w, C_b) cached backbone tokens.
            keep: optional (B, P_vis) indices into the flattened (t, h, w) positions of the tokens to encode; the
                others are dropped before the projection, so they cannot influence the output.

        Returns:
            (B, P, dim) token features, or (B, P_vis, dim) with ``keep``, in the order of ``keep``.
        """
        b = tokens.shape[0]
        x = tokens.reshape(b, self.cfg.n_tokens, -1)  # (B, P, C_b), index = (ti * h + hi) * w + wi
        pos = self.pos.expand(b, -1, -1)  # (B, P, D)
        if keep is not None:
            x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))  # (B, P_vis, C_b)
            pos = pos.gather(1, keep[..., None].expand(-1, -1, pos.shape[-1]))
        x = self.proj(x) + pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class TemporalHead(nn.Module):
    """Per-frame head: mean over a token step's spatial tokens, an MLP, and a split of each token step into the
    ``seg_len / t`` frames it covers (a linear temporal upsampling: Video Swin's 2x temporal patch gives 2 frames per
    step)."""

    def __init__(self, in_dim: int, out_dim: int, t: int, seg_len: int, hidden: int | None = None) -> None:
        super().__init__()
        if seg_len % t:
            raise ValueError(f"seg_len={seg_len} must be a multiple of the token steps t={t}")
        self.out_dim = out_dim
        self.ratio = seg_len // t
        hidden = hidden or in_dim
        self.mlp = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, self.ratio * out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, t, S, D) tokens grouped by step (S spatial tokens each, all or the visible ones) -> (B, T, out)."""
        b, t = x.shape[:2]
        y = self.mlp(x.mean(2))  # (B, t, ratio * out)
        return y.reshape(b, t * self.ratio, self.out_dim)
