"""The heatmap refinement of BlazePose's landmarks, vectorised, against mediapipe's calculator written as a loop."""

from __future__ import annotations

import numpy as np

from mgenet.pose.mediapipe_backend import refine_from_heatmap


def loop_reference(uv: np.ndarray, heatmap: np.ndarray, size: int, kernel: int = 7,
                   min_confidence: float = 0.5) -> np.ndarray:
    h, w, n = heatmap.shape
    out = uv.copy()
    half = (kernel - 1) // 2
    for i in range(min(n, len(uv))):
        col, row = int(uv[i, 0] / size * w), int(uv[i, 1] / size * h)
        if not (0 <= col < w and 0 <= row < h):
            continue
        r0, r1, c0, c1 = max(0, row - half), min(h, row + half + 1), max(0, col - half), min(w, col + half + 1)
        conf = 1 / (1 + np.exp(-heatmap[r0:r1, c0:c1, i].astype(np.float64)))
        if conf.max() < min_confidence or conf.sum() <= 0:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        out[i, 0] = (cols * conf).sum() / conf.sum() / w * size
        out[i, 1] = (rows * conf).sum() / conf.sum() / h * size
    return out


def test_vectorised_refinement_matches_the_calculator() -> None:
    rng = np.random.default_rng(0)
    for mean in (-3.0, 0.0, 2.0):  # windows mostly below, around and above the confidence cut
        heatmap = rng.normal(mean, 2.0, (64, 64, 39)).astype(np.float32)
        uv = rng.uniform(-20, 276, (39, 2))  # some outside the crop, some with windows cut by its edge
        uv[:4] = [[0.5, 0.5], [255.9, 255.9], [-0.5, 10], [3.0, 255.0]]
        got = refine_from_heatmap(uv, heatmap, 256)
        np.testing.assert_allclose(got, loop_reference(uv, heatmap, 256), rtol=0, atol=1e-9)
        assert (got != uv).any() or mean < 0
