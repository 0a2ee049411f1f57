"""Pose extraction throughput on the CPU, its cost split, and memory flatness in the video's length.

    python bench/pose.py [--frames 24] [--threads 1] [--skip-memory]

1. frames/s of the default backend (BlazePose, mediapipe==0.10.14 models) on videos of real photographs with 1 and
   with 5 people per frame (scikit-image's astronaut, scaled, mirrored and drifting), and the time per processed frame
   spent in detection, landmarks (the keypoint model) and tracking. Baseline, measured in the same run:
   ``every_n: 1``; the ratio printed is the speed-up of ``every_n: 3`` (the model on every third frame).
2. memory: max RSS of a fresh process extracting a video and one 4x as long; it must not grow with the length
   (frames are streamed; only the poses, ~0.3 kB per person and frame, are kept).

The machine may be busy: each configuration runs twice alternately and the faster run is kept.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def make_video(path: Path, people: int, frames: int) -> Path:
    """A 1280x512 (5 people) or 512x512 (1 person) clip of astronauts drifting sideways, 25 fps."""
    a = astronaut()
    if people == 1:
        layout = [(0, 0, 1.0, False)]
        size = (512, 512)
    else:
        layout = [(0, 0, 0.5, False), (256, 0, 0.5, True), (512, 0, 0.5, False), (768, 0, 0.5, True),
                  (1024, 0, 0.5, False)][:people]
        size = (256, 1280)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (size[1], size[0]))
    for f in range(frames):
        canvas = np.full((*size, 3), 128, np.uint8)
        for x0, y0, s, flip in layout:
            im = cv2.resize(a, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            im = im[:, ::-1] if flip else im
            im = np.roll(im, f % 16 - 8, axis=1)  # a little motion for the tracker
            canvas[y0:y0 + im.shape[0], x0:x0 + im.shape[1]] = im
        w.write(canvas)
    w.release()
    return path


def run(video: Path, params: dict, threads: int):
    from mgenet.pose.backends import PoseConfig, make_backend
    from mgenet.pose.extract import extract_poses

    cfg = PoseConfig.from_dict(params)
    backend = make_backend(cfg, threads)
    t0 = time.perf_counter()
    poses, stats = extract_poses(video, cfg, backend=backend)
    return time.perf_counter() - t0, stats


def max_rss_of(video: Path, threads: int) -> float:
    code = ("import resource, sys; from mgenet.pose.extract import extract_pose_file; "
            f"extract_pose_file({str(video)!r}, {str(video.with_suffix('.json'))!r}, {{'tiles': [3, 1]}}, {threads}); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mgenet-bench-pose-"))
    print(f"pose extraction, {args.frames} frames per video, {args.threads} thread(s), CPU")
    params = {"detector": "blazepose", "tiles": [3, 1]}
    for people in (1, 5):
        video = make_video(tmp / f"p{people}.mp4", people, args.frames)
        best: dict[int, tuple[float, object]] = {}
        for _ in range(2):
            for n in (1, 3):
                secs, stats = run(video, {**params, "every_n": n}, args.threads)
                if n not in best or secs < best[n][0]:
                    best[n] = (secs, stats)
        secs, stats = best[1]
        fps = stats.frames / secs
        split = ", ".join(f"{k} {v / stats.processed * 1000:.0f} ms" for k, v in stats.timings.items())
        print(f"  {people} person(s)/frame: {fps:5.2f} frames/s with every_n 1 (baseline; per frame: {split}); "
              f"found {stats.persons_per_frame:.2f} persons/frame in {stats.tracks} tracks")
        secs3, stats3 = best[3]
        print(f"  {people} person(s)/frame: {stats3.frames / secs3:5.2f} frames/s with every_n 3 "
              f"= {secs / secs3:.2f}x the baseline")
    if not args.skip_memory:
        short = make_video(tmp / "short.mp4", 1, args.frames)
        long = make_video(tmp / "long.mp4", 1, 4 * args.frames)
        rss_s, rss_l = max_rss_of(short, args.threads), max_rss_of(long, args.threads)
        print(f"  memory: max RSS {rss_s:.0f} MiB for {args.frames} frames, {rss_l:.0f} MiB for {4 * args.frames} "
              f"frames (ratio {rss_l / rss_s:.2f}; flat = 1.00)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
