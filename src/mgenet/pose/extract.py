"""Pose extraction from a video: stream frames, run a backend, track people, write AlphaPose tracked-person JSON.

Frames are decoded one at a time (memory does not grow with the video's length except for the poses themselves,
~0.3 kB per person and frame). With ``pose.every_n = n`` the backend runs on frames 0, n, 2n, ... and the video's
last frame, and each track's joints are interpolated linearly in between. The JSON file (and the preview) are
written under a temporary name and renamed at the end, so a failure never leaves a half-written file.

Documented empty result: a video in which no person is found (nobody there, or everybody smaller than the detector
can see) gives ``{}``, a valid pose file with no track, and a warning.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mgenet import MgenetError
from mgenet.io import PoseDict, write_alphapose
from mgenet.pose.backends import PoseBackend, PoseConfig, make_backend
from mgenet.pose.skeleton import COCO_EDGES
from mgenet.pose.tracking import Tracker
from mgenet.io.video import frame_files, probe

log = logging.getLogger("mgenet")



def iter_frames(path: str | Path) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, BGR frame) of a video file or a numbered frame folder, one frame in memory at a time.

    Raises:
        MgenetError: unreadable video, missing or unreadable frame image.
    """
    path = Path(path)
    if path.is_dir():
        for i, p in enumerate(frame_files(path)):  # numbered without a gap
            frame = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if frame is None:
                raise MgenetError(f"{p}: unreadable frame image (frame {i}).")
            yield i, frame
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MgenetError(f"{path}: cannot open the video (corrupt file or unsupported codec).")
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield i, frame
            i += 1
    finally:
        cap.release()


@dataclass
class PoseStats:
    frames: int = 0
    processed: int = 0
    detections: int = 0
    tracks: int = 0
    posed_frames: int = 0
    mean_keypoint_score: float = float("nan")
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def persons_per_frame(self) -> float:
        return self.detections / max(self.frames, 1)

    def line(self, name: str) -> str:
        t = " ".join(f"{k} {v / max(self.processed, 1) * 1000:.1f} ms" for k, v in self.timings.items())
        return (f"{name}: {self.frames} frames ({self.processed} run through the model), "
                f"{self.persons_per_frame:.2f} persons per frame, {self.tracks} tracks, {self.detections} poses, "
                f"mean keypoint score {self.mean_keypoint_score:.3f}, {self.frames / max(self.seconds, 1e-9):.1f} "
                f"frames/s ({t} per processed frame)")


def _colour(track_id: int | None) -> tuple[int, int, int]:
    if track_id is None:
        return (160, 160, 160)
    hue = (track_id * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_poses(frame: np.ndarray, keypoints: np.ndarray, ids: list[int | None], min_score: float = 0.3) -> np.ndarray:
    """Skeletons and track ids drawn on a copy of the frame (grey: a track not yet born)."""
    out = frame.copy()
    thick = max(1, round(min(frame.shape[:2]) / 300))
    for kp, tid in zip(keypoints, ids):
        col = _colour(tid)
        pts = [(int(round(x)), int(round(y))) for x, y in kp[:, :2]]
        for a, b in COCO_EDGES:
            if kp[a, 2] >= min_score and kp[b, 2] >= min_score:
                cv2.line(out, pts[a], pts[b], col, thick, cv2.LINE_AA)
        for (x, y), s in zip(pts, kp[:, 2]):
            if s >= min_score:
                cv2.circle(out, (x, y), thick + 1, col, -1, cv2.LINE_AA)
        top = kp[kp[:, 2] >= min_score] if (kp[:, 2] >= min_score).any() else kp
        x, y = int(top[:, 0].min()), int(top[:, 1].min()) - 4
        cv2.putText(out, "?" if tid is None else str(tid), (x, max(y, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, col, thick, cv2.LINE_AA)
    return out


class _Preview:
    """An mp4 written under a temporary name, renamed on close(ok=True)."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self.writer.isOpened():
            raise MgenetError(f"{path}: cannot write the preview video (use a .mp4 or .avi name).")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def close(self, ok: bool) -> None:
        self.writer.release()
        if ok:
            os.replace(self.tmp, self.path)
        elif self.tmp.exists():
            self.tmp.unlink()


def _mark_last(frames: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[tuple[int, np.ndarray], bool]]:
    """Each item with a flag that is True for the last one (one frame of look-ahead)."""
    prev = next(frames, None)
    for item in frames:
        yield prev, False  # type: ignore[misc]
        prev = item
    if prev is not None:
        yield prev, True


def extract_poses(path: str | Path, cfg: PoseConfig, backend: PoseBackend | None = None, threads: int = 1,
                  preview: str | Path | None = None,
                  progress: Callable[[int], None] | None = None) -> tuple[PoseDict, PoseStats]:
    """Tracked COCO-17 poses of every person in a video.

    Args:
        path: a video file or a numbered frame folder.
        cfg: the pose settings.
        backend: a ready backend (built from ``cfg`` when None); reset before the video.
        preview: optional mp4 path: every frame with the skeletons and track ids drawn.
        progress: called with the number of frames done after each frame.
    Returns:
        {track id: {frame: (17, 3)}} and the run's statistics.
    Raises:
        MgenetError: unreadable video or frame, missing frame in a frame folder, a bad backend setting.
    """
    info = probe(path)  # fails early, naming the file, on a missing or undecodable video or a gap in a frame folder
    backend = backend or make_backend(cfg, threads)
    backend.reset()
    n = cfg.every_n
    tracker = Tracker(cfg.tracking, max_interp_gap=(cfg.tracking.max_age + 1) * n - 1)
    stats = PoseStats()
    timings0 = dict(backend.timings)
    writer = _Preview(Path(preview), info.fps, info.width, info.height) if preview else None
    last_drawn: tuple[np.ndarray, list[int | None]] = (np.zeros((0, 17, 3), np.float32), [])
    t0 = time.perf_counter()
    ok = False
    try:
        for (f, frame), last in _mark_last(iter_frames(path)):
            stats.frames = f + 1
            if f % n == 0 or last:
                hints = tracker.hints(f) if cfg.propagate else None
                found = backend(frame, hints)
                t1 = time.perf_counter()
                ids = tracker.update(f, found.keypoints, found.regions)
                backend.timings["tracking"] = backend.timings.get("tracking", 0.0) + time.perf_counter() - t1
                stats.processed += 1
                last_drawn = (found.keypoints, ids)
            if writer is not None:
                writer.write(draw_poses(frame, *last_drawn))
            if progress is not None:
                progress(f + 1)
        if stats.frames == 0:
            raise MgenetError(f"{path}: no frame could be decoded.")
        if stats.frames < info.frames:
            # Containers can overstate the frame count; a truncated file decodes fewer frames than it claims.
            log.warning("%s: decoded %d frames, the container announced %d",
                                                path, stats.frames, info.frames)
        ok = True
    finally:
        if writer is not None:
            writer.close(ok)
    poses = {pid: {fr: kp for fr, kp in track.items() if fr < stats.frames} for pid, track in tracker.result().items()}
    poses = {pid: track for pid, track in poses.items() if track}
    stats.seconds = time.perf_counter() - t0
    stats.tracks = len(poses)
    stats.detections = sum(len(t) for t in poses.values())
    stats.posed_frames = len({fr for t in poses.values() for fr in t})
    if stats.detections:
        stats.mean_keypoint_score = float(np.mean([kp[:, 2].mean() for t in poses.values() for kp in t.values()]))
    stats.timings = {k: v - timings0.get(k, 0.0) for k, v in backend.timings.items()}
    return poses, stats


def extract_pose_file(video: str | Path, out: str | Path, params: PoseConfig | dict[str, Any], threads: int = 1,
                      preview: str | Path | None = None, progress: bool = False) -> PoseStats:
    """:func:`extract_poses` on one video, written as AlphaPose tracked-person JSON (``{}`` when nobody is found)."""
    cfg = params if isinstance(params, PoseConfig) else PoseConfig.from_dict(params)
    if not progress:
        poses, stats = extract_poses(video, cfg, threads=threads, preview=preview)
    else:
        from tqdm import tqdm

        with tqdm(total=probe(video).frames, unit="frame", desc=Path(video).name) as bar:
            poses, stats = extract_poses(video, cfg, threads=threads, preview=preview,
                                         progress=lambda done: bar.update(done - bar.n))
    write_alphapose(poses, out)
    if stats.tracks == 0:
        log.warning("%s: no person found; wrote an empty pose file ({}). People shorter than about %d px (or, with "
                    "the blazepose detector, smaller than ~1/8 of the frame) are not found: try pose.detector: both "
                    "or pose.tiles: [2, 2]", video, cfg.min_person_height)
    return stats
