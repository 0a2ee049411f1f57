"""AR-Net throughput: batched (padded, masked) training and scoring against one forward per video, in one run.

    python bench/arnet.py [--videos 238] [--epochs 5] [--device auto]

Synthetic bags sized like ShanghaiTech's weak split (238 training videos, 175 normal and 63 anomalous, 17-95
snippets of 16 frames each, D = 192). Both paths are the pipeline's own ``train_arnet`` / ``score_videos``, with the
same loss and batches; only the forward differs (``mode``). Prints the ratio per-video / batched.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mgenet.baselines.engine.arnet import ARNetTrainConfig, Bags, score_videos, train_arnet
from mgenet.runtime import resolve_device


def bags(n: int, seed: int = 0, dim: int = 192) -> Bags:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) < round(n * 63 / 238)).astype(np.int64)
    feats = [rng.normal(size=(int(rng.integers(17, 96)), dim)).astype(np.float32) for _ in range(n)]
    for f, y in zip(feats, labels):
        if y:
            f[: max(len(f) // 8, 1), :8] += 2.0
    return Bags(feats, labels, [f"v{i}" for i in range(n)])


def timed(fn, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=238)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=30)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    b = bags(args.videos)
    cfg = ARNetTrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=str(device))
    print(f"AR-Net, {args.videos} videos ({int(b.labels.sum())} anomalous), {sum(len(f) for f in b.features)} "
          f"snippets, D = {b.features[0].shape[1]}, {args.epochs} epochs of batches of {args.batch_size}, {device}, "
          f"{torch.get_num_threads()} torch threads")
    times = {}
    for mode in ("batched", "per_video"):
        times[("train", mode)], (model, rec) = timed(lambda: train_arnet(b, cfg, mode=mode), device)
        times[("score", mode)], _ = timed(lambda: score_videos(model, b.features, rec["mean"], rec["std"], device,
                                                               mode=mode), device)
    for stage in ("train", "score"):
        batched, per_video = times[(stage, "batched")], times[(stage, "per_video")]
        print(f"{stage:<6} batched {batched:8.3f} s   per video {per_video:8.3f} s   ratio {per_video / batched:6.1f}x")


if __name__ == "__main__":
    main()
