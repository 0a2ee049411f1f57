"""Memories of MGENet (arXiv 2312.04119 §3.3-3.4), read and written as in MNAD (Park et al., CVPR 2020).

A memory holds N unit-norm items. A query q is addressed by W = softmax_i cos(q, m_i) and reads sum_i W_i m_i. Items
are not trained by gradients; after a training step each item moves towards the queries whose nearest item it is:
m_i <- l2norm(m_i + sum_{p in U_i} v'_{p,i} q_p), with v_{p,i} the softmax over the step's queries of cos(q_p, m_i)
and v' = v / max_{p in U_i} v_{p,i} (MNAD's Eq. 5). The separateness loss (MNAD's feature separateness, a triplet
margin between a query's nearest and second-nearest items) pulls queries towards one item and away from the rest.

The behaviour-scene matching memory M^r stores, per item, a behaviour part of length L_b = P * N_b and a scene part
of length N_s. Its query is W^r = [flatten(W^b), W^s], the addressing weights of a clip's tokens in the behaviour
memory and of its scene in the scene memory, so each item learns which behaviours co-occur with which scenes. S_mm
compares how well the clip's behaviour and its scene match the K items its behaviour matches best (Eq. 15).

S_mm's form (:data:`MM_FORMS`, a scoring-time choice: it changes no weight). ``two_sided`` is Eq. 15 as written,
||c^b_topK - c^s_topK||: it also counts items whose scene weight exceeds their behaviour weight, which is what a clip
whose behaviour is merely unfamiliar (c^b spread thin over many items) in a familiar scene (c^s concentrated) shows,
so such a clip scores like a behaviour in the wrong scene. ``one_sided``, ||max(c^b_topK - c^s_topK, 0)||, counts
only the scene falling short of what the behaviour's items expect: the behaviour is one the memory knows, but not in
this scene.

M^r's start (``MGENetConfig.matching_init``, the paper does not say): random unit vectors, or :func:`kmeans_pp`
centres of training queries W^r. From a random start, items far from every query are never any query's nearest and
are never written; each memory counts the queries written into each of its items (``writes``, saved in checkpoints).

Addressing and writing run with autocast off (``autocast_off``), in float32 under AMP: a softmax over near-equal
cosines, and items that accumulate small updates, lose too much in 16 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mgenet.config import FromDict
from mgenet.runtime import autocast_off

MM_FORMS = ("two_sided", "one_sided")
MATCHING_INITS = ("random", "kmeans")
KMEANS_ITERS = 10  # Lloyd iterations after the k-means++ seeding; a few settle centres of well-separated clusters


@dataclass
class MemoryConfig(FromDict):
    """One MNAD memory.

    Attributes:
        n_items: N (behaviour: N_b = 128, scene: N_s = 32).
        dim: length of items and queries.
        margin: separateness margin epsilon (MNAD: 1.0; distances of unit vectors lie in [0, 2]).
        temperature: addressing is softmax_i(cos / temperature). The paper's 1.0 gives nearly uniform weights over
            many items (the best item outweighs the worst by at most e^2); lower values sharpen the read.
    """

    n_items: int = 128
    dim: int = 256
    margin: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.n_items < 2 or self.dim < 1 or self.temperature <= 0:
            raise ValueError(f"a memory needs >= 2 items (the separateness loss uses the second nearest), dim >= 1 "
                             f"and temperature > 0, got {self}")


@dataclass
class MatchingConfig(FromDict):
    """The behaviour-scene matching memory M^r.

    Attributes:
        n_items: N_r.
        behaviour_len: L_b = P * N_b, the flattened behaviour addressing weights.
        scene_len: N_s, the scene addressing weights.
        top_k: K items kept by c^b for S_mm.
        margin: separateness margin.
        temperature: of the softmaxes c^b and c^s, as in ``MemoryConfig``.
        balance: scale the two parts of the query W^r to unit length each before they are joined (False: the
            paper's plain concatenation). Joined as they are, flatten(W^b) (norm up to sqrt(P)) outweighs W^s
            (norm <= 1) in the cosine that picks the item a query writes to, so items gather by behaviour and each
            item's scene part blends the scenes that behaviour occurs in; balancing lets items specialise to
            behaviour-scene pairs. Reads are unchanged (c^b and c^s compare each part separately). The demo turns it
            on (scene-anomaly AUC of S_mm 0.81-0.97 over five initialisations of M^r, 0.77 without, one run);
            the default is the paper's concatenation.
    """

    n_items: int = 64
    behaviour_len: int = 1536 * 128
    scene_len: int = 32
    top_k: int = 4
    margin: float = 1.0
    temperature: float = 1.0
    balance: bool = False

    def __post_init__(self) -> None:
        if self.n_items < 2 or not 1 <= self.top_k <= self.n_items or self.temperature <= 0:
            raise ValueError(f"matching memory needs >= 2 items, 1 <= top_k <= n_items and temperature > 0, "
                             f"got {self}")


# -------------------------------------------------------------------------------------------------- functions


def address(queries: torch.Tensor, items: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """W = softmax over items of cos(q, m_i) / temperature: (..., C) x (N, C) -> (..., N); rows sum to 1."""
    with autocast_off(queries):
        cos = F.normalize(queries.float(), dim=-1) @ F.normalize(items.float(), dim=-1).T
        return (cos / temperature).softmax(-1)


def separateness_loss(queries: torch.Tensor, items: torch.Tensor, margin: float) -> torch.Tensor:
    """mean_p [ ||q_p - m_1st|| - ||q_p - m_2nd|| + margin ]_+ on unit-normalised queries and items.

    The mean (not the paper's sum) keeps beta's meaning independent of the batch size and token count. Items are
    treated as constants: only the queries receive gradients.

    Args:
        queries: (n, C).
        items: (N, C), N >= 2.

    Returns:
        A scalar; 0 when every query is nearer its nearest item than its second by at least ``margin``.
    """
    with autocast_off(queries):
        q = F.normalize(queries.float(), dim=-1)
        m = F.normalize(items.detach().float(), dim=-1)
        d2 = (2.0 - 2.0 * q @ m.T).clamp_min(1e-12)  # squared distance of unit vectors; the floor keeps sqrt finite
        nearest = d2.topk(2, dim=-1, largest=False).values.sqrt()  # (n, 2)
        return F.relu(nearest[:, 0] - nearest[:, 1] + margin).mean()


@torch.no_grad()
def mnad_update(items: torch.Tensor, queries: torch.Tensor,
                return_nearest: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """MNAD's memory write (Eq. 5 of Park et al.), all items at once.

    Args:
        items: (N, C) unit-norm items.
        queries: (n, C) queries of one step.
        return_nearest: also return each query's item.

    Returns:
        (N, C) updated unit-norm items; an item no query chose is unchanged. With ``return_nearest``, also the (n,)
        index of the item each query was written into.
    """
    with autocast_off(queries):
        q = F.normalize(queries.float(), dim=-1)
        sim = q @ items.T  # (n, N)
        nearest = sim.argmax(1)  # (n,)
        # (n,) softmax over the queries, read at each query's item: exp(sim - logsumexp over queries). Not
        # sim.softmax(0): a softmax along the first axis of an (n, N) tensor runs many times slower on a GPU (it
        # took 79% of a level-1 step with 1536 tokens per clip, where n = batch * P queries).
        v = (sim.gather(1, nearest[:, None]).squeeze(1) - sim.logsumexp(0)[nearest]).exp()
        vmax = torch.zeros(items.shape[0], device=items.device).scatter_reduce(0, nearest, v, "amax")
        delta = torch.zeros_like(items).index_add_(0, nearest, (v / vmax[nearest])[:, None] * q)
        out = F.normalize(items + delta, dim=-1)
        return (out, nearest) if return_nearest else out


@torch.no_grad()
def kmeans_pp(points: torch.Tensor, k: int, generator: torch.Generator, iters: int = KMEANS_ITERS) -> torch.Tensor:
    """Spherical k-means with k-means++ seeding: ``k`` unit-norm centres of ``points`` under cosine similarity, the
    measure by which MNAD's write picks a query's item.

    Seeding (Arthur & Vassilvitskii 2007): the first centre is a point drawn uniformly, each next one a point drawn
    with probability proportional to its squared distance (1 - cos) to the nearest centre so far. Then ``iters``
    Lloyd iterations: each point joins its most similar centre, each centre becomes the normalised sum of its points
    (a centre left without points stays). Deterministic for a given ``generator`` state (all on the CPU).

    Args:
        points: (n, C); n >= k.
        k: number of centres.
        generator: a CPU generator, seeded by the caller.
        iters: Lloyd iterations.

    Returns:
        (k, C) float32 unit-norm centres, on the CPU.
    """
    x = F.normalize(points.detach().float().cpu(), dim=-1)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means++ needs 1 <= k <= the number of points, got k={k} for {n} points")
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    dist = (1.0 - x @ x[chosen[0]]).clamp_min(0)  # (n,) to the nearest centre so far
    for _ in range(1, k):
        w = dist.pow(2)
        # all points sit on centres already (fewer distinct points than k): any point not yet chosen
        w = w if w.sum() > 0 else torch.ones(n).index_fill_(0, torch.tensor(chosen), 0.0)
        chosen.append(int(torch.multinomial(w, 1, generator=generator)))
        dist = torch.minimum(dist, (1.0 - x @ x[chosen[-1]]).clamp_min(0))
    centres = x[chosen].clone()
    for _ in range(iters):
        assign = (x @ centres.T).argmax(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        filled = torch.bincount(assign, minlength=k) > 0
        centres[filled] = F.normalize(sums[filled], dim=-1)
    return centres


# ----------------------------------------------------------------------------------------------------- modules


class Memory(nn.Module):
    """An MNAD memory of ``n_items`` unit vectors (a buffer: saved in checkpoints, never in an optimiser)."""

    def __init__(self, cfg: MemoryConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("items", F.normalize(torch.randn(cfg.n_items, cfg.dim), dim=-1))
        self.register_buffer("writes", torch.zeros(cfg.n_items, dtype=torch.int64))  # queries written per item

    def address(self, queries: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., N) addressing weights."""
        return address(queries, self.items, self.cfg.temperature)

    def read(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., C) -> read-out (..., C) = W @ M, and W (..., N)."""
        w = self.address(queries)
        return w @ self.items, w

    def separateness(self, queries: torch.Tensor) -> torch.Tensor:
        """Separateness loss of (n, C) queries."""
        return separateness_loss(queries, self.items, self.cfg.margin)

    @torch.no_grad()
    def update(self, queries: torch.Tensor) -> None:
        """Write (n, C) queries of one step into the memory (and count them in ``writes``)."""
        items, nearest = mnad_update(self.items, queries, return_nearest=True)
        self.items.copy_(items)
        self.writes += torch.bincount(nearest, minlength=self.cfg.n_items)

    def items_written(self) -> int:
        """How many items have been written at least once."""
        return int((self.writes > 0).sum())


class MatchingMemory(nn.Module):
    """Behaviour-scene matching memory M^r (N_r items of length L_b + N_s)."""

    def __init__(self, cfg: MatchingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("items", F.normalize(torch.randn(cfg.n_items, cfg.behaviour_len + cfg.scene_len), dim=-1))
        self.register_buffer("writes", torch.zeros(cfg.n_items, dtype=torch.int64))  # queries written per item

    def query(self, w_b: torch.Tensor, w_s: torch.Tensor) -> torch.Tensor:
        """W^r = [flatten(W^b), W^s] (each part at unit length when ``balance``): (B, P, N_b), (B, N_s) ->
        (B, P * N_b + N_s)."""
        b, s = w_b.flatten(1).float(), w_s.float()
        if self.cfg.balance:
            b, s = F.normalize(b, dim=1), F.normalize(s, dim=1)
        return torch.cat([b, s], dim=1)

    def read(self, w_b: torch.Tensor, w_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """c^b = softmax_i cos(flatten(W^b), m_{i,:L_b}) and c^s = softmax_i cos(W^s, m_{i,L_b:}), each (B, N_r)."""
        lb = self.cfg.behaviour_len
        c_b = address(w_b.flatten(1), self.items[:, :lb], self.cfg.temperature)
        c_s = address(w_s, self.items[:, lb:], self.cfg.temperature)
        return c_b, c_s

    def score(self, w_b: torch.Tensor, w_s: torch.Tensor, form: str = "two_sided") -> torch.Tensor:
        """S_mm over the K items with the largest c^b, (B,): ``two_sided`` ||c^b_topK - c^s_topK|| (Eq. 15) or
        ``one_sided`` ||max(c^b_topK - c^s_topK, 0)|| (module docstring)."""
        if form not in MM_FORMS:
            raise ValueError(f"S_mm form must be one of {MM_FORMS}, got {form!r}")
        c_b, c_s = self.read(w_b, w_s)
        top_b, idx = c_b.topk(self.cfg.top_k, dim=1)
        gap = top_b - c_s.gather(1, idx)
        return (gap.clamp_min(0) if form == "one_sided" else gap).norm(dim=1)

    def separateness(self, w_r: torch.Tensor) -> torch.Tensor:
        return separateness_loss(w_r, self.items, self.cfg.margin)

    @torch.no_grad()
    def update(self, w_r: torch.Tensor) -> None:
        """Write (B, L_b + N_s) queries W^r (the final, matching pass only), counting them in ``writes``."""
        items, nearest = mnad_update(self.items, w_r, return_nearest=True)
        self.items.copy_(items)
        self.writes += torch.bincount(nearest, minlength=self.cfg.n_items)

    def items_written(self) -> int:
        """How many items have been written at least once."""
        return int((self.writes > 0).sum())

    @torch.no_grad()
    def start_from(self, items: torch.Tensor) -> None:
        """Replace the items by ``items`` (N, L_b + N_s), unit-norm rows, and forget the writes: a new start."""
        self.items.copy_(items.to(self.items.device))
        self.writes.zero_()
