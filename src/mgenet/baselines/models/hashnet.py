"""HashNet: the Knowledge Retrieval stream's hashing network (Cao et al., arXiv 2209.02899, §3.2).

A snippet feature is layer-normalised (no affine), then each of ``n_tables`` heads maps it to a ``code_bits``-long
code: a bias-free linear map, a LayerNorm without affine, a sigmoid. Rounding a code gives the binary key of its hash
table; the real-valued code is what a bucket averages and what a query's distance is measured on. Sizes, the
bias-free heads, the non-affine norms and the xavier-uniform init are those of the authors' public ``hashnet.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mgenet.config import FromDict


@dataclass
class HashNetConfig(FromDict):
    """Attributes:
        in_dim: snippet feature width (192: Video Swin-T stage 2, mean-pooled).
        n_tables: hash heads, one per table (the paper's b = 8).
        code_bits: bits per code (the paper's r = 32).
    """

    in_dim: int = 192
    n_tables: int = 8
    code_bits: int = 32


class HashNet(nn.Module):
    def __init__(self, cfg: HashNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.norm = nn.LayerNorm(cfg.in_dim, elementwise_affine=False)
        # all heads as one bias-free linear map, split per head: identical to n_tables separate Linear layers
        self.proj = nn.Linear(cfg.in_dim, cfg.n_tables * cfg.code_bits, bias=False)
        with torch.no_grad():
            for w in self.proj.weight.view(cfg.n_tables, cfg.code_bits, cfg.in_dim):
                nn.init.xavier_uniform_(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued codes in (0, 1).

        Args:
            x: (B, D) snippet features.
        Returns:
            (B, n_tables, code_bits) codes.
        """
        z = self.proj(self.norm(x)).view(len(x), self.cfg.n_tables, self.cfg.code_bits)  # (B, b, r)
        return torch.sigmoid(F.layer_norm(z, (self.cfg.code_bits,)))


def binarise(codes: torch.Tensor) -> torch.Tensor:
    """The tables' keys: each code rounded to {0, 1} (uint8, same shape)."""
    return (codes > 0.5).to(torch.uint8)


def similarity_loss(codes0: torch.Tensor, codes1: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of the concatenated codes of two temporally nearby normal snippets (B, b, r) each."""
    return 1 - F.cosine_similarity(codes0.flatten(1), codes1.flatten(1), dim=-1).mean()


def decorrelation_loss(codes: torch.Tensor) -> torch.Tensor:
    """Mean over head pairs of the heads' cosine similarity divided by r, so the b tables index differently.

    Args:
        codes: (B, b, r) codes of one batch.
    """
    b, r = codes.shape[1:]
    unit = F.normalize(codes, dim=-1)
    sim = unit @ unit.transpose(1, 2) / r  # (B, b, b)
    rows, cols = torch.tril_indices(b, b, offset=-1, device=codes.device)
    return sim[:, rows, cols].mean()
