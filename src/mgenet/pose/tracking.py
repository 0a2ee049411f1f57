"""Multi-person tracking by detection: persistent ids from per-frame poses.

Each processed frame, tracks are matched to detections by the Hungarian algorithm (scipy) on a similarity that mixes
the box IoU and the COCO keypoint similarity (OKS), both measured against where each track is predicted to be
(constant velocity from its last two detections), so two people who cross keep their ids. A track is born after
``min_hits`` matched detections (its earlier frames are kept) and dies after ``max_age`` processed frames without
one; gaps it survived, and the frames skipped by ``every_n``, are filled by linear interpolation of its keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from mgenet.io import PoseDict
from mgenet.pose.backends import TrackerConfig
from mgenet.pose.regions import Region, box_iou, region_from_box
from mgenet.pose.skeleton import boxes_from_keypoints

# COCO keypoint sigmas (per-joint localisation tolerance), as in the COCO keypoint evaluation.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10


def oks(a: np.ndarray, b: np.ndarray, min_score: float = 0.1) -> np.ndarray:
    """Pairwise object keypoint similarity of (N, 17, 3) and (M, 17, 3) poses → (N, M) in [0, 1].

    The scale is the area of the union of the two poses' boxes; joints below ``min_score`` in either pose are left
    out (a pair with no joint in common scores 0).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ba, bb = boxes_from_keypoints(a, min_score), boxes_from_keypoints(b, min_score)
    area = np.maximum(_area(ba)[:, None], _area(bb)[None, :])
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (N, M, 17)
    k2 = (2 * COCO_SIGMAS) ** 2
    e = np.exp(-d2 / (2 * np.maximum(area, 1.0)[..., None] * k2))
    vis = (a[:, None, :, 2] >= min_score) & (b[None, :, :, 2] >= min_score)
    n = vis.sum(-1)
    return np.where(n > 0, (e * vis).sum(-1) / np.maximum(n, 1), 0.0)


def _person_box(kps: np.ndarray) -> np.ndarray:
    """Keypoint boxes made person-shaped: at least half as wide as tall (a side view's keypoints are a thin line)
    and 10% larger each side, so that IoU still sees a person who moved a few pixels."""
    b = boxes_from_keypoints(kps).astype(np.float64)
    c = (b[:, :2] + b[:, 2:]) / 2
    wh = b[:, 2:] - b[:, :2]
    wh = np.maximum(wh, 0.5 * wh[:, ::-1]) * 1.2
    return np.concatenate([c - wh / 2, c + wh / 2], axis=1)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


@dataclass
class Track:
    frames: list[int] = field(default_factory=list)
    poses: list[np.ndarray] = field(default_factory=list)  # (17, 3) float32 each
    hits: int = 0
    misses: int = 0
    track_id: int | None = None  # given at birth, so ids count confirmed people only
    region: Region | None = None  # where the backend last found this person

    def predict(self, frame: int) -> np.ndarray:
        """Keypoints expected at ``frame``: constant velocity from the last two detections."""
        last = self.poses[-1].copy()
        if len(self.frames) >= 2 and self.frames[-1] > self.frames[-2]:
            v = (self.poses[-1][:, :2] - self.poses[-2][:, :2]) / (self.frames[-1] - self.frames[-2])
            last[:, :2] += v * (frame - self.frames[-1])
        return last


class Tracker:
    """Feed :meth:`update` every processed frame in order, then read :meth:`result`."""

    def __init__(self, cfg: TrackerConfig | None = None, max_interp_gap: int | None = None):
        self.cfg = cfg or TrackerConfig()
        self.active: list[Track] = []
        self.finished: list[Track] = []
        self.next_id = 0
        self.last_frame = -1
        # Longest run of frames (between two detections of one track) that is filled in by interpolation.
        self.max_interp_gap = max_interp_gap

    def similarity(self, tracks: list[Track], frame: int, kps: np.ndarray) -> np.ndarray:
        pred = np.stack([t.predict(frame) for t in tracks]).astype(np.float32)
        iou = box_iou(_person_box(pred), _person_box(kps))
        w = self.cfg.iou_weight
        return w * iou + (1 - w) * oks(pred, kps)

    def hints(self, frame: int) -> list[Region]:
        """Where each live track's person should be at ``frame``: its last region, moved by its predicted motion."""
        out = []
        for t in self.active:
            pred = t.predict(frame)
            shift = np.median(pred[:, :2] - t.poses[-1][:, :2], axis=0)
            r = t.region or region_from_box(boxes_from_keypoints(t.poses[-1]), 1.25)
            out.append(Region(r.cx + float(shift[0]), r.cy + float(shift[1]), r.size, r.angle, r.score))
        return out

    def update(self, frame: int, keypoints: np.ndarray, regions: list[Region] | None = None) -> list[int | None]:
        """Match this frame's poses (N, 17, 3) (and the backend's regions of them, if any) to the tracks.

        Returns:
            the track id of each pose (None while its track is not yet born).
        """
        if frame <= self.last_frame:
            raise ValueError(f"frames must be given in increasing order ({frame} after {self.last_frame})")
        self.last_frame = frame
        keypoints = np.asarray(keypoints, np.float32).reshape(-1, 17, 3)
        assigned: list[Track | None] = [None] * len(keypoints)
        unmatched = set(range(len(keypoints)))
        if self.active and len(keypoints):
            sim = self.similarity(self.active, frame, keypoints)
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows, cols):
                if sim[r, c] >= self.cfg.min_similarity:
                    assigned[c] = self.active[r]
                    unmatched.discard(c)
        matched = {id(t) for t in assigned if t is not None}
        survivors = []
        for t in self.active:
            if id(t) in matched:
                survivors.append(t)
                continue
            t.misses += 1
            # A tentative track dies at its first miss; a born one survives max_age misses.
            if t.track_id is None or t.misses > self.cfg.max_age:
                if t.track_id is not None:
                    self.finished.append(t)
                continue
            survivors.append(t)
        self.active = survivors
        for c in sorted(unmatched):
            t = Track()
            self.active.append(t)
            assigned[c] = t
        for c, t in enumerate(assigned):
            assert t is not None
            t.frames.append(frame)
            t.poses.append(keypoints[c])
            t.region = regions[c] if regions else None
            t.hits += 1
            t.misses = 0
            if t.track_id is None and t.hits >= self.cfg.min_hits:
                t.track_id = self.next_id
                self.next_id += 1
        return [t.track_id for t in assigned]  # type: ignore[union-attr]

    def result(self) -> PoseDict:
        """Every born track, its gaps (and skipped frames) interpolated: {track id: {frame: (17, 3)}}."""
        out: PoseDict = {}
        for t in [*self.finished, *self.active]:
            if t.track_id is None:
                continue
            out[t.track_id] = interpolate_track(t.frames, t.poses, self.max_interp_gap
                                                if self.cfg.interpolate_gaps else 0)
        return out


def interpolate_track(frames: list[int], poses: list[np.ndarray], max_gap: int | None) -> dict[int, np.ndarray]:
    """A track's detections plus linearly interpolated poses in every gap of at most ``max_gap`` missing frames.

    An interpolated joint's score is the lower of its two ends' scores.
    """
    track = {f: p for f, p in zip(frames, poses)}
    for (f0, p0), (f1, p1) in zip(zip(frames, poses), zip(frames[1:], poses[1:])):
        gap = f1 - f0 - 1
        if gap <= 0 or (max_gap is not None and gap > max_gap):
            continue
        score = np.minimum(p0[:, 2], p1[:, 2])
        for f in range(f0 + 1, f1):
            a = (f - f0) / (f1 - f0)
            p = np.empty_like(p0)
            p[:, :2] = (1 - a) * p0[:, :2] + a * p1[:, :2]
            p[:, 2] = score
            track[f] = p
    return dict(sorted(track.items()))
