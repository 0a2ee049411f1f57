"""Context Recovery (CR) stream: training the frame predictor on normal videos and scoring test frames.

A sample is a target frame ``i`` and its context, the ``context`` frames ``i - k * frame_step`` for k = context..1
(the authors' snippet of 9 frames at interval 2: ``1-train_stream_CR_ST.sh``). Loss: MSE + ``lam_l1`` * L1 (their
``1-train_stream_CR.py``), Adam, learning rate divided by 10 at ``lr_drop_epoch``. One epoch draws ``iterations``
targets per training video; videos are decoded ``buffer_videos`` at a time and only the frames the draws need, so
memory stays flat in the number and length of videos. Score of a test frame: the maximum local error
(:func:`~mgenet.baselines.models.crnet.local_error`); the first ``context * frame_step`` frames of a video have no
context and take the video's lowest score (the most normal: they are never flagged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mgenet import MgenetError
from mgenet.baselines.models.crnet import CRNet, CRNetConfig, local_error
from mgenet.config import FromDict
from mgenet.features.crops import normalise_clips
from mgenet.features.decode import open_frames
from mgenet.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)


@dataclass
class CRTrainConfig(FromDict):
    """Defaults: the authors' ShanghaiTech training script and argument defaults.

    Attributes:
        size: [H, W] frames are resized to (256 x 256 in the paper).
        frame_step: interval between context frames (2).
        epochs: passes (60).
        iterations: targets drawn per training video in one pass (32).
        batch_size: samples per step (32).
        lr: Adam learning rate (0.01), divided by 10 at ``lr_drop_epoch`` (40).
        lam_l1: weight of the L1 term of the loss and of the score (1.0).
        buffer_videos: training videos decoded together; a batch mixes their samples (memory only).
    """

    size: list[int] = field(default_factory=lambda: [256, 256])
    frame_step: int = 2
    epochs: int = 60
    iterations: int = 32
    batch_size: int = 32
    lr: float = 0.01
    lr_drop_epoch: int = 40
    lam_l1: float = 1.0
    buffer_videos: int = 8


@dataclass
class CRScoreConfig(FromDict):
    """Attributes:
        patch_size: side of the local-error window (the paper picks it per dataset with pseudo-anomalies; pick it on
            a validation split).
        patch_stride: window stride (8, the authors' default).
        stride: predict every ``stride``-th frame (and the last); the frames between take the linear interpolation
            of their neighbours' scores (1, every frame, as the paper; larger only to fit a CPU budget).
        batch_size: frames predicted per forward pass (memory only).
    """

    patch_size: int = 32
    patch_stride: int = 8
    stride: int = 1
    batch_size: int = 16


def span(model_cfg: CRNetConfig, cfg: CRTrainConfig) -> int:
    """Frames before the first target that has a full context."""
    return model_cfg.context * cfg.frame_step


def resize(frames: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """uint8 RGB frames (n, H, W, 3) resized to ``size`` = [h, w] (area interpolation when shrinking)."""
    h, w = int(size[0]), int(size[1])
    if frames.shape[1:3] == (h, w):
        return frames
    inter = cv2.INTER_AREA if frames.shape[1] >= h else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (w, h), interpolation=inter) for f in frames])


def sample_arrays(frames: np.ndarray, index: np.ndarray, targets: np.ndarray, context: int,
                  step: int) -> tuple[np.ndarray, np.ndarray]:
    """Context clips (n, context, h, w, 3) and targets (n, h, w, 3) of decoded frames ``frames`` whose video indices
    are ``index`` (sorted), for target frame indices ``targets``."""
    offsets = np.arange(-context, 0) * step  # (context,): -context*step .. -step
    pos = np.searchsorted(index, targets[:, None] + offsets)  # (n, context)
    return frames[pos], frames[np.searchsorted(index, targets)]


def to_tensors(clips: np.ndarray, targets: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = normalise_clips(torch.as_tensor(clips).to(device))  # (B, 3, context, h, w)
    y = torch.as_tensor(targets).to(device).permute(0, 3, 1, 2).float() / 255  # (B, 3, h, w)
    return x, y


def _training_samples(videos: Sequence[str | Path], model_cfg: CRNetConfig, cfg: CRTrainConfig,
                      rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled (clips, targets) batches of one epoch, ``buffer_videos`` videos decoded at a time."""
    s = span(model_cfg, cfg)
    order = rng.permutation(len(videos))
    for lo in range(0, len(order), cfg.buffer_videos):
        clips, targets = [], []
        for v in order[lo:lo + cfg.buffer_videos]:
            reader = open_frames(videos[v])
            try:
                if reader.n_frames <= s:
                    continue
                tgt = rng.integers(s, reader.n_frames, cfg.iterations)
                need = np.unique(tgt[:, None] + np.arange(-model_cfg.context, 1) * cfg.frame_step)
                frames = resize(reader.get(need), cfg.size)
            finally:
                reader.close()
            c, t = sample_arrays(frames, need, tgt, model_cfg.context, cfg.frame_step)
            clips.append(c)
            targets.append(t)
        if not clips:
            continue
        clips_a, targets_a = np.concatenate(clips), np.concatenate(targets)
        perm = rng.permutation(len(clips_a))
        for b in range(0, len(perm), cfg.batch_size):
            rows = perm[b:b + cfg.batch_size]
            yield clips_a[rows], targets_a[rows]


def train_cr(videos: Sequence[str | Path], encoder: torch.nn.Module, model_cfg: CRNetConfig, cfg: CRTrainConfig,
             seed: int, device: str = "auto") -> tuple[CRNet, list[dict[str, float]]]:
    """The decoder trained to predict each normal training video's frames from their context.

    Returns:
        The model (eval mode, on the CPU) and one loss record per epoch.
    """
    s = span(model_cfg, cfg)
    if not videos:
        raise MgenetError("CR training got no training video; the manifest's train split is empty.")
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    dev = resolve_device(device)
    model = CRNet(encoder, model_cfg).to(dev).train()
    opt = torch.optim.Adam(model.decoder.parameters(), lr=cfg.lr)
    history = []
    for epoch in range(cfg.epochs):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (0.1 if epoch >= cfg.lr_drop_epoch else 1.0)
        sums, steps = np.zeros(3), 0
        for clips, targets in _training_samples(videos, model_cfg, cfg, rng):
            x, y = to_tensors(clips, targets, dev)
            pred = model(x)
            mse, l1 = F.mse_loss(pred, y), F.l1_loss(pred, y)
            loss = mse + cfg.lam_l1 * l1
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += [loss.item(), mse.item(), l1.item()]
            steps += 1
        if steps == 0:
            raise MgenetError(f"CR training: no training video has more than {s} frames (context "
                              f"{model_cfg.context} x frame_step {cfg.frame_step}); lower cr.train.frame_step.")
        rec = dict(zip(("loss", "mse", "l1"), (sums / steps).tolist()))
        history.append({"epoch": epoch, **rec})
        log.info("CR epoch %d: loss %.5f (mse %.5f, l1 %.5f)", epoch, rec["loss"], rec["mse"], rec["l1"])
    return model.cpu().eval(), history


@torch.inference_mode()
def score_cr_video(model: CRNet, video: str | Path, cfg: CRTrainConfig, score_cfg: CRScoreConfig,
                device: str = "auto", per_frame: bool = False) -> np.ndarray:
    """Raw CR scores (n_frames,) of one video (higher = more anomalous), decoded ``batch_size`` targets at a time.

    ``per_frame`` predicts one target per forward pass (the loop ``bench/crkr.py`` compares against).
    """
    dev = resolve_device(device)
    model = model.to(dev).eval()
    ctx = model.cfg.context
    s = span(model.cfg, cfg)
    reader = open_frames(video)
    try:
        n = reader.n_frames
        out = np.zeros(n, np.float32)
        if n <= s:
            log.warning("%s: %d frames, none with a full context of %d x %d; all score 0", video, n, ctx,
                        cfg.frame_step)
            return out
        batch = 1 if per_frame else score_cfg.batch_size
        scored = np.unique(np.append(np.arange(s, n, score_cfg.stride), n - 1))
        for lo in range(0, len(scored), batch):
            tgt = scored[lo:lo + batch]
            need = np.unique(tgt[:, None] + np.arange(-ctx, 1) * cfg.frame_step)
            frames = resize(reader.get(need), cfg.size)
            clips, targets = sample_arrays(frames, need, tgt, ctx, cfg.frame_step)
            x, y = to_tensors(clips, targets, dev)
            out[tgt] = local_error(model(x), y, score_cfg.patch_size, score_cfg.patch_stride,
                                   cfg.lam_l1).float().cpu().numpy()
    finally:
        reader.close()
    out[s:] = np.interp(np.arange(s, n), scored, out[scored])
    out[:s] = out[s:].min()
    return out


def cr_checkpoint(model: CRNet, cfg: CRTrainConfig, history: list[dict[str, float]], extra: dict) -> dict:
    """What ``train-cr`` saves: the decoder's weights (the encoder is F_B, rebuilt from its weights setting and
    checked by its provenance), resolved configs, training history."""
    return {"state_dict": model.decoder.state_dict(), "model_config": asdict(model.cfg), "train_config": asdict(cfg),
            "history": history, **extra}


def load_cr(ckpt: dict, encoder: torch.nn.Module) -> tuple[CRNet, CRTrainConfig]:
    model = CRNet(encoder, CRNetConfig.from_dict(ckpt["model_config"]))
    model.decoder.load_state_dict(ckpt["state_dict"])
    return model.eval(), CRTrainConfig.from_dict(ckpt["train_config"])
