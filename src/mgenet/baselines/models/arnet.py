"""AR-Net's snippet classifier (Wan et al., ICME 2020, "Weakly Supervised Video Anomaly Detection via Center-Guided
Discriminative Learning"; the public code's ``model_single``): one score in (0, 1) per snippet feature."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mgenet.config import FromDict


@dataclass(frozen=True)
class ARNetConfig(FromDict):
    """``in_dim`` is the snippet feature size D (192 for Video Swin stages 1-2)."""

    in_dim: int = 192
    dropout: float = 0.6

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ARNet(nn.Module):
    """FC(D -> D) + ReLU + dropout, FC(D -> 1), sigmoid, applied to every snippet on its own."""

    def __init__(self, cfg: ARNetConfig = ARNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.fc1 = nn.Linear(cfg.in_dim, cfg.in_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.fc2 = nn.Linear(cfg.in_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Snippet scores in (0, 1).

        Args:
            x: (..., T, D) snippet features (a batch of padded videos, or one video).
        Returns:
            (..., T) scores; higher = more anomalous.
        """
        h = self.drop(torch.relu(self.fc1(x)))  # (..., T, D)
        return torch.sigmoid(self.fc2(h)).squeeze(-1)  # (..., T)
