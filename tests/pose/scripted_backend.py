"""A backend that replays given poses, for testing the extractor and the plug-in interface without a model."""

from __future__ import annotations

import numpy as np

from mgenet.pose.backends import FramePoses, PoseBackend, PoseConfig


class ScriptedBackend(PoseBackend):
    """Returns ``script[call index]`` (a (N, 17, 3) array) on each call; records the frames it was given."""

    name = "scripted"
    script: list[np.ndarray] = []

    def __init__(self, cfg: PoseConfig, threads: int = 1):
        super().__init__(cfg, threads)
        self.calls: list[np.ndarray] = []
        self.fail_at: int | None = None

    def __call__(self, frame_bgr, hints=None):
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise RuntimeError("backend crashed")
        self.calls.append(frame_bgr[0, 0].copy())
        kp = self.script[len(self.calls) - 1] if len(self.calls) <= len(self.script) else np.zeros((0, 17, 3))
        kp = np.asarray(kp, np.float32).reshape(-1, 17, 3)
        return FramePoses(kp, np.ones(len(kp), np.float32))


class NotABackend:
    pass
