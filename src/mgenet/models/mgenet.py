"""MGENet's stage 2 (arXiv 2312.04119 §3.2-3.5): guidance-exploration encoders, memories, losses and scores.

Level 1: the RGB encoder (space-time ViT over the cached tokens) and its LSTA head H_B predict the skeleton flow's
latent f_sk from appearance: f_rgb. Level 2: with the RGB encoder frozen, the mask encoder sees only the visible tokens
of a block mask and its projection head predicts f_u, the RGB encoder's tokens read through the behaviour memory
(prototypical normal behaviour) and mapped by H_u. The behaviour-scene matching memory learns which behaviours occur in
which scenes. Anomaly scores (higher = more anomalous):

    S_mo  = ||f_sk - f_rgb||                                          (Eq. 13)
    S_app = 1/2 (1 - cos(f_u, f_m^1)) + 1/2 (1 - cos(f_u, f_m^2))     (Eq. 14, as a dissimilarity)
    S_mm  = ||c^b_topK - c^s_topK||                                   (Eq. 15)

with f_m^1, f_m^2 the mask encoder's outputs under two complementary masks and cos the per-frame cosine averaged over
the T frames. Features are per frame: f_rgb, f_sk (T, C_mo = 36), f_m, f_u (T, C_app).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mgenet.config import FromDict
from mgenet.models.lsta import LSTAConfig, LSTAHead
from mgenet.models.masking import MaskConfig
from mgenet.models.memory import MATCHING_INITS, MatchingConfig, MatchingMemory, Memory, MemoryConfig
from mgenet.models.vit import SpaceTimeViT, TemporalHead, ViTConfig

SHAPE_FIELDS = ("t", "h", "w", "in_dim", "seg_len", "c_mo", "scene_dim")

# Table 3's level-1 measurements, each as an anomaly score (higher = more anomalous); column -> what it measures.
LEVEL1_VARIANTS = {
    "mo_fsk": "f_sk: ||f_sk||, the skeleton latent's distance from the flow prior's mode",
    "mo_frgb": "f_rgb: ||f_rgb||, the same for the appearance prediction, read as a latent of the flow prior",
    "mo_sum": "f_sk+f_rgb: ||(f_sk + f_rgb) / 2||, the averaged latent's distance from the prior's mode",
    "mo_sim": "sim: 1 - cos(f_sk, f_rgb) over the whole (T, C_mo) segment",
    "mo": "f_sk-f_rgb: ||f_sk - f_rgb||, S_mo (Eq. 13), the paper's choice",
}


@dataclass
class MGENetConfig(FromDict):
    """Architecture and loss weights of stage 2; stored, resolved, in every checkpoint.

    Attributes:
        t, h, w: token grid of the cached features (T/2, H/8, W/8). 0 = take it from the data (the engine does).
        in_dim: channels C_b of the cached tokens; 0 = from the data.
        seg_len: frames T; 0 = from the data.
        c_mo: per-frame motion features C_mo (2 * joints); 0 = from the data.
        scene_dim: C_s of the scene feature; 0 = from the data.
        dim, depth, heads, mlp_ratio: both encoders' ViT (the paper's choice here: 256, 4, 4, 4).
        lsta: use LSTA blocks in H_B (False: spatial mean and MLP only, the ablation).
        lsta_blocks: L, the LSTA blocks when ``lsta``.
        lka_kernel, lka_dilation: k and d of the 3D LKA (VAN's 21 and 3).
        c_app: per-frame features C_app of f_m and f_u.
        mask_ratio: gamma, the masked fraction of the spatial token grid.
        mask_min_block: smallest block of the BEiT-style mask, in cells.
        train_guidance_head: train H_u with the mask encoder in level 2. False (default): f_u is a stop-gradient
            target and H_u stays at its seeded initialisation, a fixed random projection of f_b; training both sides
            of 1 - cos lets them collapse to a constant.
        n_behaviour, n_scene, n_matching: memory sizes N_b, N_s, N_r.
        top_k: K items of S_mm.
        sep_margin: separateness margin epsilon of all three memories.
        memory_temperature: addressing softmax temperature of all three memories (the paper: 1.0, see
            ``MemoryConfig``).
        matching_balance: join the behaviour and scene parts of W^r at equal length (see ``MatchingConfig``).
        matching_init: M^r's start before its matching passes (the paper does not say): ``random`` unit vectors, or
            ``kmeans``, k-means++ centres of the training clips' queries W^r (``mgenet.models.memory.kmeans_pp``;
            the engine computes them). From a random start some items are never any query's nearest, so never
            written; k-means puts every item where training queries are.
        centre_scene: address the scene memory with e_s minus the mean scene feature of the training videos (set by
            the engine before training; kept in the checkpoint). Pooled whole-frame features of scenes that share most
            of their pixels (the same pavement, floor or sky) point almost the same way, so uncentred they all address
            one item and W^s cannot tell the scenes apart; centring keeps what differs between them. Off by default
            (the paper addresses with e_s itself); the demo turns it on. With a single training scene the centred
            features hold only the videos' small differences: leave it off there.
        alpha, beta: loss weights of L_app and the separateness losses (Eq. 12).
    """

    t: int = 0
    h: int = 0
    w: int = 0
    in_dim: int = 0
    seg_len: int = 0
    c_mo: int = 0
    scene_dim: int = 0
    dim: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    lsta: bool = True
    lsta_blocks: int = 2
    lka_kernel: int = 21
    lka_dilation: int = 3
    c_app: int = 128
    mask_ratio: float = 0.5
    mask_min_block: int = 4
    train_guidance_head: bool = False
    n_behaviour: int = 128
    n_scene: int = 32
    n_matching: int = 64
    top_k: int = 4
    sep_margin: float = 1.0
    memory_temperature: float = 1.0
    matching_balance: bool = False
    matching_init: str = "random"
    centre_scene: bool = False
    alpha: float = 0.1
    beta: float = 0.001

    def __post_init__(self) -> None:
        if min(getattr(self, f) for f in SHAPE_FIELDS) < 0:
            raise ValueError(f"data shapes must be >= 0 (0 = from the data), got {self}")
        if self.matching_init not in MATCHING_INITS:
            raise ValueError(f"matching_init must be one of {MATCHING_INITS}, got {self.matching_init!r}")
        _ = self.mask  # validates the mask settings

    @property
    def resolved(self) -> bool:
        return all(getattr(self, f) > 0 for f in SHAPE_FIELDS)

    @property
    def n_tokens(self) -> int:
        return self.t * self.h * self.w

    @property
    def vit(self) -> ViTConfig:
        return ViTConfig(t=self.t, h=self.h, w=self.w, in_dim=self.in_dim, dim=self.dim, depth=self.depth,
                         heads=self.heads, mlp_ratio=self.mlp_ratio)

    @property
    def mask(self) -> MaskConfig:
        return MaskConfig(ratio=self.mask_ratio, min_block=self.mask_min_block)


class MGENet(nn.Module):
    """The stage-2 model. It never reads files: the engine feeds it tensors."""

    def __init__(self, cfg: MGENetConfig) -> None:
        super().__init__()
        if not cfg.resolved:
            raise ValueError(f"MGENetConfig data shapes {SHAPE_FIELDS} must be set (> 0) to build the model; "
                             f"the engine fills them from the features and flow files")
        self.cfg = cfg
        self.rgb_encoder = SpaceTimeViT(cfg.vit)
        self.motion_head = LSTAHead(LSTAConfig(dim=cfg.dim, t=cfg.t, h=cfg.h, w=cfg.w, seg_len=cfg.seg_len,
                                               out_dim=cfg.c_mo, blocks=cfg.lsta_blocks if cfg.lsta else 0,
                                               kernel=cfg.lka_kernel, dilation=cfg.lka_dilation))  # H_B
        self.mask_encoder = SpaceTimeViT(cfg.vit)
        self.mask_head = TemporalHead(cfg.dim, cfg.c_app, cfg.t, cfg.seg_len)
        self.guide_head = TemporalHead(cfg.dim, cfg.c_app, cfg.t, cfg.seg_len)  # H_u
        tau = cfg.memory_temperature
        self.behaviour_memory = Memory(MemoryConfig(cfg.n_behaviour, cfg.dim, cfg.sep_margin, tau))
        self.scene_memory = Memory(MemoryConfig(cfg.n_scene, cfg.scene_dim, cfg.sep_margin, tau))
        self.register_buffer("scene_centre", torch.zeros(cfg.scene_dim))  # see MGENetConfig.centre_scene
        self.matching_memory = MatchingMemory(MatchingConfig(cfg.n_matching, cfg.n_tokens * cfg.n_behaviour,
                                                             cfg.n_scene, cfg.top_k, cfg.sep_margin, tau,
                                                             cfg.matching_balance))

    # ----------------------------------------------------------------------------------------- parameter groups

    def level1_modules(self) -> list[nn.Module]:
        """What level 1 trains: the RGB encoder and H_B."""
        return [self.rgb_encoder, self.motion_head]

    def level2_modules(self) -> list[nn.Module]:
        """What level 2 trains: the mask encoder, its projection head, and H_u if ``train_guidance_head``."""
        return [self.mask_encoder, self.mask_head] + ([self.guide_head] if self.cfg.train_guidance_head else [])

    # ----------------------------------------------------------------------------------------------- branches

    @staticmethod
    def motion_target(f_sk: torch.Tensor) -> torch.Tensor:
        """Flow latent (B, 2, T, V) -> per-frame (B, T, 2V): frame f's x's then y's."""
        return f_sk.permute(0, 2, 1, 3).flatten(2)

    def scene_query(self, scene: torch.Tensor) -> torch.Tensor:
        """e_s (B, C_s) as the scene memory sees it: minus ``scene_centre`` (zeros unless ``centre_scene``)."""
        return scene - self.scene_centre

    def scene_address(self, scene: torch.Tensor) -> torch.Tensor:
        """W^s (B, N_s): the scene memory's addressing weights of e_s (B, C_s)."""
        return self.scene_memory.address(self.scene_query(scene))

    def encode_rgb(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, t, h, w, C_b) -> e_b (B, P, dim)."""
        return self.rgb_encoder(tokens)

    def predict_motion(self, e_b: torch.Tensor) -> torch.Tensor:
        """e_b (B, P, dim) -> f_rgb (B, T, C_mo) through H_B."""
        return self.motion_head(e_b)

    def guidance(self, e_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """e_b (B, P, dim) -> behaviour addressing W^b (B, P, N_b) and the guidance f_u (B, T, C_app)."""
        f_b, w_b = self.behaviour_memory.read(e_b)  # (B, P, dim), (B, P, N_b)
        f_u = self.guide_head(f_b.view(e_b.shape[0], self.cfg.t, self.cfg.h * self.cfg.w, -1))
        return w_b, f_u

    def encode_masked(self, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Visible tokens only -> f_m (B, T, C_app).

        Args:
            tokens: (B, t, h, w, C_b).
            keep: (B, t * S_vis) visible token indices from ``masking.keep_indices`` (step-major).
        """
        e_m = self.mask_encoder(tokens, keep)  # (B, t * S_vis, dim)
        return self.mask_head(e_m.view(e_m.shape[0], self.cfg.t, -1, e_m.shape[-1]))

    # ------------------------------------------------------------------------------------------------- losses

    def level1_losses(self, tokens: torch.Tensor, f_sk: torch.Tensor,
                      scene: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 12 restricted to level 1's trainable terms: L_mo + beta (L_sep^b + L_sep^s).

        L_sep^s has no trainable input (the scene feature comes from the frozen backbone); it is kept so the logged
        loss is Eq. 12's. Returns ``loss``, its terms, and ``e_b`` (for the memory write after the step).
        """
        e_b = self.encode_rgb(tokens)  # (B, P, dim)
        f_rgb = self.predict_motion(e_b).float()  # (B, T, C_mo)
        l_mo = (self.motion_target(f_sk) - f_rgb).pow(2).sum((1, 2)).mean()  # ||f_sk - f_rgb||^2 per segment
        l_sep_b = self.behaviour_memory.separateness(e_b.flatten(0, 1))
        l_sep_s = self.scene_memory.separateness(self.scene_query(scene))
        loss = l_mo + self.cfg.beta * (l_sep_b + l_sep_s)
        return {"loss": loss, "l_mo": l_mo, "l_sep_b": l_sep_b, "l_sep_s": l_sep_s, "e_b": e_b}

    def appearance_loss(self, f_m: torch.Tensor, f_u: torch.Tensor) -> torch.Tensor:
        """L_app = 1 - cos(f_m, f_u), per frame, averaged over frames and batch."""
        return (1.0 - F.cosine_similarity(f_m.float(), f_u.float(), dim=-1)).mean()

    def level2_losses(self, tokens: torch.Tensor, keep: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 12 restricted to level 2's trainable term: alpha L_app, with the RGB encoder and memory frozen."""
        with torch.no_grad():
            e_b = self.encode_rgb(tokens)
        with torch.set_grad_enabled(self.cfg.train_guidance_head and torch.is_grad_enabled()):
            _, f_u = self.guidance(e_b)  # a stop-gradient target unless H_u trains
        l_app = self.appearance_loss(self.encode_masked(tokens, keep), f_u)
        return {"loss": self.cfg.alpha * l_app, "l_app": l_app}

    @torch.no_grad()
    def matching_query(self, tokens: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
        """W^r (B, P * N_b + N_s) of clips (B, t, h, w, C_b) with scene features (B, C_s)."""
        w_b, _ = self.guidance(self.encode_rgb(tokens))
        return self.matching_memory.query(w_b, self.scene_address(scene))

    @torch.no_grad()
    def matching_step(self, tokens: torch.Tensor, scene: torch.Tensor, write: bool = True) -> torch.Tensor:
        """One batch of the matching pass: W^r of each clip, L_sep^r (logged), then the write into M^r."""
        w_r = self.matching_query(tokens, scene)
        l_sep_r = self.matching_memory.separateness(w_r)
        if write:
            self.matching_memory.update(w_r)
        return l_sep_r

    def items_written(self) -> dict[str, int]:
        """How many items of each memory have been written at least once: behaviour, scene, matching."""
        return {"behaviour": self.behaviour_memory.items_written(), "scene": self.scene_memory.items_written(),
                "matching": self.matching_memory.items_written()}

    # ------------------------------------------------------------------------------------------------- scores

    @torch.no_grad()
    def matching_score(self, tokens: torch.Tensor, scene: torch.Tensor, mm_form: str = "two_sided") -> torch.Tensor:
        """S_mm alone (Eq. 15, or its ``mm_form``), (B,): the RGB encoder and the three memories, without the mask
        encoder's passes."""
        w_b, _ = self.guidance(self.encode_rgb(tokens))
        return self.matching_memory.score(w_b, self.scene_address(scene), mm_form)

    @torch.no_grad()
    def scores(self, tokens: torch.Tensor, f_sk: torch.Tensor, scene: torch.Tensor, keep1: torch.Tensor,
               keep2: torch.Tensor, mm_form: str = "two_sided") -> dict[str, torch.Tensor]:
        """Per-segment anomaly scores, each (B,), higher = more anomalous.

        Args:
            tokens: (B, t, h, w, C_b).
            f_sk: (B, 2, T, V) flow latents.
            scene: (B, C_s) scene features.
            keep1, keep2: visible-token indices of two complementary masks.
            mm_form: S_mm's form, ``two_sided`` (Eq. 15) or ``one_sided`` (``mgenet.models.memory``).

        Returns:
            ``mo``, ``app``, ``mm`` (Eq. 13-15) and the level-1 measurements of ``LEVEL1_VARIANTS``.
        """
        e_b = self.encode_rgb(tokens)
        f_rgb = self.predict_motion(e_b).float().flatten(1)  # (B, T * C_mo)
        f_sk = self.motion_target(f_sk).flatten(1)
        w_b, f_u = self.guidance(e_b)
        dissim = [1.0 - F.cosine_similarity(self.encode_masked(tokens, k).float(), f_u.float(), dim=-1).mean(1)
                  for k in (keep1, keep2)]
        return {
            "mo": (f_sk - f_rgb).norm(dim=1),
            "app": 0.5 * dissim[0] + 0.5 * dissim[1],
            "mm": self.matching_memory.score(w_b, self.scene_address(scene), mm_form),
            "mo_fsk": f_sk.norm(dim=1),
            "mo_frgb": f_rgb.norm(dim=1),
            "mo_sum": (0.5 * (f_sk + f_rgb)).norm(dim=1),
            "mo_sim": 1.0 - F.cosine_similarity(f_sk, f_rgb, dim=1),
        }
