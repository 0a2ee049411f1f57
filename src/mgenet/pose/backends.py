"""The pose-backend interface: a frame in, every person's COCO-17 keypoints out.

A backend is a :class:`PoseBackend` subclass chosen by ``pose.backend`` in the config: a registered name
(``mediapipe``, the default, needs no weights file; ``onnx`` runs a user-supplied top-down model) or
``package.module:ClassName`` for one of your own, importable from the environment the rule runs in. It gets the
whole :class:`PoseConfig` and the thread count, and must return a :class:`FramePoses` per frame; tracking, frame
skipping, the JSON file and the preview are the extractor's job, the same for every backend.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mgenet import MgenetError
from mgenet.config import FromDict
from mgenet.pose.regions import Region


@dataclass
class TrackerConfig(FromDict):
    SECTION: ClassVar[str] = "pose.tracking"

    min_hits: int = 3            # detections before a track is born (its earlier frames are kept)
    max_age: int = 12            # frames a track survives unmatched; gaps up to this long are interpolated
    min_similarity: float = 0.2  # below this a detection never matches a track
    iou_weight: float = 0.5      # similarity = w · box IoU + (1 − w) · keypoint similarity (OKS)
    interpolate_gaps: bool = True

    def __post_init__(self) -> None:
        if self.min_hits < 1 or self.max_age < 0:
            raise MgenetError("pose.tracking: min_hits must be >= 1 and max_age >= 0")
        if not 0 <= self.iou_weight <= 1 or not 0 <= self.min_similarity <= 1:
            raise MgenetError("pose.tracking: iou_weight and min_similarity lie in [0, 1]")


@dataclass
class PoseConfig(FromDict):
    backend: str = "mediapipe"
    detector: str = "both"              # blazepose | motion | both
    weights: str = ""                   # the onnx backend's model file
    model_dir: str = ""                 # optional folder with the BlazePose .tflite files
    every_n: int = 1
    detect_every: int = 1               # the person detector on every k-th processed frame; tracked people between
    min_detection_score: float = 0.5
    nms_iou: float = 0.3
    tiles: tuple[int, int] = (1, 1)     # (columns, rows) of detector tiles, for people small in the frame
    min_pose_score: float = 0.5         # keypoint model's "a person is here" score
    min_person_height: int = 24         # pixels; smaller people are not reported
    max_persons: int = 16
    refine: bool = True                 # second keypoint pass on the region the first pass's keypoints imply
    propagate: bool = True              # also look where the previous frame's people were
    skip_inner: bool = False            # no landmark pass on a detection centred inside a found person's joints
    input_norm: str = "imagenet"        # onnx backend: imagenet (mean/std) or unit ([0, 1])
    tracking: TrackerConfig = field(default_factory=TrackerConfig)

    SECTION: ClassVar[str] = "pose"
    IGNORED: ClassVar[tuple[str, ...]] = ("source",)  # which poses a run uses (import or extract): not how to extract

    def __post_init__(self) -> None:
        if isinstance(self.tracking, dict):
            self.tracking = TrackerConfig.from_dict(self.tracking)
        if self.every_n < 1:
            raise MgenetError(f"pose.every_n must be >= 1, got {self.every_n}")
        if self.detect_every < 1:
            raise MgenetError(f"pose.detect_every must be >= 1, got {self.detect_every}")
        if len(self.tiles) != 2 or min(self.tiles) < 1:
            raise MgenetError(f"pose.tiles must be [columns, rows] >= 1, got {list(self.tiles)}")
        self.tiles = (int(self.tiles[0]), int(self.tiles[1]))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tiles"] = list(self.tiles)
        return d


@dataclass
class FramePoses:
    """Every person found in one frame."""

    keypoints: np.ndarray  # (N, 17, 3) float32: x, y in frame pixels, score in [0, 1]
    scores: np.ndarray     # (N,) float32: the person's score
    regions: list[Region] | None = None  # where the backend would look for each person next frame (optional)

    @classmethod
    def empty(cls) -> FramePoses:
        return cls(np.zeros((0, 17, 3), np.float32), np.zeros(0, np.float32), [])

    def __len__(self) -> int:
        return len(self.scores)


class PoseBackend(ABC):
    """Subclass this and implement :meth:`__call__` to plug in another estimator (see the module docstring)."""

    name: ClassVar[str] = ""

    def __init__(self, cfg: PoseConfig, threads: int = 1):
        self.cfg, self.threads = cfg, threads
        self.timings: dict[str, float] = {}  # seconds spent per stage, summed over frames (for the benchmark)
        self._calls = 0

    @abstractmethod
    def __call__(self, frame_bgr: np.ndarray, hints: list[Region] | None = None) -> FramePoses:
        """Every person in a (H, W, 3) uint8 BGR frame.

        Args:
            frame_bgr: the frame.
            hints: regions where people were in the previous processed frame (the extractor passes them when
                ``pose.propagate`` is set); a backend may look there besides what its detector finds, or ignore them.
        """

    def reset(self) -> None:
        """Forget per-video state (a motion detector's background model); called before each video."""
        self._calls = 0

    def detect_now(self, hints: list[Region] | None) -> bool:
        """Whether to run the person detector on this call: every ``pose.detect_every``-th call, and whenever there
        is no tracked person to look for. Between detections, the tracked people's regions (``hints``) alone are
        searched, so a newcomer is found at most ``detect_every - 1`` processed frames late."""
        self._calls += 1
        return (self._calls - 1) % self.cfg.detect_every == 0 or not hints

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0


BUILTIN_BACKENDS = {
    "mediapipe": "mgenet.pose.mediapipe_backend:MediaPipeBackend",
    "onnx": "mgenet.pose.onnx_backend:OnnxTopDownBackend",
}


def backend_class(name: str) -> type[PoseBackend]:
    """The backend class for a registered name or a ``module:Class`` path.

    Raises:
        MgenetError: unknown name, unimportable module, or a class that is not a PoseBackend.
    """
    target = BUILTIN_BACKENDS.get(name, name)
    if ":" not in target:
        raise MgenetError(f"pose.backend {name!r} is unknown: use one of {sorted(BUILTIN_BACKENDS)} or "
                          f"'package.module:ClassName' for a PoseBackend subclass of your own.")
    module, _, cls_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as e:
        raise MgenetError(f"pose.backend {name!r}: cannot import {target} ({e}).") from e
    if not (isinstance(cls, type) and issubclass(cls, PoseBackend)):
        raise MgenetError(f"pose.backend {name!r}: {target} is not a subclass of mgenet.pose.backends.PoseBackend.")
    return cls


def make_backend(cfg: PoseConfig, threads: int = 1) -> PoseBackend:
    return backend_class(cfg.backend)(cfg, threads)
