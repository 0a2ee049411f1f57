"""Skeleton conventions: COCO-17 (what pose estimators write) and the 18-joint OpenPose order the flow uses."""

from __future__ import annotations

import numpy as np

COCO17 = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist",
          "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")
# COCO-17's limbs, as pairs of joints (the drawings of pose extraction's preview and score-video's overlay)
COCO_EDGES = ((0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
              (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))
# STG-NF appends the neck (index 17) to COCO-17 and reorders into OpenPose-18:
# nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip, r-knee, r-ankle, l-hip, l-knee,
# l-ankle, r-eye, l-eye, r-ear, l-ear.
COCO18_TO_OPENPOSE = (0, 17, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
OPENPOSE18 = tuple((*COCO17, "neck")[i] for i in COCO18_TO_OPENPOSE)
# Mirror partner of each OpenPose-18 joint (for horizontal-flip augmentation).
OPENPOSE18_FLIP = tuple(OPENPOSE18.index(n.replace("l_", "#").replace("r_", "l_").replace("#", "r_"))
                        for n in OPENPOSE18)


def coco17_to_openpose18(kp: np.ndarray) -> np.ndarray:
    """Append the neck (mid-shoulders, score = the lower shoulder score) and reorder to OpenPose-18.

    Args:
        kp: (..., 17, C) keypoints, C = 2 (x, y) or 3 (x, y, score).
    Returns:
        (..., 18, C)
    """
    neck = (kp[..., 5:6, :] + kp[..., 6:7, :]) / 2
    if kp.shape[-1] > 2:
        neck[..., 2:] = np.minimum(kp[..., 5:6, 2:], kp[..., 6:7, 2:])
    return np.concatenate([kp, neck], axis=-2)[..., COCO18_TO_OPENPOSE, :]


def normalize_segments(xy: np.ndarray, width: int, height: int, eps: float = 1e-6) -> np.ndarray:
    """STG-NF pose normalisation, per segment.

    Divide by the frame size, subtract the segment's mean over time and joints, divide by the std of y.

    Args:
        xy: (N, T, V, 2) pixel coordinates.
    Returns:
        (N, T, V, 2) float32.
    """
    out = xy.astype(np.float64) / np.array([width, height], dtype=np.float64)
    out -= out.mean(axis=(1, 2), keepdims=True)
    std_y = out[..., 1].std(axis=(1, 2))[:, None, None, None]
    return (out / np.maximum(std_y, eps)).astype(np.float32)


def boxes_from_keypoints(kp: np.ndarray, min_score: float = 0.1) -> np.ndarray:
    """Tight box (x1, y1, x2, y2) around the confident joints of each pose (all joints if none is confident).

    Args:
        kp: (..., V, 3) keypoints with scores.
    Returns:
        (..., 4) float32.
    """
    conf = kp[..., 2:3] >= min_score  # (..., V, 1)
    conf = np.where(conf.any(axis=-2, keepdims=True), conf, True)
    xy = kp[..., :2]
    lo = np.where(conf, xy, np.inf).min(axis=-2)
    hi = np.where(conf, xy, -np.inf).max(axis=-2)
    return np.concatenate([lo, hi], axis=-1).astype(np.float32)
