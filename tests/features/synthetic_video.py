"""A small synthetic video with walking figures, its segments file and manifest, for the feature tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from helpers import standing_pose

from mgenet.io import MANIFEST_COLUMNS, provenance, write_segments
from mgenet.pose.segments import SegmentConfig, build_segments

W, H = 160, 120


def render_video(n_frames: int, seed: int = 0, people: int = 2) -> tuple[np.ndarray, dict]:
    """RGB frames (n, H, W, 3) of coloured figures walking over a textured background, and their COCO poses."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    background = np.stack([xx * 255 // W, yy * 255 // H, (xx + yy) % 64 * 4], -1).astype(np.uint8)
    frames = np.repeat(background[None], n_frames, axis=0).copy()
    poses: dict[int, dict[int, np.ndarray]] = {}
    for p in range(people):
        x0, y, vx, h = 20 + 60 * p, 70 + 20 * p, 0.8 * (-1) ** p, 40 + 10 * p
        colour = tuple(int(c) for c in rng.integers(40, 255, 3))
        poses[p + 1] = {}
        for f in range(n_frames):
            kp = standing_pose(20 + (x0 + vx * f - 20) % (W - 40), y, h)  # walks, wrapping round inside
            poses[p + 1][f] = kp
            x1, y1 = kp[:, :2].min(0).astype(int)
            x2, y2 = kp[:, :2].max(0).astype(int)
            cv2.rectangle(frames[f], (x1, y1), (x2, y2), colour, -1)
    return frames, poses


def write_video(frames: np.ndarray, path: Path) -> Path:
    """mp4 / avi file (mp4v / MJPG) or, for a path without suffix, a folder of PNG frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.suffix:
        path.mkdir()
        for i, f in enumerate(frames):
            cv2.imwrite(str(path / f"{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        return path
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    out = cv2.VideoWriter(str(path), fourcc, 25, (frames.shape[2], frames.shape[1]))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    return path


def write_case(root: Path, n_frames: int = 24, seg_len: int = 8, split: str = "test", suffix: str = ".mp4",
               seed: int = 0, people: int = 2) -> dict[str, Path]:
    """A video, its segments file and a one-row manifest under ``root``."""
    frames, poses = render_video(n_frames, seed, people)
    video = write_video(frames, root / f"vid{suffix}")
    cfg = SegmentConfig(seg_len=seg_len, train_stride=3, test_stride=1)
    arrays = build_segments(poses, W, H, split, cfg)
    seg = root / "segments.h5"
    write_segments(seg, arrays, provenance("test", video="vid", split=split, seg_len=seg_len,
                                           stride=cfg.stride(split)))
    manifest = root / "manifest.csv"
    pd.DataFrame([{"video": "vid", "split": split, "scene": "01", "frames": n_frames, "fps": 25.0, "height": H,
                   "width": W, "video_path": str(video), "pose_path": "", "gt_path": ""}])[MANIFEST_COLUMNS] \
        .to_csv(manifest, index=False)
    return {"video": video, "segments": seg, "manifest": manifest, "root": root}


