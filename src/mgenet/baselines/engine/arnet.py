"""AR-Net's training and scoring (the public code's ``KMXMILL_individual`` and ``normal_smooth`` losses).

Training sees whole videos as bags of snippet features with a video label only (1 = the video holds an anomaly):

- MIL term: per video the top k = ceil(T / 4) snippet scores, each labelled with the video's label, binary
  cross-entropy averaged over them (an anomalous video's highest snippets are pushed up, every snippet of a normal
  video down);
- center term: 20 x the variance of the snippet scores of each normal video (normal snippets gather around one
  value), averaged over the normal videos of the batch.

Batches hold as many normal as anomalous videos. An epoch is one pass over the larger of the two groups, the
smaller one drawn again as needed. The model of the last epoch is kept: no checkpoint is picked on test videos (the
public code keeps its best test epoch). Every snippet of a training video is used (the public code samples videos
longer than 300 snippets down to 300).

Videos of one batch are padded to the longest and masked (``batched``); ``per_video`` runs them one at a time, the
same loss, for ``bench/arnet.py``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from mgenet import MgenetError
from mgenet.config import FromDict
from mgenet.baselines.models.arnet import ARNet, ARNetConfig
from mgenet.io import load_torch, save_torch
from mgenet.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)

CENTER_WEIGHT = 20.0  # the public code's lambda of normal_smooth
TOPK_DIVISOR = 4  # k = ceil(T / 4)


@dataclass(frozen=True)
class ARNetTrainConfig(FromDict):
    """Training settings (config.yaml ``arnet``; schema defaults are the public code's)."""

    epochs: int = 100
    batch_size: int = 30  # videos per batch, half normal and half anomalous (the public code's sample_size)
    lr: float = 1e-4
    weight_decay: float = 5e-4
    dropout: float = 0.6
    standardize: bool = True
    seed: int = 0
    device: str = "auto"

    SECTION: ClassVar[str] = "arnet"
    IGNORED: ClassVar[tuple[str, ...]] = ("snippet_len",)  # which snippets files the rules give it, not training

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.batch_size % 2:
            raise MgenetError(f"arnet: epochs {self.epochs} must be >= 1 and batch_size {self.batch_size} an even "
                              f"number >= 2 (half normal, half anomalous videos).")


# ------------------------------------------------------------------------------------------------------- losses


def topk_count(lengths: torch.Tensor) -> torch.Tensor:
    """k = ceil(T / 4) per video."""
    return torch.div(lengths + TOPK_DIVISOR - 1, TOPK_DIVISOR, rounding_mode="floor").clamp(min=1)


def mil_topk_loss(scores: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KMXMILL_individual: BCE of each of a video's top-k snippet scores against the video's label, averaged over
    the batch's top-k snippets.

    Args:
        scores: (B, T_max) snippet scores in (0, 1), padded past each video's length.
        lengths: (B,) snippets of each video.
        labels: (B,) 0 / 1.
    """
    T = scores.shape[1]
    valid = torch.arange(T, device=scores.device)[None] < lengths[:, None]  # (B, T)
    ranked = torch.sort(scores.masked_fill(~valid, -1.0), dim=1, descending=True).values  # padding sorts last
    keep = torch.arange(T, device=scores.device)[None] < topk_count(lengths)[:, None]  # (B, T) top-k ranks
    target = labels[:, None].to(scores.dtype).expand_as(ranked)
    bce = torch.nn.functional.binary_cross_entropy(ranked.clamp(1e-7, 1 - 1e-7), target, reduction="none")
    return (bce * keep).sum() / keep.sum()


def center_loss(scores: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """normal_smooth: 20 x the variance (unbiased, as torch.var by default) of each normal video's snippet scores,
    averaged over the normal videos (0 without one; a one-snippet video's variance counts as 0)."""
    T = scores.shape[1]
    valid = (torch.arange(T, device=scores.device)[None] < lengths[:, None]).to(scores.dtype)
    n = lengths.to(scores.dtype)
    mean = (scores * valid).sum(1) / n
    var = (((scores - mean[:, None]) ** 2) * valid).sum(1) / (n - 1).clamp(min=1)  # (B,)
    normal = labels == 0
    if not normal.any():
        return scores.sum() * 0.0
    return CENTER_WEIGHT * var[normal].mean()


def arnet_loss(scores: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return mil_topk_loss(scores, lengths, labels) + center_loss(scores, lengths, labels)


# --------------------------------------------------------------------------------------------------------- data


@dataclass
class Bags:
    """Training videos as bags of snippet features."""

    features: list[np.ndarray]  # per video (T_i, D) float32
    labels: np.ndarray  # (V,) 0 / 1
    names: list[str]

    def padded(self, idx: Sequence[int], device: torch.device,
               mean: np.ndarray, std: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T_max, D) standardised features, zero-padded, their (B,) lengths and labels, on ``device``."""
        feats = [self.features[i] for i in idx]
        lengths = np.array([len(f) for f in feats])
        x = np.zeros((len(feats), lengths.max(), feats[0].shape[1]), np.float32)
        for j, f in enumerate(feats):
            x[j, :len(f)] = (f - mean) / std
        return (torch.from_numpy(x).to(device), torch.from_numpy(lengths).to(device),
                torch.from_numpy(self.labels[list(idx)]).to(device))


def feature_stats(features: Sequence[np.ndarray], standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the training snippets (0 and 1 when not standardising). The pooled features of a
    random or pre-trained backbone have channels of very different scales; the statistics are the training
    videos' own and are stored with the model."""
    d = features[0].shape[1]
    if not standardize:
        return np.zeros(d, np.float32), np.ones(d, np.float32)
    allf = np.concatenate(features)
    return allf.mean(0).astype(np.float32), (allf.std(0) + 1e-6).astype(np.float32)


def balanced_batches(labels: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of batches of ``batch_size / 2`` normal and as many anomalous videos: a pass over the larger group in
    a random order, the smaller one shuffled and drawn again as often as needed."""
    half = batch_size // 2
    groups = [np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)]
    n_batches = math.ceil(max(len(g) for g in groups) / half)
    draws = []
    for g in groups:
        need = n_batches * half
        order = np.concatenate([rng.permutation(g) for _ in range(math.ceil(need / len(g)))])[:need]
        draws.append(order.reshape(n_batches, half))
    return [np.concatenate([a, b]) for a, b in zip(*draws)]


# ------------------------------------------------------------------------------------------------------ training


def train_arnet(bags: Bags, cfg: ARNetTrainConfig, mode: str = "batched") -> tuple[ARNet, dict[str, Any]]:
    """Train AR-Net on ``bags`` for ``cfg.epochs`` epochs; returns the model (eval mode) and its training record
    (feature mean / std, per-epoch loss, seconds).

    Args:
        mode: ``batched`` (a batch's videos padded and masked: one forward) or ``per_video`` (one forward per video,
            the same loss; for the benchmark).
    Raises:
        MgenetError: no normal or no anomalous video, features of different sizes.
    """
    if set(np.unique(bags.labels)) != {0, 1}:
        raise MgenetError(f"AR-Net needs normal and anomalous training videos; the weak split's training part has "
                          f"{int((bags.labels == 0).sum())} normal and {int((bags.labels == 1).sum())} anomalous.")
    dims = {f.shape[1] for f in bags.features}
    if len(dims) != 1:
        raise MgenetError(f"snippet features of different sizes {sorted(dims)}; re-extract them with one setting.")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    mean, std = feature_stats(bags.features, cfg.standardize)
    model = ARNet(ARNetConfig(in_dim=dims.pop(), dropout=cfg.dropout)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    history = []
    t0 = time.perf_counter()
    model.train()
    for epoch in range(cfg.epochs):
        losses = []
        for idx in balanced_batches(bags.labels, cfg.batch_size, rng):
            x, lengths, labels = bags.padded(idx, device, mean, std)
            opt.zero_grad(set_to_none=True)
            if mode == "batched":
                loss = arnet_loss(model(x), lengths, labels)
            elif mode == "per_video":
                loss = _per_video_loss(model, x, lengths, labels)
            else:
                raise ValueError(f"mode {mode!r}")
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        history.append({"epoch": epoch, "loss": float(np.mean(losses))})
        if epoch % max(cfg.epochs // 10, 1) == 0 or epoch == cfg.epochs - 1:
            log.info("epoch %d/%d: loss %.4f", epoch + 1, cfg.epochs, history[-1]["loss"])
    model.eval()
    return model, {"mean": mean, "std": std, "history": history, "seconds": time.perf_counter() - t0}


def _per_video_loss(model: ARNet, x: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The batched loss computed one video at a time (each video's own length, no padding)."""
    keep = topk_count(lengths)
    mil, n_top, center, n_normal = x.new_zeros(()), 0, x.new_zeros(()), 0
    for i in range(len(x)):
        s = model(x[i, :int(lengths[i])])  # (T_i,)
        top = torch.topk(s, int(keep[i])).values
        target = torch.full_like(top, float(labels[i]))
        mil = mil + torch.nn.functional.binary_cross_entropy(top.clamp(1e-7, 1 - 1e-7), target, reduction="sum")
        n_top += len(top)
        if int(labels[i]) == 0:
            center = center + (s.var() if len(s) > 1 else s.sum() * 0.0)
            n_normal += 1
    return mil / n_top + (CENTER_WEIGHT * center / n_normal if n_normal else 0.0)


@torch.no_grad()
def score_videos(model: ARNet, features: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray,
                 device: torch.device, mode: str = "batched", batch_size: int = 64) -> list[np.ndarray]:
    """Snippet scores (T_i,) of every video; ``batched`` pads ``batch_size`` videos into one forward."""
    model.eval()
    out: list[np.ndarray] = []
    if mode == "per_video":
        for f in features:
            x = torch.from_numpy(((f - mean) / std).astype(np.float32)).to(device)
            out.append(model(x).cpu().numpy())
        return out
    for lo in range(0, len(features), batch_size):
        part = features[lo:lo + batch_size]
        lengths = [len(f) for f in part]
        x = np.zeros((len(part), max(lengths), part[0].shape[1]), np.float32)
        for j, f in enumerate(part):
            x[j, :len(f)] = (f - mean) / std
        s = model(torch.from_numpy(x).to(device)).cpu().numpy()  # (B, T_max): a snippet's score ignores the padding
        out += [s[j, :n] for j, n in enumerate(lengths)]
    return out


# --------------------------------------------------------------------------------------------------- checkpoints


def save_arnet(path: str, model: ARNet, record: dict[str, Any], cfg: ARNetTrainConfig,
               extra: Mapping[str, Any]) -> None:
    """``{"model_config", "train_config", "state_dict", "mean", "std", "history", **extra}``, atomically."""
    ckpt = {"model_config": model.cfg.to_dict(), "train_config": asdict(cfg),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "mean": torch.from_numpy(record["mean"]), "std": torch.from_numpy(record["std"]),
            "history": record["history"], **extra}
    save_torch(ckpt, path)


def load_arnet(path: str, device: torch.device) -> tuple[ARNet, np.ndarray, np.ndarray, dict[str, Any]]:
    """The model (eval mode on ``device``), the feature mean and std it was trained with, and the checkpoint."""
    ckpt = load_torch(path, "AR-Net checkpoint", keys=("model_config", "state_dict", "mean", "std"),
                      otherwise="rule train_arnet (`mgenet train-arnet`) makes it.")
    model = ARNet(ARNetConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt["mean"].numpy(), ckpt["std"].numpy(), ckpt
