"""``extract_snippets``: one feature vector per snippet of whole frames, for the video-level baselines.

A video is cut into consecutive, non-overlapping snippets of ``snippet_len`` frames (the last one padded by
repeating the video's last frame, so every frame lies in exactly one snippet). Each snippet's frames, resized to
``size``, go through the same Video Swin stages 1-2 backbone (and weights loader) as ``extract_features``; its tokens
are mean-pooled over (t, h, w) to one vector. This stands in for the I3D per-16-frame features that AR-Net and the
two-stream baseline were published with.

Streamed: frames are decoded ``batch_size`` snippets at a time and resized at once, so memory holds one batch of
small frames and the pooled vectors, flat in the video's length.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from mgenet import MgenetError, __version__
from mgenet.config import FromDict
from mgenet.features.decode import open_frames
from mgenet.features.extract import backbone_on_device, check_image_size
from mgenet.features.swin import BACKBONE_NAME, CHECKPOINT_NAME, SwinConfig, SwinStages12
from mgenet.io import provenance

from mgenet.io.snippets import snippet_starts, write_snippets
from mgenet.runtime import AMP_MODES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnippetConfig(FromDict):
    """Settings of ``extract_snippets``: config.yaml ``snippets`` plus ``features.weights``, ``snippet_len`` (a
    wildcard: each method asks for its own), ``seed`` and ``device``."""

    weights: str = f"resources/weights/{CHECKPOINT_NAME}"
    snippet_len: int = 16
    size: tuple[int, int] = (224, 224)  # [H, W]; I3D's input size, which the published baselines used
    batch_size: int = 8
    amp: str = "auto"
    seed: int = 0
    device: str = "auto"

    SECTION: ClassVar[str] = "snippets"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))  # JSON and YAML give lists
        self.validate()

    def validate(self) -> None:
        check_image_size("snippets.size", self.size)
        pt = SwinConfig().patch_size[0]
        if self.snippet_len <= 0 or self.snippet_len % pt:
            raise MgenetError(f"snippet_len {self.snippet_len}: use a positive multiple of {pt} frames (the "
                              f"backbone's temporal patch), e.g. 16.")
        if self.batch_size <= 0:
            raise MgenetError(f"snippets.batch_size {self.batch_size}: use a positive number of snippets.")
        if self.amp not in AMP_MODES:
            raise MgenetError(f"snippets.amp {self.amp!r}: use auto, bf16, fp16 or off.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def snippet_to_frames(scores: np.ndarray, start_frame: np.ndarray, snippet_len: int, frames: int) -> np.ndarray:
    """Per-frame scores (frames,): every frame takes the score of the snippet it lies in.

    Raises:
        ValueError: the snippets do not tile ``frames`` frames (wrong counts or starts).
    """
    scores, start_frame = np.asarray(scores), np.asarray(start_frame, np.int64)
    if scores.shape != start_frame.shape or not np.array_equal(start_frame, snippet_starts(frames, snippet_len)):
        raise ValueError(f"{len(scores)} snippet scores with starts {start_frame[:4].tolist()}... do not tile "
                         f"{frames} frames in snippets of {snippet_len}")
    return np.repeat(scores, snippet_len)[:frames]


@torch.inference_mode()
def pooled_backbone(model: SwinStages12, clips: np.ndarray, device: torch.device, amp: str = "auto") -> np.ndarray:
    """(B, C) float32: the backbone's tokens of uint8 RGB clips (B, L, H, W, 3), mean-pooled over (t, h, w) on the
    device (only the pooled vectors come back)."""
    y = backbone_on_device(model, clips, device, amp)
    return y.float().mean(dim=(1, 2, 3)).cpu().numpy()  # (B, t, h, w, C) -> (B, C)


def extract_video_snippets(source: str | Path, out: str | Path, cfg: SnippetConfig, model: SwinStages12,
                           device: torch.device, attrs: dict[str, Any], threads: int = 1,
                           expect_frames: int | None = None) -> dict[str, float]:
    """Write ``out``: the pooled backbone vector of every snippet of the video ``source``.

    Args:
        attrs: provenance to store (video, split, scene, config_hash, checkpoint_sha256, weights).
        expect_frames: the manifest's frame count; a video with another count is refused (its per-frame scores
            would not line up with the ground truth).
    Returns:
        counts and timings (snippets, frames, seconds, forward_s, decode_s).
    Raises:
        MgenetError: unreadable video, or not ``expect_frames`` frames. No file is left at ``out``.
    """
    t_start = time.perf_counter()
    source = Path(source)
    L, (h, w) = cfg.snippet_len, cfg.size
    reader = open_frames(source, threads)
    stats = {"snippets": 0, "frames": 0, "forward_s": 0.0, "decode_s": 0.0}
    try:
        n = int(reader.n_frames)
        if expect_frames is not None and n != int(expect_frames):
            raise MgenetError(f"{source}: the video has {n} frames but the manifest says {expect_frames}; rerun "
                              f"index_dataset (the video changed), or replace the truncated video.")
        starts = snippet_starts(n, L)
        feats = np.zeros((len(starts), model.cfg.out_dims), np.float32)
        for lo in range(0, len(starts), cfg.batch_size):
            s = starts[lo:lo + cfg.batch_size]
            idx = np.minimum(s[:, None] + np.arange(L), n - 1)  # (B, L): the last snippet repeats the last frame
            t0 = time.perf_counter()
            uniq, inverse = np.unique(idx, return_inverse=True)
            small = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in reader.get(uniq)])
            clips = small[inverse.reshape(idx.shape)]  # (B, L, h, w, 3) uint8
            t1 = time.perf_counter()
            feats[lo:lo + len(s)] = pooled_backbone(model, clips, device, cfg.amp)
            stats["decode_s"] += t1 - t0
            stats["forward_s"] += time.perf_counter() - t1
        all_attrs = provenance(attrs.get("config_hash", ""), backbone=BACKBONE_NAME, snippet_len=int(L),
                               size=[int(h), int(w)], frames=n, width=int(reader.width), height=int(reader.height),
                               normalisation="kinetics400 mean/std, RGB 0-255", pooling="mean over (t, h, w)",
                               **{k: v for k, v in attrs.items() if k != "config_hash"})
        all_attrs.setdefault("mgenet_version", __version__)
        write_snippets(out, feats, starts, all_attrs)
    finally:
        reader.close()
    stats.update(snippets=len(starts), frames=n, seconds=time.perf_counter() - t_start)
    return stats


def snippets_job(manifest: str, video: str, source: str, out: str, cfg: SnippetConfig, config_hash: str,
                 threads: int = 1) -> dict[str, Any]:
    """`mgenet snippets`: one pooled Video Swin vector per ``cfg.snippet_len`` frames of ``video`` (its file
    ``source``, "" for the manifest's), written to ``out``; returns the extraction's statistics."""
    from mgenet.features.job import backbone_job
    from mgenet.io import manifest_row

    row = manifest_row(manifest, video)
    source, model, device, attrs = backbone_job(row, manifest, source, cfg.weights, cfg.seed, cfg.device, config_hash,
                                                "snippet features")
    stats = extract_video_snippets(source, out, cfg, model, device, attrs, threads=threads,
                                   expect_frames=int(row["frames"]))
    log.info("%s: %d snippets of %d frames (%d frames) in %.1f s (forward %.1f s, decode %.1f s) -> %s", video,
             stats["snippets"], cfg.snippet_len, stats["frames"], stats["seconds"], stats["forward_s"],
             stats["decode_s"], out)
    return stats
