"""LSTA: local spatio-temporal attention head H_B of MGENet's RGB encoder (arXiv 2312.04119 §3.2).

Each block squeezes the token features to one channel (their channel mean), runs a 3D large-kernel attention (LKA, as
VAN decomposes a k^3 kernel: a (2d-1)^3 depthwise conv, a ceil(k/d)^3 depthwise conv with dilation d, and a 1x1x1
conv), and re-weights the features with the sigmoid of the result: e <- e + e * sigmoid(LKA(mean_c e)). The head then
averages each token step over space and predicts the frames' motion features f_rgb (T, C_mo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from mgenet.config import FromDict
from mgenet.models.vit import TemporalHead


@dataclass
class LSTAConfig(FromDict):
    """Architecture of H_B.

    Attributes:
        dim: channels of the encoder tokens.
        t: token steps; h, w: token grid.
        seg_len: frames T of the predicted f_rgb (a multiple of t).
        out_dim: per-frame features C_mo (36 = 2 coordinates x 18 joints, the flow latent's per-frame size).
        blocks: LSTA blocks L; 0 turns LSTA off (the ablation: spatial mean and MLP only).
        kernel: the large kernel k that LKA decomposes (VAN: 21).
        dilation: d of the dilated conv (VAN: 3).
    """

    dim: int = 256
    t: int = 12
    h: int = 16
    w: int = 8
    seg_len: int = 24
    out_dim: int = 36
    blocks: int = 2
    kernel: int = 21
    dilation: int = 3

    def __post_init__(self) -> None:
        if self.blocks < 0 or self.kernel < 1 or self.dilation < 1:
            raise ValueError(f"LSTA needs blocks >= 0, kernel >= 1, dilation >= 1, got {self}")


class LKA3d(nn.Module):
    """3D large-kernel attention logits on a one-channel volume (B, 1, t, h, w) -> (B, 1, t, h, w).

    With one channel a depthwise conv is a plain 1 -> 1 conv; all convs are 'same'-padded.
    """

    def __init__(self, kernel: int, dilation: int) -> None:
        super().__init__()
        local = 2 * dilation - 1
        wide = math.ceil(kernel / dilation)
        self.local = nn.Conv3d(1, 1, local, padding=local // 2)
        self.wide = nn.Conv3d(1, 1, wide, padding=dilation * (wide - 1) // 2, dilation=dilation)
        self.point = nn.Conv3d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point(self.wide(self.local(x)))


class LSTABlock(nn.Module):
    """e <- e + e * sigmoid(LKA(channel mean of e)), on (B, C, t, h, w)."""

    def __init__(self, kernel: int, dilation: int) -> None:
        super().__init__()
        self.lka = LKA3d(kernel, dilation)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        attn = torch.sigmoid(self.lka(e.mean(1, keepdim=True)))  # (B, 1, t, h, w), shared by all channels
        return e + e * attn


class LSTAHead(nn.Module):
    """H_B: LSTA blocks, then per-step spatial mean and an MLP -> f_rgb."""

    def __init__(self, cfg: LSTAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(LSTABlock(cfg.kernel, cfg.dilation) for _ in range(cfg.blocks))
        self.head = TemporalHead(cfg.dim, cfg.out_dim, cfg.t, cfg.seg_len)

    def forward(self, e_b: torch.Tensor) -> torch.Tensor:
        """(B, P, D) encoder tokens -> f_rgb (B, T, C_mo)."""
        c = self.cfg
        b = e_b.shape[0]
        e = e_b.reshape(b, c.t, c.h, c.w, -1)  # (B, t, h, w, D)
        if len(self.blocks):
            e = e.permute(0, 4, 1, 2, 3)  # (B, D, t, h, w)
            for block in self.blocks:
                e = block(e)
            e = e.permute(0, 2, 3, 4, 1)  # (B, t, h, w, D)
        return self.head(e.reshape(b, c.t, c.h * c.w, -1))
