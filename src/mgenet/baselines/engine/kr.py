"""Knowledge Retrieval (KR) stream: HashNet training and the iL2SH hash tables (Cao et al., arXiv 2209.02899).

Training (the authors' ``4-train_stream_KR.py``): pairs of snippets of one normal training video, the second drawn
within ``pair_range`` snippets of the first, pass through HashNet; the loss is 1 - cos of their codes plus
``lam_decor`` times the heads' decorrelation term. One epoch draws ``iterations`` pairs per training video (videos in
turn, as the public dataset's ``idx % n_videos``), SGD with momentum.

iL2SH (``il2sh.py``): one table per head, keyed by the binarised code; a bucket keeps the mean real-valued code of
the training snippets that fall in it. A query's distance in a table is the distance of its real code to its
bucket's mean, or sqrt(r) (the largest distance two codes in [0, 1]^r can have) when no training snippet fell in
that bucket. A snippet's score is the minimum over the tables (``5-test_stream_KR.py``: ``amin`` over tables; its
mean over three spatial crops does not apply to our one whole-frame feature).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from mgenet import MgenetError
from mgenet.baselines.models.hashnet import HashNet, HashNetConfig, binarise, decorrelation_loss, similarity_loss
from mgenet.config import FromDict
from mgenet.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)


@dataclass
class KRTrainConfig(FromDict):
    """Defaults: the authors' ShanghaiTech script (``4-train_stream_KR_ST.sh``) and their argument defaults.

    Attributes:
        epochs: passes (60).
        iterations: pairs drawn per training video in one pass (32).
        batch_size: pairs per step (256).
        lr: SGD learning rate (0.003125).
        momentum: SGD momentum (0.9).
        weight_decay: SGD weight decay (1e-4).
        lam_decor: weight of the decorrelation term (0.64).
        pair_range: the second snippet of a pair lies within this many snippets of the first (150).
        batch_snippets: snippets hashed per forward pass when building the tables and scoring (memory only).
    """

    epochs: int = 60
    iterations: int = 32
    batch_size: int = 256
    lr: float = 0.003125
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lam_decor: float = 0.64
    pair_range: int = 150
    batch_snippets: int = 4096


def sample_pairs(lengths: Sequence[int], n_per_video: int, pair_range: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (into the videos' snippets concatenated in order) of ``n_per_video`` pairs per video.

    The second snippet is drawn uniformly from [i - pair_range, i + pair_range] clipped to the video (it may be the
    first itself: the public sampler allows that too). Videos with no snippet are skipped.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    vids = np.repeat(np.flatnonzero(lengths > 0), n_per_video)
    n = lengths[vids]
    i0 = rng.integers(0, n)
    lo = np.maximum(i0 - pair_range, 0)
    hi = np.minimum(i0 + pair_range, n - 1)
    i1 = lo + rng.integers(0, hi - lo + 1)
    return starts[vids] + i0, starts[vids] + i1


def train_hashnet(train_features: Sequence[np.ndarray], model_cfg: HashNetConfig, cfg: KRTrainConfig, seed: int,
                  device: str = "auto") -> tuple[HashNet, list[dict[str, float]]]:
    """HashNet trained on the snippet features (n_i, D) of the normal training videos.

    Returns:
        The model (eval mode, on the CPU) and one loss record per epoch.
    """
    feats = [np.asarray(f, dtype=np.float32) for f in train_features]
    lengths = [len(f) for f in feats]
    if not feats or sum(lengths) < 2:
        raise MgenetError(f"KR training needs at least two training snippets; got {sum(lengths)} in "
                          f"{len(feats)} videos. Add training videos or shorten snippets.len.")
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    dev = resolve_device(device)
    x = torch.from_numpy(np.concatenate(feats)).to(dev)  # (N, D): a few MB even on a real dataset
    model = HashNet(model_cfg).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    history = []
    for epoch in range(cfg.epochs):
        i0, i1 = sample_pairs(lengths, cfg.iterations, cfg.pair_range, rng)
        order = rng.permutation(len(i0))
        sums = np.zeros(3)
        steps = 0
        for s in range(0, len(order), cfg.batch_size):
            rows = order[s:s + cfg.batch_size]
            c0 = model(x[torch.from_numpy(i0[rows]).to(dev)])  # (B, b, r)
            c1 = model(x[torch.from_numpy(i1[rows]).to(dev)])
            l_sim = similarity_loss(c0, c1)
            l_dec = 0.5 * (decorrelation_loss(c0) + decorrelation_loss(c1))
            loss = l_sim + cfg.lam_decor * l_dec
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += [loss.item(), l_sim.item(), l_dec.item()]
            steps += 1
        rec = dict(zip(("loss", "similarity", "decorrelation"), (sums / max(steps, 1)).tolist()))
        history.append({"epoch": epoch, **rec})
        log.info("KR epoch %d: loss %.4f (1-cos %.4f, decorrelation %.4f)", epoch, rec["loss"], rec["similarity"],
                 rec["decorrelation"])
    return model.cpu().eval(), history


@torch.inference_mode()
def hash_codes(model: HashNet, features: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Real-valued codes (N, b, r) float32 of snippet features (N, D), in batches."""
    out = [model(torch.as_tensor(features[s:s + batch], dtype=torch.float32)).numpy()
           for s in range(0, len(features), batch)]
    return np.concatenate(out) if out else np.zeros((0, model.cfg.n_tables, model.cfg.code_bits), np.float32)


def code_keys(codes: np.ndarray) -> np.ndarray:
    """Integer bucket keys (N, b) int64 of codes (N, b, r): the binarised bits read as one number (r <= 63)."""
    bits = binarise(torch.as_tensor(codes)).numpy().astype(np.int64)  # (N, b, r) in {0, 1}
    weights = np.left_shift(np.int64(1), np.arange(codes.shape[-1], dtype=np.int64))
    return bits @ weights


@dataclass
class HashTables:
    """The iL2SH tables: per table, the sorted bucket keys (K_t,) int64 and their mean codes (K_t, r) float32."""

    keys: list[np.ndarray]
    means: list[np.ndarray]
    counts: list[np.ndarray]
    code_bits: int

    @classmethod
    def build(cls, codes: np.ndarray) -> HashTables:
        """Index training codes (N, b, r): one bucket per distinct binary key in each table, holding the mean code."""
        n, b, r = codes.shape
        if r > 63:
            raise MgenetError(f"kr.model.code_bits {r} > 63: bucket keys are stored as 64-bit integers; use <= 63.")
        keys = code_keys(codes)
        out_k, out_m, out_c = [], [], []
        for t in range(b):
            uniq, inv, cnt = np.unique(keys[:, t], return_inverse=True, return_counts=True)
            sums = np.zeros((len(uniq), r), np.float64)
            np.add.at(sums, inv, codes[:, t])
            out_k.append(uniq)
            out_m.append((sums / cnt[:, None]).astype(np.float32))
            out_c.append(cnt.astype(np.int64))
        return cls(out_k, out_m, out_c, r)

    @property
    def unseen_distance(self) -> float:
        return math.sqrt(self.code_bits)

    def distances(self, codes: np.ndarray) -> np.ndarray:
        """Distance (M, b) of each query code (M, b, r) to its bucket's mean code in every table; sqrt(r) where the
        bucket holds no training snippet."""
        keys = code_keys(codes)
        out = np.full(keys.shape, self.unseen_distance, np.float32)
        for t, (k, m) in enumerate(zip(self.keys, self.means)):
            idx = np.clip(np.searchsorted(k, keys[:, t]), 0, len(k) - 1)
            hit = k[idx] == keys[:, t]
            out[hit, t] = np.linalg.norm(codes[hit, t] - m[idx[hit]], axis=-1)
        return out

    def to_state(self) -> dict[str, list[torch.Tensor]]:
        return {"keys": [torch.from_numpy(k) for k in self.keys], "means": [torch.from_numpy(m) for m in self.means],
                "counts": [torch.from_numpy(c) for c in self.counts]}

    @classmethod
    def from_state(cls, state: dict[str, list[torch.Tensor]], code_bits: int) -> HashTables:
        return cls([k.numpy() for k in state["keys"]], [m.numpy() for m in state["means"]],
                   [c.numpy() for c in state["counts"]], code_bits)


def snippet_scores(model: HashNet, tables: HashTables, features: np.ndarray, batch: int = 4096) -> np.ndarray:
    """KR anomaly score (N,) of snippet features (N, D): the minimum over tables of the bucket distance."""
    return tables.distances(hash_codes(model, features, batch)).min(axis=1)


def kr_checkpoint(model: HashNet, tables: HashTables, train_cfg: KRTrainConfig, history: list[dict[str, float]],
                  extra: dict) -> dict:
    """What ``train-kr`` saves: weights, tables, resolved configs, training history, provenance."""
    return {"state_dict": model.state_dict(), "tables": tables.to_state(), "model_config": asdict(model.cfg),
            "train_config": asdict(train_cfg), "history": history, **extra}


def load_kr(ckpt: dict) -> tuple[HashNet, HashTables]:
    """Model (eval) and tables of a checkpoint dict made by :func:`kr_checkpoint`."""
    model = HashNet(HashNetConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), HashTables.from_state(ckpt["tables"], model.cfg.code_bits)
