"""Real photographs that ship inside scikit-image, with hand-checked joint positions, and composites of them.

Positions were read off 4x zooms of the images with a pixel grid (x, y in image pixels, pixel centres at integers).
The astronaut (Eileen Collins, 512x512) shows the upper body only; her shoulders are under a bulky suit, hence their
larger tolerance.
"""

from __future__ import annotations

import cv2
import numpy as np

# COCO-17 index -> (x, y) on skimage.data.astronaut(); tolerance in pixels per joint.
ASTRONAUT = {0: (225.5, 124.0), 1: (246.0, 104.0), 2: (205.0, 100.0), 5: (322.0, 262.0), 6: (90.0, 255.0)}
# Face joints: 0.3 x her inter-eye distance (41 px). Shoulders: 0.4 x her shoulder width (232 px); where a joint
# sits inside the suit is a guess within a few tens of pixels, so this only checks side and height.
ASTRONAUT_TOL = {0: 12.0, 1: 12.0, 2: 12.0, 5: 90.0, 6: 90.0}
FLIP_COCO = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def camera_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)


def place(canvas: np.ndarray, img: np.ndarray, x0: int, y0: int, scale: float, flip: bool,
          gt: dict[int, tuple[float, float]] | None = None) -> dict[int, tuple[float, float]]:
    """Paste ``img`` scaled (and mirrored) at (x0, y0); return its hand-checked joints in canvas coordinates."""
    h, w = img.shape[:2]
    im = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    if flip:
        im = im[:, ::-1]
    canvas[y0:y0 + im.shape[0], x0:x0 + im.shape[1]] = im
    out = {}
    for j, (x, y) in (gt or {}).items():
        # resize maps pixel centres as (x + 0.5) * s - 0.5
        xs, ys = (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5
        if flip:
            xs = im.shape[1] - 1 - xs
            j = FLIP_COCO[j]
        out[j] = (xs + x0, ys + y0)
    return out


def composite() -> tuple[np.ndarray, list[dict[int, tuple[float, float]]], list[float]]:
    """Three astronauts side by side on grey: as is, mirrored at 0.75, and at 0.5.

    Returns:
        canvas (512, 1152, 3), the hand-checked joints of each copy in canvas pixels, and the copies' scales.
    """
    canvas = np.full((512, 1152, 3), 128, np.uint8)
    a = astronaut_bgr()
    gts = [place(canvas, a, 0, 0, 1.0, False, ASTRONAUT), place(canvas, a, 512, 128, 0.75, True, ASTRONAUT),
           place(canvas, a, 896, 256, 0.5, False, ASTRONAUT)]
    return canvas, gts, [1.0, 0.75, 0.5]


def joint_errors(kp: np.ndarray, gt: dict[int, tuple[float, float]]) -> dict[int, float]:
    return {j: float(np.hypot(kp[j, 0] - x, kp[j, 1] - y)) for j, (x, y) in gt.items()}


def match(poses: np.ndarray, gt: dict[int, tuple[float, float]]) -> np.ndarray:
    """The pose whose nose lies nearest the hand-checked nose."""
    d = np.hypot(poses[:, 0, 0] - gt[0][0], poses[:, 0, 1] - gt[0][1])
    return poses[int(d.argmin())]
