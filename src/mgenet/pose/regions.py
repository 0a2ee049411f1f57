"""Person regions: rotated square crops around a person, the affine maps in and out of them, box NMS.

A region is what a detector hands to a keypoint model: a square of side ``size`` pixels centred on ``(cx, cy)`` and
rotated by ``angle`` radians so that the person stands upright inside the crop (BlazePose's convention: the angle is
0 for an upright person, pi/2 for one lying with the head to the right).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Region:
    cx: float
    cy: float
    size: float
    angle: float = 0.0
    score: float = 1.0

    def crop_to_image(self, out_w: int, out_h: int | None = None) -> np.ndarray:
        """(2, 3) affine map from continuous crop coordinates (0..out_w, the convention of models' outputs) to image
        pixel coordinates (pixel centres at integers, OpenCV's convention)."""
        out_h = out_h or out_w
        c, s = np.cos(self.angle), np.sin(self.angle)
        # Isotropic: the crop's longer side spans the region's side; a 3:4 crop (top-down models) sees the middle
        # three quarters of the square's width.
        k = self.size / max(out_w, out_h)
        rot = np.array([[c, -s], [s, c]]) * k
        t = np.array([self.cx, self.cy]) - rot @ np.array([out_w / 2, out_h / 2])
        return np.concatenate([rot, t[:, None]], axis=1)

    def crop(self, image: np.ndarray, out_w: int, out_h: int | None = None,
             border: int = cv2.BORDER_CONSTANT) -> tuple[np.ndarray, np.ndarray]:
        """The region resampled to out_w × out_h, and the (2, 3) map from continuous crop coordinates to image pixels
        (to project a model's keypoints back)."""
        out_h = out_h or out_w
        m = self.crop_to_image(out_w, out_h)
        sample = m.copy()
        sample[:, 2] += m[:, :2] @ np.array([0.5, 0.5])  # crop pixel j is the continuous point j + 0.5
        patch = cv2.warpAffine(image, sample, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=border)
        return patch, m

    def corners(self) -> np.ndarray:
        """(4, 2) image coordinates of the region's corners (for drawing)."""
        m = self.crop_to_image(1)
        sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
        return sq @ m[:, :2].T + m[:, 2]

    def box(self) -> np.ndarray:
        """Axis-aligned (x1, y1, x2, y2) around the rotated square."""
        c = self.corners()
        return np.concatenate([c.min(0), c.max(0)])


def project(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine map to (..., 2) points."""
    return points @ m[:, :2].T + m[:, 2]


def region_from_points(center: np.ndarray, scale_point: np.ndarray, expand: float = 1.25,
                       target_angle: float = np.pi / 2, score: float = 1.0) -> Region:
    """BlazePose's alignment: centre on the hips, side = 2 × |hips → scale point| × expand, rotated upright.

    The scale point lies above the head for an upright person; the rotation makes the hips → scale point vector
    point straight up in the crop (mediapipe's AlignmentPointsRectsCalculator followed by RectTransformation).
    """
    d = scale_point - center
    angle = target_angle - np.arctan2(-d[1], d[0])
    angle = (angle + np.pi) % (2 * np.pi) - np.pi
    return Region(float(center[0]), float(center[1]), float(2 * np.hypot(*d) * expand), float(angle), float(score))


def region_from_box(box: np.ndarray, expand: float = 1.0, score: float = 1.0) -> Region:
    """An upright square region around an axis-aligned box (the long side, times ``expand``)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return Region((x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * expand, 0.0, score)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) boxes (x1, y1, x2, y2) → (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, extra: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Weighted non-maximum suppression (mediapipe's WEIGHTED algorithm).

    Each kept detection is the score-weighted mean of itself and every lower-scored box overlapping it by more than
    ``iou``; its score stays the highest one. ``extra`` (N, K) rows (e.g. keypoints) are averaged the same way.

    Returns:
        boxes (M, 4), scores (M,), extra (M, K) or None.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    extra = extra[order] if extra is not None else None
    alive = np.ones(len(boxes), bool)
    out_b, out_s, out_e = [], [], []
    ious = box_iou(boxes, boxes)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        group = alive & (ious[i] > iou)
        group[i] = True
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_s.append(scores[i])
        if extra is not None:
            out_e.append((extra[group] * w).sum(0) / w.sum())
        alive &= ~group
    if not out_b:
        return (np.zeros((0, 4)), np.zeros(0), None if extra is None else np.zeros((0, extra.shape[1])))
    return np.array(out_b), np.array(out_s), (np.array(out_e) if extra is not None else None)


def hard_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    ious = box_iou(boxes, boxes)
    for i in order:
        if all(ious[i, k] <= iou for k in keep):
            keep.append(int(i))
    return np.array(keep, int)
