"""Two-stream baseline (CR + KR): batched scoring against a one-at-a-time loop, and peak memory, in the same run.

    python bench/crkr.py [--frames 96] [--size 48 64] [--batch 16] [--repeat 3] [--threads 2] [--skip-memory]

1. CR scoring of one video (frames decoded, resized, predicted, maximum local error): ``batch`` target frames per
   forward against one per forward (``score_cr_video(per_frame=True)``), on the same video and model. Target >= 2x.
2. KR scoring of snippet features: one batched HashNet pass and vectorised table look-ups against a loop that hashes
   and looks up each snippet alone. Target >= 10x.
3. Peak memory (RSS of a fresh process) of CR scoring a video and one 4x as long: must stay flat (ratio < 1.3), as
   frames are decoded ``batch`` targets at a time.

The video is synthetic: a frame folder of the demo's size (320 x 240) with walking blocks; the CR decoder is
untrained (speed does not depend on its weights). Both sides of each comparison are repeated alternately and the best
of each kept, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mgenet.baselines.engine.cr import CRScoreConfig, CRTrainConfig, score_cr_video
from mgenet.baselines.engine.kr import HashTables, hash_codes, snippet_scores
from mgenet.features.swin import build_swin_stages12
from mgenet.baselines.models.crnet import CRNet, CRNetConfig
from mgenet.baselines.models.hashnet import HashNet, HashNetConfig

MIN_CR_RATIO = 2.0
MIN_KR_RATIO = 10.0
MAX_PEAK_GROWTH = 1.3


def synthetic_video(folder: Path, n: int, height: int = 240, width: int = 320) -> Path:
    """A frame folder of ``n`` frames: three blocks walking across a grey background."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, width, 3)
    for i in range(n):
        img = np.full((height, width, 3), 110, np.uint8)
        for k, x0 in enumerate(starts):
            x = int(x0 + 2 * i * (k + 1)) % (width - 20)
            img[80 + 40 * k:140 + 40 * k, x:x + 20] = (60 * k, 200, 255 - 60 * k)
        cv2.imwrite(str(folder / f"{i:05d}.png"), img)
    return folder


def best_of(fns: dict, repeat: int) -> dict:
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def cr_model(size: list[int]) -> tuple[CRNet, CRTrainConfig]:
    model = CRNet(build_swin_stages12(seed=0), CRNetConfig(width=16)).eval()
    return model, CRTrainConfig(size=size, frame_step=2)


def bench_cr(video: Path, args: argparse.Namespace) -> dict:
    model, cfg = cr_model(args.size)
    sc = CRScoreConfig(patch_size=8, patch_stride=4, batch_size=args.batch)
    out = {}
    t = best_of({"batched": lambda: out.__setitem__("b", score_cr_video(model, video, cfg, sc, "cpu")),
                 "per_frame": lambda: out.__setitem__("p", score_cr_video(model, video, cfg, sc, "cpu", per_frame=True))},
                args.repeat)
    assert np.allclose(out["b"], out["p"], rtol=1e-4, atol=1e-6), "batched and per-frame scores differ"
    n = args.frames - 8 * cfg.frame_step
    return {"targets": n, "batched_s": t["batched"], "per_frame_s": t["per_frame"],
            "ratio": t["per_frame"] / t["batched"], "batched_ms_per_frame": 1000 * t["batched"] / n}


def bench_kr(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = HashNet(HashNetConfig()).eval()
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (2000, 192)).astype(np.float32)
    test = rng.normal(0, 1, (1000, 192)).astype(np.float32)
    tables = HashTables.build(hash_codes(model, train))
    out = {}

    def loop() -> None:
        out["p"] = np.array([snippet_scores(model, tables, test[i:i + 1])[0] for i in range(len(test))])

    t = best_of({"batched": lambda: out.__setitem__("b", snippet_scores(model, tables, test)), "per_snippet": loop},
                args.repeat)
    assert np.allclose(out["b"], out["p"], rtol=1e-5, atol=1e-6), "batched and per-snippet scores differ"
    return {"snippets": len(test), "batched_s": t["batched"], "per_snippet_s": t["per_snippet"],
            "ratio": t["per_snippet"] / t["batched"]}


def _child_peak(video: str, size: list[int], batch: int, threads: int) -> None:
    """Run in a fresh process: score ``video`` and print the peak RSS (MiB)."""
    import resource

    torch.set_num_threads(threads)
    model, cfg = cr_model(size)
    score_cr_video(model, video, cfg, CRScoreConfig(patch_size=8, patch_stride=4, stride=8, batch_size=batch), "cpu")
    print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def bench_memory(short: Path, long: Path, args: argparse.Namespace) -> dict:
    peaks = {}
    for name, video in (("short", short), ("long", long)):
        cmd = [sys.executable, __file__, "--child", str(video), "--size", *map(str, args.size), "--batch",
               str(args.batch), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
        peaks[name] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"]
    return {**{f"{k}_peak_mib": v for k, v in peaks.items()}, "growth": peaks["long"] / peaks["short"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", type=int, nargs=2, default=[48, 64], help="CR frame size [H, W] (the demo's)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        _child_peak(args.child, args.size, args.batch, args.threads)
        return 0
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        video = synthetic_video(Path(tmp) / "short", args.frames)
        cr = bench_cr(video, args)
        print(f"CR scoring, {cr['targets']} frames at {args.size[0]}x{args.size[1]}: batched ({args.batch}) "
              f"{cr['batched_s']:.2f} s ({cr['batched_ms_per_frame']:.1f} ms/frame), one frame per forward "
              f"{cr['per_frame_s']:.2f} s: ratio {cr['ratio']:.2f}x (target >= {MIN_CR_RATIO}x)")
        ok &= cr["ratio"] >= MIN_CR_RATIO
        kr = bench_kr(args)
        print(f"KR scoring, {kr['snippets']} snippets: batched {1000 * kr['batched_s']:.1f} ms, one snippet at a time "
              f"{1000 * kr['per_snippet_s']:.1f} ms: ratio {kr['ratio']:.1f}x (target >= {MIN_KR_RATIO}x)")
        ok &= kr["ratio"] >= MIN_KR_RATIO
        if not args.skip_memory:
            long = synthetic_video(Path(tmp) / "long", 4 * args.frames)
            mem = bench_memory(video, long, args)
            print(f"CR scoring peak RSS: {args.frames} frames {mem['short_peak_mib']:.0f} MiB, {4 * args.frames} "
                  f"frames {mem['long_peak_mib']:.0f} MiB: growth {mem['growth']:.2f}x (target < {MAX_PEAK_GROWTH}x)")
            ok &= mem["growth"] < MAX_PEAK_GROWTH
    print("OK" if ok else "BELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
