"""Agreement of fast pose settings with a full-quality run: PCK of the box height and matched tracks."""

from __future__ import annotations

import numpy as np
import pytest

from mgenet.pose.metrics import agreement


def _track(x0: float, frames: range, dx: float = 0.0) -> dict[int, np.ndarray]:
    out = {}
    for f in frames:
        kp = np.zeros((17, 3), np.float32)
        kp[:, 0] = x0 + f + dx + np.linspace(0, 20, 17)
        kp[:, 1] = np.linspace(0, 100, 17)  # box height 100
        kp[:, 2] = 0.9
        out[f] = kp
    return out


def test_agreement_of_poses_with_a_reference() -> None:
    ref = {1: _track(0, range(20)), 2: _track(300, range(20))}
    same = agreement(ref, ref)
    assert same.pck == 1 and same.matched_tracks == 1 and same.recall == 1 and same.precision == 1
    near = agreement({7: _track(0, range(20), dx=5), 8: _track(300, range(20), dx=15)}, ref)
    assert near.pck == pytest.approx(0.5)  # 5 px is within 0.1 x 100, 15 px is not
    assert near.matched_tracks == 1
    half = agreement({7: _track(0, range(20)), 8: _track(300, range(8))}, ref)  # person 2 lost after 8 frames
    assert half.matched_tracks == 0.5 and half.recall == pytest.approx(28 / 40)
    assert half.pck == pytest.approx(28 / 40)  # a missed person's joints all count wrong
    far = agreement({7: _track(0, range(20), dx=200)}, ref)
    assert far.matched_tracks == 0 and far.pck == 0 and far.precision == 0
