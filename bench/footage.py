"""A crowd clip made of real photographs, for the pose and score-video benches: no real footage can be downloaded here.

    python bench/footage.py OUT.mp4 [--frames 200] [--people 6]

768x576 at 25 fps, like the campus footage STG-NF's users score: a ground of scikit-image's gravel texture under a
band of its brick wall, and ``people`` photographs of real people walking across it: scikit-image's astronaut
(Eileen Collins, upper body) and cameraman (upper body), each scaled to 130-230 px tall, some mirrored, each at
its own speed and height with a walking bob, bouncing at the frame's edges (so they cross and occlude each other).
The people are still photographs that slide (no limb motion), upper bodies only: the pose figures on this clip say
how fast and how repeatable the estimator is on real textures, not how it does on real walking people.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

SIZE = (768, 576)


def _sprites() -> list[np.ndarray]:
    from skimage import data

    astro = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:512, 90:400]  # the person, most of the flag out
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)[40:512, 90:420]
    return [astro, camera]


def _background() -> np.ndarray:
    from skimage import data

    w, h = SIZE
    ground = np.tile(data.gravel(), (2, 2))[:h, :w]
    wall = np.tile(data.brick(), (1, 2))[:h // 4, :w]
    bg = cv2.cvtColor(ground, cv2.COLOR_GRAY2BGR).astype(np.float32) * np.array([0.85, 0.95, 1.0])
    bg[:h // 4] = cv2.cvtColor(wall, cv2.COLOR_GRAY2BGR).astype(np.float32) * np.array([0.7, 0.8, 1.0])
    return np.clip(bg, 0, 255).astype(np.uint8)


def make_crowd_video(path: str | Path, frames: int = 200, people: int = 6, seed: int = 0, repeat: int = 1) -> Path:
    """Write the clip (``repeat`` times in a row: the same frames again, for memory checks) and return its path."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    bg = _background()
    sprites = _sprites()
    walkers = []
    for p in range(people):
        src = sprites[p % len(sprites)]
        height = int(rng.uniform(130, 230))
        im = cv2.resize(src, (int(src.shape[1] * height / src.shape[0]), height), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            im = im[:, ::-1]
        y = int(rng.uniform(h // 5, h - height))
        walkers.append({"im": np.ascontiguousarray(im), "x": rng.uniform(0, w - im.shape[1]), "y": y,
                        "vx": rng.choice([-1, 1]) * rng.uniform(1.0, 3.0), "phase": rng.uniform(0, 6.28)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, SIZE)
    clip = []
    for f in range(frames):
        canvas = bg.copy()
        for wk in sorted(walkers, key=lambda k: k["y"] + k["im"].shape[0]):  # farther people first
            im = wk["im"]
            x = round(wk["x"])
            y = round(wk["y"] + 3 * float(np.sin(f * 0.5 + wk["phase"])))
            y = min(max(y, 0), h - im.shape[0])
            canvas[y:y + im.shape[0], x:x + im.shape[1]] = im
            wk["x"] += wk["vx"]
            if not 0 <= wk["x"] <= w - im.shape[1]:
                wk["vx"] = -wk["vx"]
                wk["x"] = min(max(wk["x"], 0), w - im.shape[1])
        clip.append(canvas) if repeat > 1 else None
        out.write(canvas)
    for _ in range(repeat - 1):
        for canvas in clip:
            out.write(canvas)
    out.release()
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--people", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    print(make_crowd_video(a.out, a.frames, a.people, repeat=a.repeat))
