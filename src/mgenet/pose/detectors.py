"""Person detectors that hand regions to a keypoint model.

- ``blazepose``: BlazePose's SSD detector (``pose_detection.tflite`` from the mediapipe wheel): 2254 anchors on a
  224×224 letterboxed input, a box and 4 alignment keypoints per anchor (hip centre, a point fixing the body's size and
  rotation, shoulder centre, a point for the upper body), weighted NMS. Made for people near the camera and facing
  it (it keys on the face); a person must be about 1/8 of the input or more, so ``tiles`` also runs it on
  overlapping tiles of the frame for people small in it.
- ``motion``: background subtraction (OpenCV's MOG2) for fixed cameras: upright foreground blobs are candidates,
  from any side and down to ``min_person_height``; the keypoint model's presence score rejects the non-people.
  (OpenCV's HOG people detector, the classic choice for surveillance pedestrians, is not in OpenCV 5's main modules,
  which is the opencv-python-headless this project pins.)
- ``both``: the union of the two, de-duplicated by NMS.

Each returns :class:`~mgenet.pose.regions.Region` objects in frame pixels, highest score first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mgenet import MgenetError
from mgenet.pose.regions import Region, hard_nms, region_from_box, region_from_points, weighted_nms
from mgenet.pose.runtimes import MEDIAPIPE_PIN, TFLiteModel, find_mediapipe_model

if TYPE_CHECKING:
    from mgenet.pose.backends import PoseConfig

Detector = Callable[[np.ndarray], list[Region]]
DETECTORS = ("blazepose", "motion", "both")


def ssd_anchors(size: int = 224, strides: tuple[int, ...] = (8, 16, 32, 32, 32)) -> np.ndarray:
    """Anchor centres (A, 2) of BlazePose's detector (mediapipe's SsdAnchorsCalculator with fixed anchor size).

    Consecutive layers of equal stride share a grid; every layer puts 2 anchors on each cell (aspect ratio 1 and the
    interpolated scale), so 224 gives 28²·2 + 14²·2 + 7²·6 = 2254 anchors.
    """
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n_cell = math.ceil(size / strides[i])
        per_cell = 2 * (j - i)
        ys, xs = np.meshgrid((np.arange(n_cell) + 0.5) / n_cell, (np.arange(n_cell) + 0.5) / n_cell, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (cells, 2), row-major like the calculator
        out.append(np.repeat(centres, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Resize keeping the aspect ratio into a size×size canvas, centred, zero borders.

    Returns:
        canvas, scale, pad_x, pad_y such that canvas pixel = image pixel × scale + pad.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), image.dtype)
    canvas[py:py + nh, px:px + nw] = resized
    return canvas, scale, float(px), float(py)


def tile_windows(width: int, height: int, cols: int, rows: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping windows (x1, y1, x2, y2) covering the frame, ``cols`` × ``rows`` of them."""
    if cols == rows == 1:
        return [(0, 0, width, height)]
    tw = min(width, math.ceil(width / cols * (1 + overlap)))
    th = min(height, math.ceil(height / rows * (1 + overlap)))
    xs = np.linspace(0, width - tw, cols).round().astype(int) if cols > 1 else [0]
    ys = np.linspace(0, height - th, rows).round().astype(int) if rows > 1 else [0]
    wins = [(0, 0, width, height)]  # the whole frame too, for the people that tiles would cut
    wins += [(int(x), int(y), int(x) + tw, int(y) + th) for y in ys for x in xs]
    return wins


class BlazePoseDetector:
    """BlazePose person detector (``pose_detection.tflite``) with optional tiling."""

    INPUT = 224

    def __init__(self, min_score: float = 0.5, nms_iou: float = 0.3, tiles: tuple[int, int] = (1, 1),
                 tile_overlap: float = 0.25, threads: int = 1, model_dirs: tuple[str | os.PathLike, ...] = ()):
        self.model = TFLiteModel(find_mediapipe_model("pose_detection", model_dirs), threads)
        if self.model.input_shape[1:3] != (self.INPUT, self.INPUT):
            raise MgenetError(f"{self.model.path}: expected a {self.INPUT}×{self.INPUT} detector input, got "
                              f"{self.model.input_shape}; use the model of {MEDIAPIPE_PIN}.")
        self.anchors = ssd_anchors(self.INPUT)
        self.min_score, self.nms_iou = min_score, nms_iou
        self.tiles, self.tile_overlap = tuple(tiles), tile_overlap

    def _detect_window(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        canvas, scale, px, py = letterbox(image_rgb, self.INPUT)
        x = canvas.astype(np.float32)[None] / 127.5 - 1.0  # (1, 224, 224, 3) in [-1, 1]
        raw, logits = self.model(x)
        raw, logits = raw[0], logits[0, :, 0]  # (A, 12), (A,)
        score = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = score >= self.min_score
        if not keep.any():
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 8))
        raw, score, anc = raw[keep], score[keep], self.anchors[keep]
        # Offsets are in input pixels relative to the anchor centre (x, y, w, h, then 4 keypoints (x, y)).
        xy = raw.reshape(-1, 6, 2) / self.INPUT
        xy[:, [0, 2, 3, 4, 5]] += anc[:, None, :]
        centre, wh, kps = xy[:, 0], xy[:, 1], xy[:, 2:]  # normalised to the letterboxed canvas
        boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1) * self.INPUT
        kps = kps * self.INPUT
        offset = np.array([px, py])
        boxes = (boxes.reshape(-1, 2, 2) - offset) / scale
        kps = (kps - offset) / scale
        return boxes.reshape(-1, 4), score, kps.reshape(-1, 8)

    def __call__(self, image_bgr: np.ndarray) -> list[Region]:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        all_b, all_s, all_k = [], [], []
        for x1, y1, x2, y2 in tile_windows(w, h, *self.tiles, self.tile_overlap):
            b, s, k = self._detect_window(rgb[y1:y2, x1:x2])
            all_b.append(b + [x1, y1, x1, y1])
            all_s.append(s)
            all_k.append(k + np.tile([x1, y1], 4))
        boxes, scores, kps = weighted_nms(np.concatenate(all_b), np.concatenate(all_s), self.nms_iou,
                                          np.concatenate(all_k))
        regions = []
        for s, k in zip(scores, kps):
            k = k.reshape(4, 2)
            regions.append(region_from_points(k[0], k[1], expand=1.25, score=float(s)))
        return regions



class MotionDetector:
    """Moving-person candidates for fixed cameras: MOG2 background subtraction, then upright foreground blobs.

    Finds people from any side and at any size above ``min_height`` (BlazePose's detector needs a visible face);
    the keypoint model's presence score then rejects blobs that are not people. A person who stands still for
    about ``history`` frames fades into the background. Stateful: one instance per video.
    """

    def __init__(self, min_height: int = 24, history: int = 500, var_threshold: float = 16.0,
                 region_scale: float = 1.25, warmup: int = 10):
        self.mog = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=var_threshold,
                                                      detectShadows=True)
        self.min_height, self.region_scale, self.warmup = min_height, region_scale, warmup
        self.history, self.var_threshold = history, var_threshold
        self.seen = 0

    def reset(self) -> None:
        self.mog = cv2.createBackgroundSubtractorMOG2(history=self.history, varThreshold=self.var_threshold,
                                                      detectShadows=True)
        self.seen = 0

    def boxes(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = self.mog.apply(image_bgr)
        self.seen += 1
        if self.seen <= self.warmup:  # the background model is not built yet: everything is "foreground"
            return np.zeros((0, 4)), np.zeros(0)
        fg = (mask > 200).astype(np.uint8)  # 127 = shadow
        k = max(3, int(round(self.min_height / 12)) | 1)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, 2 * k + 1)))
        n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        out, scores = [], []
        for x, y, w, h, area in stats[1:]:
            if h < self.min_height or w > 3 * h or area < 0.15 * w * h:
                continue
            out.append([x, y, x + w, y + h])
            scores.append(min(1.0, area / (w * h) + 0.3))
        if not out:
            return np.zeros((0, 4)), np.zeros(0)
        return np.asarray(out, np.float64), np.asarray(scores)

    def __call__(self, image_bgr: np.ndarray) -> list[Region]:
        boxes, scores = self.boxes(image_bgr)
        return [region_from_box(b, self.region_scale, float(s)) for b, s in zip(boxes, scores)]


class UnionDetector:
    """Regions of several detectors, de-duplicated: a region whose box overlaps a higher-scored one is dropped."""

    def __init__(self, detectors: list[Detector], nms_iou: float = 0.3):
        self.detectors, self.nms_iou = detectors, nms_iou

    def reset(self) -> None:
        for d in self.detectors:
            if hasattr(d, "reset"):
                d.reset()

    def __call__(self, image_bgr: np.ndarray) -> list[Region]:
        regions = [r for d in self.detectors for r in d(image_bgr)]
        if len(regions) < 2:
            return regions
        boxes = np.stack([r.box() for r in regions])
        keep = hard_nms(boxes, np.array([r.score for r in regions]), self.nms_iou)
        return [regions[i] for i in keep]


def make_detector(cfg: PoseConfig, threads: int = 1) -> Detector:
    """The person detector ``pose.detector`` names."""
    dirs = (cfg.model_dir,) if cfg.model_dir else ()
    if cfg.detector not in DETECTORS:
        raise MgenetError(f"pose.detector {cfg.detector!r} is unknown; use one of {list(DETECTORS)}.")
    found: list[Detector] = []
    if cfg.detector in ("blazepose", "both"):
        found.append(BlazePoseDetector(cfg.min_detection_score, cfg.nms_iou, cfg.tiles, threads=threads,
                                       model_dirs=dirs))
    if cfg.detector in ("motion", "both"):
        found.append(MotionDetector(min_height=cfg.min_person_height))
    return found[0] if len(found) == 1 else UnionDetector(found, cfg.nms_iou)
