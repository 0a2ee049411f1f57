"""STG-NF: a Glow-style normalizing flow over pose segments (Hirschorn & Avidan, ICCV 2023), MGENet's stage 1.

A segment x (C=2 coordinates, T frames, V=18 joints) goes through K flow steps, each
ActNorm -> invertible 1x1 conv over channels -> affine coupling, to a latent z of the same shape with prior N(0, I).
The coupling network is a spatio-temporal graph conv (graph conv over the skeleton, then a temporal conv), so a
joint's transform depends on its neighbours over ``temporal_kernel`` frames. z is MGENet's f_sk (C_mo = 2 * 18 = 36
per frame); the negative log-likelihood is the anomaly score S_nf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from mgenet.models.graph import N_JOINTS, STRATEGIES, adjacency

PERMUTATIONS = ("invconv", "reverse")


@dataclass
class FlowConfig:
    """Architecture of the flow; stored in every checkpoint.

    Attributes:
        in_channels: coordinates per joint (x, y).
        n_joints: joints per frame; the OpenPose-18 graph fixes it at 18.
        seg_len: frames per segment (T).
        n_flows: flow steps (K).
        hidden_channels: width of the coupling network; 0 means the width of its output (2 * the transformed
            half), STG-NF's single-block setting.
        temporal_kernel: odd temporal kernel of the coupling network's temporal conv.
        edge_importance: learn a multiplicative mask on the adjacency per step (ST-GCN's edge importance).
        permutation: channel mixing between couplings: ``invconv`` (Glow's learned 1x1 conv) or ``reverse``
            (a fixed channel swap, STG-NF's default).
        graph_strategy: adjacency partition, ``spatial`` (3 subsets) or ``uniform`` (see ``graph.adjacency``).
        max_hop: neighbourhood radius of the graph conv, in bones.
    """

    in_channels: int = 2
    n_joints: int = N_JOINTS
    seg_len: int = 24
    n_flows: int = 8
    hidden_channels: int = 0
    temporal_kernel: int = 9
    edge_importance: bool = False
    permutation: str = "invconv"
    graph_strategy: str = "spatial"
    max_hop: int = 1

    def __post_init__(self) -> None:
        if self.in_channels < 2 or self.in_channels % 2:
            raise ValueError(f"in_channels must be even and >= 2 (the coupling splits it), got {self.in_channels}")
        if self.n_joints != N_JOINTS:
            raise ValueError(f"n_joints must be {N_JOINTS} (the OpenPose-18 graph), got {self.n_joints}")
        if self.temporal_kernel % 2 != 1 or not 1 <= self.temporal_kernel <= self.seg_len:
            raise ValueError(f"temporal_kernel must be odd and in [1, seg_len={self.seg_len}], "
                             f"got {self.temporal_kernel}")
        if self.n_flows < 1 or self.hidden_channels < 0:
            raise ValueError("n_flows must be >= 1 and hidden_channels >= 0")
        if self.permutation not in PERMUTATIONS:
            raise ValueError(f"permutation must be one of {PERMUTATIONS}, got {self.permutation!r}")
        if self.graph_strategy not in STRATEGIES:
            raise ValueError(f"graph_strategy must be one of {STRATEGIES}, got {self.graph_strategy!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowConfig:
        """Build from a config mapping; an unknown key is an error, so a misspelt setting never goes unnoticed."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown flow model settings {unknown}; known: {sorted(known)}")
        return cls(**d)


class ActNorm(nn.Module):
    """Per-channel affine y = (x + bias) * exp(logs), initialised from the first training batch to zero mean, unit
    variance (Glow §3.1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        # A buffer, not a Python flag, so a loaded checkpoint is never re-initialised by its first batch.
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _init(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, correction=0)
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, C, T, V)
        if self.training and not bool(self.initialized):
            self._init(x)
        y = (x + self.bias) * torch.exp(self.logs)
        logdet = self.logs.sum() * x.shape[2] * x.shape[3]  # same for every sample: the map is per channel
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.logs) - self.bias


class InvConv1x1(nn.Module):
    """Invertible 1x1 conv over channels (Glow §3.2), initialised to a random rotation. With C = 2 the weight is 2x2,
    so a plain ``slogdet`` and ``inv`` cost nothing and need no LU parametrisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        w, _ = torch.linalg.qr(torch.randn(channels, channels))
        self.weight = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, C, T, V)
        y = torch.einsum("dc,bctv->bdtv", self.weight, x)
        logdet = torch.linalg.slogdet(self.weight)[1] * x.shape[2] * x.shape[3]
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.einsum("dc,bctv->bdtv", torch.linalg.inv(self.weight), y)


class ReverseChannels(nn.Module):
    """Fixed channel reversal (STG-NF's default ``permute``): volume preserving, so no log-det."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.flip(1), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.flip(1)


class STGraphConv(nn.Module):
    """Coupling network: graph conv over joints (one 1x1 conv per adjacency subset, summed over the subset's
    neighbours), ReLU, then a temporal conv. The temporal conv starts at zero so the coupling starts as a constant
    affine map (Glow's zero init)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, A: torch.Tensor, temporal_kernel: int,
                 edge_importance: bool) -> None:
        super().__init__()
        self.register_buffer("A", A)  # (K, V, V), rows = receiving joint
        self.edge_importance = nn.Parameter(torch.ones_like(A)) if edge_importance else None
        self.k = A.shape[0]
        self.gcn = nn.Conv2d(in_ch, hidden * self.k, kernel_size=1)
        self.tcn = nn.Conv2d(hidden, out_ch, kernel_size=(temporal_kernel, 1), padding=(temporal_kernel // 2, 0))
        nn.init.zeros_(self.tcn.weight)
        nn.init.zeros_(self.tcn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, T, V)
        A = self.A if self.edge_importance is None else self.A * self.edge_importance
        h = self.gcn(x)  # (B, K * H, T, V)
        h = h.view(h.shape[0], self.k, -1, h.shape[2], h.shape[3])  # (B, K, H, T, V)
        h = torch.einsum("bkhtv,kwv->bhtw", h, A)  # (B, H, T, V)
        return self.tcn(F.relu(h))  # (B, C_out, T, V)


class FlowStep(nn.Module):
    """ActNorm -> channel mixing -> affine coupling (Glow's step; STG-NF's with a graph coupling network)."""

    def __init__(self, cfg: FlowConfig, A: torch.Tensor) -> None:
        super().__init__()
        c = cfg.in_channels
        self.c1 = c // 2  # conditioning half: passed through, drives the other half's shift and scale
        out = 2 * (c - self.c1)  # shift and log-scale for the transformed half
        self.actnorm = ActNorm(c)
        self.mix = InvConv1x1(c) if cfg.permutation == "invconv" else ReverseChannels()
        self.coupling = STGraphConv(self.c1, cfg.hidden_channels or out, out, A, cfg.temporal_kernel,
                                    cfg.edge_importance)

    def _shift_logscale(self, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, raw = self.coupling(z1).chunk(2, dim=1)
        # Glow's scale = sigmoid(h + 2): bounded in (0, 1), ~0.88 at init, so the coupling cannot blow up.
        return shift, F.logsigmoid(raw + 2.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, C, T, V)
        z, logdet = self.actnorm(x)
        z, ld = self.mix(z)
        logdet = logdet + ld
        z1, z2 = z[:, :self.c1], z[:, self.c1:]  # (B, C/2, T, V) each
        shift, logscale = self._shift_logscale(z1)
        z2 = (z2 + shift) * torch.exp(logscale)
        logdet = logdet + logscale.sum(dim=(1, 2, 3))
        return torch.cat([z1, z2], dim=1), logdet  # (B, C, T, V), (B,)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        # z: (B, C, T, V)
        z1, z2 = z[:, :self.c1], z[:, self.c1:]
        shift, logscale = self._shift_logscale(z1)
        z2 = z2 * torch.exp(-logscale) - shift
        z = self.mix.inverse(torch.cat([z1, z2], dim=1))
        return self.actnorm.inverse(z)


class STGNF(nn.Module):
    """The flow with a standard-normal prior.

    ``nll`` is in bits per dimension, -(log N(z; 0, I) + log|det J|) / (C * T * V * ln 2), as STG-NF reports it, so
    scores are comparable across segment lengths.
    """

    def __init__(self, cfg: FlowConfig) -> None:
        super().__init__()
        self.cfg = cfg
        A = torch.from_numpy(adjacency(cfg.graph_strategy, cfg.max_hop))
        self.steps = nn.ModuleList(FlowStep(cfg, A.clone()) for _ in range(cfg.n_flows))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map poses to latents.

        Args:
            x: pose segments (B, C, T, V).

        Returns:
            z with x's shape and log|det dz/dx| per sample (B,).
        """
        logdet = x.new_zeros(x.shape[0])
        z = x  # (B, C, T, V)
        for step in self.steps:
            z, ld = step(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (B, C, T, V) back to poses."""
        x = z
        for step in reversed(self.steps):
            x = step.inverse(x)
        return x

    def nll(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent and negative log-likelihood in bits per dimension, per sample (B,); higher = more anomalous."""
        z, logdet = self(x)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=(1, 2, 3))  # N(0, I)
        dims = x.shape[1] * x.shape[2] * x.shape[3]
        return z, -(log_pz + logdet) / (dims * math.log(2.0))
