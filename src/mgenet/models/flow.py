"""STG-NF: a Glow-style normalizing flow over pose segments (Hirschorn & Avidan, ICCV 2023), MGENet's stage 1.

A segment x (C=2 coordinates, T frames, V=18 joints) goes through K flow steps, each ActNorm -> channel permutation ->
affine coupling, to a latent z of the same shape with prior N(R, I). The defaults are STG-NF's published model: the
coupling network is its ST-GCN block (graph conv over the skeleton -> BatchNorm -> ReLU -> temporal conv -> BatchNorm,
a residual conv + BatchNorm from the second step on, a final ReLU), the permutation is a channel reversal, the graph
the "uniform" one with max_hop 8 (every joint averages over the whole body), the temporal kernel T // 2 + 1 and the
prior's mean R = 3. z is MGENet's f_sk (C_mo = 2 * 18 = 36 per frame); the negative log-likelihood is S_nf.

``coupling: light`` and ``permutation: invconv`` keep this project's earlier flow (a zero-initialised graph conv and
temporal conv without BatchNorm, Glow's learned 1x1 conv) as options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mgenet.config import FromDict
from mgenet.models.graph import N_JOINTS, STRATEGIES, adjacency

PERMUTATIONS = ("reverse", "invconv")
COUPLINGS = ("stgcn", "light")


@dataclass
class FlowConfig(FromDict):
    """Architecture of the flow; stored in every checkpoint. Defaults are STG-NF's (``args.py``, ``model_pose.py``).

    Attributes:
        in_channels: coordinates per joint (x, y).
        n_joints: joints per frame; the OpenPose-18 graph fixes it at 18.
        seg_len: frames per segment (T).
        n_flows: flow steps (K).
        hidden_channels: STG-NF's ``hidden_dim``: 0 makes the coupling network one ST-GCN block straight to its
            output (STG-NF's setting); N > 0 two blocks through N channels (``light``: its width).
        temporal_kernel: odd temporal kernel of the coupling network; ``None`` means T // 2 + 1 (STG-NF: 13 at T=24).
        coupling: ``stgcn`` (STG-NF's ST-GCN block with BatchNorm, residual and final ReLU) or ``light`` (graph conv,
            ReLU, zero-initialised temporal conv: the coupling starts as the identity, and a sample's NLL never
            depends on the rest of its batch, since there is no BatchNorm).
        edge_importance: learn a multiplicative mask on the adjacency per block (ST-GCN's edge importance).
        permutation: channel mixing between couplings: ``reverse`` (STG-NF's fixed channel swap) or ``invconv``
            (Glow's learned 1x1 conv).
        graph_strategy: adjacency partition, ``uniform`` (STG-NF) or ``spatial`` (ST-GCN's 3 subsets).
        max_hop: neighbourhood radius of the graph conv, in bones (STG-NF: 8, the whole body).
        prior_mean: R, the mean of the prior N(R, I) of normal samples (STG-NF: 3; 0 gives N(0, I)).
    """

    in_channels: int = 2
    n_joints: int = N_JOINTS
    seg_len: int = 24
    n_flows: int = 8
    hidden_channels: int = 0
    temporal_kernel: int | None = None
    coupling: str = "stgcn"
    edge_importance: bool = False
    permutation: str = "reverse"
    graph_strategy: str = "uniform"
    max_hop: int = 8
    prior_mean: float = 3.0

    def __post_init__(self) -> None:
        if self.temporal_kernel is None:
            self.temporal_kernel = self.seg_len // 2 + 1
        if self.in_channels < 2 or self.in_channels % 2:
            raise ValueError(f"in_channels must be even and >= 2 (the coupling splits it), got {self.in_channels}")
        if self.n_joints != N_JOINTS:
            raise ValueError(f"n_joints must be {N_JOINTS} (the OpenPose-18 graph), got {self.n_joints}")
        if self.temporal_kernel % 2 != 1 or not 1 <= self.temporal_kernel <= 2 * self.seg_len - 1:
            raise ValueError(f"temporal_kernel must be odd and below 2 * seg_len (seg_len={self.seg_len}), got "
                             f"{self.temporal_kernel}; with temporal_kernel: null it is seg_len // 2 + 1, which "
                             f"must then be odd (seg_len 24 -> 13, 16 -> 9)")
        if self.n_flows < 1 or self.hidden_channels < 0:
            raise ValueError("n_flows must be >= 1 and hidden_channels >= 0")
        if self.coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {self.coupling!r}")
        if self.permutation not in PERMUTATIONS:
            raise ValueError(f"permutation must be one of {PERMUTATIONS}, got {self.permutation!r}")
        if self.graph_strategy not in STRATEGIES:
            raise ValueError(f"graph_strategy must be one of {STRATEGIES}, got {self.graph_strategy!r}")



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


def graph_conv(h: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Sum each adjacency subset's channels over the joint's neighbours: (B, K * H, T, V) -> (B, H, T, V).

    ``A`` is (K, V, V) with rows indexing the receiving joint (``mgenet.models.graph``)."""
    h = h.view(h.shape[0], A.shape[0], -1, h.shape[2], h.shape[3])  # (B, K, H, T, V)
    return torch.einsum("bkhtv,kwv->bhtw", h, A)


class STGCNBlock(nn.Module):
    """STG-NF's coupling block (an ST-GCN unit): graph conv -> BatchNorm -> ReLU -> temporal conv -> BatchNorm,
    plus a residual (1x1 conv + BatchNorm where the width changes, identity where it does not, none in the first flow
    step), then ReLU. Submodule indices follow STG-NF's so its checkpoints map key by key (``tcn.0/2/3``,
    ``residual.0/1``)."""

    def __init__(self, in_ch: int, out_ch: int, A: torch.Tensor, temporal_kernel: int, residual: bool,
                 edge_importance: bool) -> None:
        super().__init__()
        self.register_buffer("A", A)  # (K, V, V)
        self.edge_importance = nn.Parameter(torch.ones_like(A)) if edge_importance else None
        self.gcn = nn.Conv2d(in_ch, out_ch * A.shape[0], kernel_size=1)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, kernel_size=(temporal_kernel, 1), padding=(temporal_kernel // 2, 0)),
            nn.BatchNorm2d(out_ch),
        )
        self.residual: nn.Module | None
        if not residual:
            self.residual = None
        elif in_ch == out_ch:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, T, V)
        A = self.A if self.edge_importance is None else self.A * self.edge_importance
        h = self.tcn(graph_conv(self.gcn(x), A))  # (B, C_out, T, V)
        if self.residual is not None:
            h = h + self.residual(x)
        return F.relu(h)


class STGCNCoupling(nn.Module):
    """STG-NF's coupling network: one ST-GCN block to the output (``hidden_channels`` 0), or two through a hidden
    width. The final ReLU makes the shift >= 0 and the scale sigmoid(h + 2) lie in [0.88, 1)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, A: torch.Tensor, temporal_kernel: int, first: bool,
                 edge_importance: bool) -> None:
        super().__init__()
        widths = [in_ch, out_ch] if hidden == 0 else [in_ch, hidden, out_ch]
        self.blocks = nn.ModuleList(
            STGCNBlock(a, b, A.clone(), temporal_kernel, residual=not first, edge_importance=edge_importance)
            for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class LightCoupling(nn.Module):
    """Graph conv, ReLU, then a temporal conv that starts at zero, so the coupling starts as a constant affine map
    (Glow's zero init). No BatchNorm: a sample's NLL never depends on its batch."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, A: torch.Tensor, temporal_kernel: int,
                 edge_importance: bool) -> None:
        super().__init__()
        hidden = hidden or out_ch
        self.register_buffer("A", A)  # (K, V, V), rows = receiving joint
        self.edge_importance = nn.Parameter(torch.ones_like(A)) if edge_importance else None
        self.gcn = nn.Conv2d(in_ch, hidden * A.shape[0], kernel_size=1)
        self.tcn = nn.Conv2d(hidden, out_ch, kernel_size=(temporal_kernel, 1), padding=(temporal_kernel // 2, 0))
        nn.init.zeros_(self.tcn.weight)
        nn.init.zeros_(self.tcn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, T, V)
        A = self.A if self.edge_importance is None else self.A * self.edge_importance
        return self.tcn(F.relu(graph_conv(self.gcn(x), A)))  # (B, C_out, T, V)


class FlowStep(nn.Module):
    """ActNorm -> channel permutation -> affine coupling (Glow's step; STG-NF's with a graph coupling network)."""

    def __init__(self, cfg: FlowConfig, A: torch.Tensor, first: bool) -> None:
        super().__init__()
        c = cfg.in_channels
        self.c1 = c // 2  # conditioning half: passed through, drives the other half's shift and scale
        out = 2 * (c - self.c1)  # shift and scale for the transformed half
        self.actnorm = ActNorm(c)
        self.mix = InvConv1x1(c) if cfg.permutation == "invconv" else ReverseChannels()
        tk = int(cfg.temporal_kernel)  # resolved by FlowConfig
        if cfg.coupling == "stgcn":
            self.coupling: nn.Module = STGCNCoupling(self.c1, cfg.hidden_channels, out, A, tk, first,
                                                     cfg.edge_importance)
        else:
            self.coupling = LightCoupling(self.c1, cfg.hidden_channels, out, A, tk, cfg.edge_importance)

    def _shift_logscale(self, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.coupling(z1)
        shift, raw = h[:, 0::2], h[:, 1::2]  # STG-NF's "cross" split of the coupling's output
        # Glow's scale sigmoid(h + 2) (+1e-6 as STG-NF): in (0, 1), ~0.88 at init, so the coupling cannot blow up.
        return shift, torch.log(torch.sigmoid(raw + 2.0) + 1e-6)

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
    """The flow with the prior N(R, I) of normal samples.

    ``nll`` is in bits per dimension, -(log N(z; R, I) + log|det J|) / (C * T * V * ln 2), as STG-NF reports it, so
    scores are comparable across segment lengths. With the ``stgcn`` coupling the model has BatchNorm layers: call
    ``train()`` to fit (batch statistics) and ``eval()`` to score (running statistics), as STG-NF does.
    """

    def __init__(self, cfg: FlowConfig) -> None:
        super().__init__()
        self.cfg = cfg
        A = torch.from_numpy(adjacency(cfg.graph_strategy, cfg.max_hop))
        self.steps = nn.ModuleList(FlowStep(cfg, A.clone(), first=k == 0) for k in range(cfg.n_flows))

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

    def nll(self, x: torch.Tensor, sign: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent and negative log-likelihood in bits per dimension, per sample (B,); higher = more anomalous.

        Args:
            x: pose segments (B, C, T, V).
            sign: STG-NF's supervised training only: each sample's label (B,), 1 or -1, whose prior is
                N(sign * R, I); ``None`` is the normal prior N(R, I), the one every score uses.
        """
        z, logdet = self(x)
        mean = self.cfg.prior_mean if sign is None else sign.to(z.dtype).view(-1, 1, 1, 1) * self.cfg.prior_mean
        log_pz = -0.5 * ((z - mean).pow(2) + math.log(2 * math.pi)).sum(dim=(1, 2, 3))  # N(R, I)
        dims = x.shape[1] * x.shape[2] * x.shape[3]
        return z, -(log_pz + logdet) / (dims * math.log(2.0))
