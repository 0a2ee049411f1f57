"""The default backend: BlazePose (the models inside the mediapipe==0.10.14 wheel) run for several people per frame.

MediaPipe's own pose solution follows one person. Here the person detector's regions (and the previous frame's
people, see ``pose.propagate``) each get their own pass of the landmark model ``pose_landmark_full.tflite``:
a 256×256 crop of the rotated region in, 39 landmarks out (33 body points + 2 alignment points + 4 unused), each
x, y (crop pixels), z, visibility and presence logits, plus a "pose present" score. With ``pose.refine`` the
alignment points define a tighter region and the landmark model runs a second time there, as MediaPipe does from
one frame to the next. The 33 BlazePose points map to COCO-17; a joint's score is its visibility × presence
probability; duplicates (two regions on one person) are merged by keypoint similarity.
"""

from __future__ import annotations

import cv2
import numpy as np

from mgenet.pose.backends import FramePoses, PoseBackend, PoseConfig
from mgenet.pose.detectors import make_detector
from mgenet.pose.regions import Region, project, region_from_points
from mgenet.pose.runtimes import TFLiteModel, find_mediapipe_model

# BlazePose-33 index of each COCO-17 joint (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
N_LANDMARKS = 39
AUX_HIPS, AUX_SCALE = 33, 34  # alignment points: hip centre and the point that fixes the body's size and rotation
LANDMARK_INPUT = 256
DUPLICATE_OKS = 0.6
HINT_MIN_SCORE = 0.7  # on the demo's renders: precision 0.86 -> 0.94 at ~1 point of PCK@0.2  # two poses more similar than this are one person found twice


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x.astype(np.float64), -60, 60)))


class MediaPipeBackend(PoseBackend):
    name = "mediapipe"

    def __init__(self, cfg: PoseConfig, threads: int = 1):
        super().__init__(cfg, threads)
        dirs = (cfg.model_dir,) if cfg.model_dir else ()
        self.detector = make_detector(cfg, threads)
        self.landmark = TFLiteModel(find_mediapipe_model("pose_landmark_full", dirs), threads)
        self.passes = 0  # landmark-model runs since construction (the benchmark divides its time by them)

    def reset(self) -> None:
        super().reset()
        if hasattr(self.detector, "reset"):
            self.detector.reset()

    def landmarks(self, rgb: np.ndarray, region: Region) -> tuple[np.ndarray, float]:
        """The landmark model on one region.

        Returns:
            (39, 3) landmarks: x, y in frame pixels and the visibility × presence probability; the pose score.
        """
        self.passes += 1
        patch, m = region.crop(rgb, LANDMARK_INPUT, border=cv2.BORDER_REPLICATE)
        raw, flag, _, heatmap = self.landmark(patch.astype(np.float32)[None] / 255.0)[:4]
        lm = raw.reshape(N_LANDMARKS, 5)
        uv = refine_from_heatmap(lm[:, :2].astype(np.float64), heatmap[0], LANDMARK_INPUT)
        xy = project(uv, m)
        score = _sigmoid(lm[:, 3]) * _sigmoid(lm[:, 4])
        return np.concatenate([xy, score[:, None]], axis=1), float(np.asarray(flag).reshape(-1)[0])

    def __call__(self, frame_bgr: np.ndarray, hints: list[Region] | None = None) -> FramePoses:
        detect = self.detect_now(hints)
        with self.timed("detect"):
            regions = self.detector(frame_bgr) if detect else []
        hints = list(hints or [])
        poses: list[np.ndarray] = []
        scores: list[float] = []
        found: list[Region] = []
        with self.timed("keypoints"):
            rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
            # Hints first: they follow people the detector may lose, and are already landmark-derived (no refine pass).
            lost = self._search(rgb, hints, True, poses, scores, found)
            self._search(rgb, regions, False, poses, scores, found)
        if lost and not detect and len(poses) < self.cfg.max_persons:
            # A tracked person was not found where expected (pose.detect_every skipped the detector): look for them
            # now, or their track would end (a tentative one at its first miss) until the next detector frame.
            with self.timed("detect"):
                regions = self.detector(frame_bgr)
            with self.timed("keypoints"):
                self._search(rgb, regions, False, poses, scores, found)
        if not poses:
            return FramePoses.empty()
        return FramePoses(np.stack(poses), np.asarray(scores, np.float32), found)

    def _search(self, rgb: np.ndarray, regions: list[Region], are_hints: bool, poses: list[np.ndarray],
                scores: list[float], found: list[Region]) -> bool:
        """The landmark model on each region not already covered by a found person; appends to poses, scores and
        found. Returns whether a region was rejected (no person there, or one too small)."""
        cfg = self.cfg
        rejected = False
        for region in regions:
            if len(poses) >= cfg.max_persons:
                break
            if found and _covered(region, found):
                continue  # a person already found here: skip the landmark pass
            if cfg.skip_inner and not are_hints and poses and _inner(region, poses):
                continue  # most likely a part of a found person (a limb's motion blob)
            lm, flag = self.landmarks(rgb, region)
            # A hint must be surer than a detection: else a track could feed itself on background once its
            # person has left.
            if flag < (max(cfg.min_pose_score, HINT_MIN_SCORE) if are_hints else cfg.min_pose_score):
                rejected = True
                continue
            if cfg.refine and not are_hints:
                better = region_from_points(lm[AUX_HIPS, :2], lm[AUX_SCALE, :2], expand=1.25)
                lm2, flag2 = self.landmarks(rgb, better)
                if flag2 >= cfg.min_pose_score:
                    lm, flag = lm2, flag2
            kp = lm[list(BLAZEPOSE_TO_COCO)].astype(np.float32)
            if _height(kp) < cfg.min_person_height:
                rejected = True
                continue
            if poses and _duplicate(kp, poses):
                continue  # found already (two regions on one person)
            poses.append(kp)
            scores.append(flag)
            found.append(region_from_points(lm[AUX_HIPS, :2], lm[AUX_SCALE, :2], expand=1.25, score=flag))
        return rejected


def refine_from_heatmap(uv: np.ndarray, heatmap: np.ndarray, size: int, kernel: int = 7,
                        min_confidence: float = 0.5) -> np.ndarray:
    """Move each landmark to the confidence-weighted mean of its heatmap window (mediapipe's
    RefineLandmarksFromHeatmapCalculator, kernel 7, min confidence 0.5, as its pose graph sets them).

    Args:
        uv: (L, 2) landmarks in continuous crop pixels.
        heatmap: (h, w, L) logits.
    Returns:
        (L, 2) refined landmarks; a landmark whose window peaks below ``min_confidence`` is left as it was.
    """
    h, w, n = heatmap.shape
    out = uv.copy()
    half = (kernel - 1) // 2
    m = min(n, len(uv))
    col = (uv[:m, 0] / size * w).astype(np.int64)  # truncation toward zero, as int() does
    row = (uv[:m, 1] / size * h).astype(np.int64)
    inside = np.flatnonzero((col >= 0) & (col < w) & (row >= 0) & (row < h))
    if not len(inside):
        return out
    # All windows at once (one pass per landmark in Python cost as much as the model's own refinement).
    offs = np.arange(-half, half + 1)
    rr = row[inside, None] + offs  # (K, k)
    cc = col[inside, None] + offs
    valid = ((rr >= 0) & (rr < h))[:, :, None] & ((cc >= 0) & (cc < w))[:, None, :]  # (K, k, k)
    logits = heatmap[rr.clip(0, h - 1)[:, :, None], cc.clip(0, w - 1)[:, None, :], inside[:, None, None]]
    conf = np.where(valid, _sigmoid(logits), 0.0)  # (K, k, k)
    total = conf.sum(axis=(1, 2))
    ok = (conf.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    # mediapipe takes a cell's index over the heatmap size as its normalised position
    x = (conf * cc[:, None, :]).sum(axis=(1, 2)) / np.where(ok, total, 1) / w * size
    y = (conf * rr[:, :, None]).sum(axis=(1, 2)) / np.where(ok, total, 1) / h * size
    out[inside[ok], 0] = x[ok]
    out[inside[ok], 1] = y[ok]
    return out


def _height(kp: np.ndarray) -> float:
    ok = kp[:, 2] >= 0.1
    ys = kp[ok, 1] if ok.any() else kp[:, 1]
    return float(ys.max() - ys.min())


def _duplicate(kp: np.ndarray, poses: list[np.ndarray]) -> bool:
    from mgenet.pose.tracking import oks

    # All joints, and the confident ones alone: an upper-body view's guessed legs differ from one region to the next.
    others = np.stack(poses)
    sim = np.maximum(oks(kp[None], others, min_score=0.0), oks(kp[None], others, min_score=0.5))
    return bool(sim.max() > DUPLICATE_OKS)


def _inner(region: Region, poses: list[np.ndarray], min_score: float = 0.5) -> bool:
    """Whether a region is centred inside the box of a found person's confident joints and no taller than it."""
    for kp in poses:
        ok = kp[:, 2] >= min_score
        if ok.sum() < 2:
            continue
        (x0, y0), (x1, y1) = kp[ok, :2].min(0), kp[ok, :2].max(0)
        if x0 <= region.cx <= x1 and y0 <= region.cy <= y1 and region.size <= y1 - y0:
            return True
    return False


def _covered(region: Region, found: list[Region]) -> bool:
    """Whether an already-found person's region (from its landmarks) is about this region: same place, same size."""
    for f in found:
        if np.hypot(region.cx - f.cx, region.cy - f.cy) < 0.2 * f.size and 0.6 < region.size / f.size < 1.6:
            return True
    return False
