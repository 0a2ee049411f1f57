"""CRNet: the Context Recovery stream's frame predictor (Cao et al., arXiv 2209.02899, §3.1).

Eight context frames go through the frozen Video Swin-T stages 1-2 (the project's F_B, on whole frames); a
U-Net-style decoder upsamples stage 2's tokens back to the frame, with a skip connection from the patch embedding
(the H/4 stage), and predicts the next frame. Time is folded into channels at each encoder level (the tokens have
t = 4 steps for 8 frames), so the decoder sees the whole motion. The authors' STUNet uses an I3D-R50 encoder with
skips from its stages in the same way; the encoder here is ours (see README, "Two-stream baseline").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mgenet.config import FromDict
from mgenet.features.swin import SwinStages12


@dataclass
class CRNetConfig(FromDict):
    """Attributes:
        context: context frames per prediction (the paper's 8; Swin's 2-frame patches need an even number).
        width: decoder channels at full resolution; x2 and x4 at the coarser levels.
    """

    context: int = 8
    width: int = 32


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class CRDecoder(nn.Module):
    """Stage-2 tokens and patch-embedding features -> one RGB frame in [0, 1]."""

    def __init__(self, cfg: CRNetConfig, embed_dims: int = 96, out_dims: int = 192) -> None:
        super().__init__()
        t = cfg.context // 2  # token steps after the 2-frame temporal patches
        w = cfg.width
        self.deep = _block(t * out_dims, 4 * w)  # H/8
        self.skip = nn.Conv2d(t * embed_dims, w, 1)  # H/4 skip, reduced before concatenation
        self.up4 = _block(4 * w + w, 2 * w)  # H/4
        self.up2 = _block(2 * w, w)  # H/2
        self.up1 = _block(w, w)  # H
        self.head = nn.Conv2d(w, 3, 1)

    def forward(self, e1: torch.Tensor, e2: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Args:
            e1: (B, 96, t, H/4, W/4) patch embedding.
            e2: (B, t, H/8, W/8, 192) stage-2 tokens.
            size: (H, W) of the target frame.
        Returns:
            (B, 3, H, W) predicted frame.
        """
        b = len(e1)
        x = self.deep(e2.permute(0, 1, 4, 2, 3).reshape(b, -1, *e2.shape[2:4]))  # (B, 4w, H/8, W/8)
        s = self.skip(e1.reshape(b, -1, *e1.shape[3:]))  # (B, w, H/4, W/4)
        x = F.interpolate(x, size=s.shape[2:], mode="bilinear", align_corners=False)
        x = self.up4(torch.cat([x, s], 1))  # (B, 2w, H/4, W/4)
        x = self.up2(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))  # (B, w, H/2, W/2)
        x = self.up1(F.interpolate(x, size=size, mode="bilinear", align_corners=False))  # (B, w, H, W)
        return torch.sigmoid(self.head(x))


class CRNet(nn.Module):
    """Frozen F_B encoder + trainable decoder. ``train()`` keeps the encoder in eval mode."""

    def __init__(self, encoder: SwinStages12, cfg: CRNetConfig) -> None:
        super().__init__()
        if cfg.context < 2 or cfg.context % 2:
            raise ValueError(f"cr.model.context {cfg.context}: must be even and >= 2 (Swin's 2-frame patches)")
        self.cfg = cfg
        self.encoder = encoder.eval().requires_grad_(False)
        self.decoder = CRDecoder(cfg, encoder.cfg.embed_dims, encoder.cfg.out_dims)

    def train(self, mode: bool = True) -> CRNet:
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args:
            x: (B, 3, context, H, W) context frames, normalised with the Kinetics-400 mean and std.
        Returns:
            (B, 3, H, W) the predicted next frame, RGB in [0, 1].
        """
        with torch.no_grad():
            enc = self.encoder
            e1 = enc.patch_embed(x)  # (B, 96, t, H/4, W/4)
            e2 = enc.layers[0](e1.contiguous(), do_downsample=True)  # (B, t, H/8, W/8, 192)
            e2 = enc.layers[1](e2.permute(0, 4, 1, 2, 3).contiguous(), do_downsample=False)  # (B, t, H/8, W/8, 192)
        return self.decoder(e1, e2, x.shape[-2:])


def local_error(pred: torch.Tensor, target: torch.Tensor, patch: int, stride: int, lam_l1: float = 1.0) -> torch.Tensor:
    """Maximum local error (the authors' MLE): the largest mean squared error over ``patch`` x ``patch`` windows at
    ``stride``, plus ``lam_l1`` times the largest mean absolute error over the same windows (each maximum taken on
    its own, as in the public ``maximum_local_error``).

    Args:
        pred, target: (B, C, H, W) frames.
        patch: window side, clipped to the frame.
    Returns:
        (B,) scores.
    """
    return max_local(((pred - target) ** 2).mean(1, keepdim=True), patch, stride) + \
        lam_l1 * max_local((pred - target).abs().mean(1, keepdim=True), patch, stride)


def max_local(err: torch.Tensor, patch: int, stride: int) -> torch.Tensor:
    """Largest window mean (B,) of error maps (B, 1, H, W)."""
    ph, pw = min(patch, err.shape[-2]), min(patch, err.shape[-1])
    return F.avg_pool2d(err, (ph, pw), stride=stride).amax(dim=(1, 2, 3))
