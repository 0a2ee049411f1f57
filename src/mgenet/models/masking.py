"""BEiT-style block masks over the token grid, the complementary pair S_app uses, and the visible-token indices.

A mask is spatial (h, w), True = masked, and is the same for every token step of a clip (MGENet masks a person's
region for the whole clip). It is built as BEiT does (Bao et al., ICLR 2022, §2.5): rectangles of random area and
aspect ratio are added until the masked count reaches the target; a rectangle is kept only if it adds at least one
and at most the remaining number of cells. BEiT stops when the rectangles no longer fit, a little short of the target;
here the shortfall is then filled by growing the existing blocks one neighbouring cell at a time, so every mask hides
exactly round(ratio * h * w) cells (every clip in a batch then keeps the same number of tokens) and stays blocky.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mgenet.config import FromDict


@dataclass
class MaskConfig(FromDict):
    """Block masking.

    Attributes:
        ratio: fraction gamma of the spatial cells masked (the paper: 0.5).
        min_block: smallest rectangle area, in cells (capped by the cells still to mask). BEiT uses 16 of 14x14;
            4 suits the 16x8 token grid of a 128x64 crop and the 4x2 demo grid alike.
        max_aspect: rectangles have aspect ratio in [1 / max_aspect, max_aspect] (BEiT: 1 / 0.3).
        attempts: tries to place one rectangle before BEiT's loop gives up.
    """

    ratio: float = 0.5
    min_block: int = 4
    max_aspect: float = 1 / 0.3
    attempts: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"mask ratio must lie in (0, 1), got {self.ratio}")
        if self.min_block < 1 or self.max_aspect < 1.0 or self.attempts < 1:
            raise ValueError(f"mask needs min_block >= 1, max_aspect >= 1, attempts >= 1, got {self}")

    def n_masked(self, h: int, w: int) -> int:
        return int(round(self.ratio * h * w))


def block_mask(h: int, w: int, cfg: MaskConfig, rng: np.random.Generator) -> np.ndarray:
    """One (h, w) bool mask, True = masked, with exactly ``cfg.n_masked(h, w)`` masked cells."""
    target = cfg.n_masked(h, w)
    mask = np.zeros((h, w), dtype=bool)
    count = 0
    log_aspect = math.log(cfg.max_aspect)
    while count < target:  # BEiT's loop
        remaining = target - count
        added = 0
        for _ in range(cfg.attempts):
            area = rng.uniform(min(cfg.min_block, remaining), remaining)
            aspect = math.exp(rng.uniform(-log_aspect, log_aspect))
            bh, bw = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if not (1 <= bh <= h and 1 <= bw <= w):
                continue
            top, left = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
            new = int((~mask[top:top + bh, left:left + bw]).sum())
            if 0 < new <= remaining:
                mask[top:top + bh, left:left + bw] = True
                added = new
                break
        if not added:
            break
        count += added
    while count < target:  # grow the blocks to the exact count
        grown = np.zeros_like(mask)
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        frontier = np.flatnonzero(grown & ~mask)
        if not len(frontier):  # nothing masked yet: start anywhere
            frontier = np.flatnonzero(~mask)
        mask.flat[rng.choice(frontier)] = True
        count += 1
    return mask


def complementary_masks(h: int, w: int, cfg: MaskConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A block mask and its complement: together they mask every cell exactly once (S_app's two views)."""
    m = block_mask(h, w, cfg, rng)
    return m, ~m


def keep_indices(masks: np.ndarray, t: int) -> torch.Tensor:
    """Indices of the visible tokens of each clip, in (step, row, column) order.

    Args:
        masks: (B, h, w) bool, True = masked; every mask must hide the same number of cells.
        t: token steps; each clip's spatial mask applies to all of them.

    Returns:
        (B, t * S_vis) int64 indices into the flattened (t, h, w) token positions; step by step, each step's
        S_vis visible cells in raster order (so ``.view(B, t, S_vis)`` groups them by step).
    """
    b, h, w = masks.shape
    visible = ~masks.reshape(b, h * w)
    n_vis = visible.sum(1)
    if b and (n_vis != n_vis[0]).any():
        raise ValueError(f"masks hide different numbers of cells ({sorted(set(n_vis.tolist()))}); "
                         f"a batch needs equal counts")
    cells = np.nonzero(visible)[1].reshape(b, -1)  # (B, S_vis), row-major so each row is in raster order
    steps = np.arange(t)[None, :, None] * (h * w)  # (1, t, 1)
    return torch.from_numpy((steps + cells[:, None, :]).reshape(b, -1)).long()


def random_masks(n: int, h: int, w: int, cfg: MaskConfig, rng: np.random.Generator) -> np.ndarray:
    """(n, h, w) independent block masks from one generator (training: one per clip)."""
    return np.stack([block_mask(h, w, cfg, rng) for _ in range(n)]) if n else np.zeros((0, h, w), bool)


def clip_mask_pairs(seed: int, videos: Sequence[str], rows: Sequence[int], h: int, w: int,
                    cfg: MaskConfig) -> tuple[np.ndarray, np.ndarray]:
    """Complementary pairs (n, h, w) x 2 for scoring, one per clip, seeded by (seed, video, row in its video): a
    clip's score does not depend on the batch it is scored in or on the other videos."""
    pairs = [complementary_masks(h, w, cfg, np.random.default_rng([seed, zlib.crc32(v.encode()), int(r)]))
             for v, r in zip(videos, rows)]
    if not pairs:
        return np.zeros((0, h, w), bool), np.zeros((0, h, w), bool)
    first, second = zip(*pairs)
    return np.stack(first), np.stack(second)
