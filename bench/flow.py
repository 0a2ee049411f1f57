"""Stage 1 throughput: batched training and scoring against a per-sample loop, measured in the same run.

    python bench/flow.py [--segments 4096] [--loop-segments 256] [--device auto]

The batched paths are the pipeline's own (``train_flow`` streaming from HDF5 files, ``encode_flow`` writing the flow
HDF5), so file I/O is included; the baselines run the same model one segment at a time (the scoring baseline
with the same reads and writes, the training baseline from memory, which flatters it). Requires batched >= 10x loop.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from mgenet.engine.flow import FlowTrainConfig, encode_flow, train_flow

from mgenet.runtime import resolve_device
from mgenet.io import write_segments
from mgenet.models.flow import STGNF, FlowConfig

MIN_RATIO = 10.0


def synthetic_poses(n: int, seg_len: int, seed: int = 0) -> np.ndarray:
    """Random smooth pose segments (n, 2, T, 18), normalised as STG-NF does (mean removed, divided by y's std)."""
    rng = np.random.default_rng(seed)
    body = rng.normal(0, 1, (n, 2, 1, 18))
    drift = np.cumsum(rng.normal(0, 0.05, (n, 2, seg_len, 18)), axis=2)  # joints wander a little over time
    pose = body + drift
    pose -= pose.mean(axis=(2, 3), keepdims=True)
    pose /= pose[:, 1].std(axis=(1, 2))[:, None, None, None]
    return pose.astype(np.float32)


def write_videos(root: Path, pose: np.ndarray, per_video: int) -> list[Path]:
    paths = []
    for i, start in enumerate(range(0, len(pose), per_video)):
        p = pose[start:start + per_video]
        n, t = len(p), p.shape[2]
        arrays = {"pose": p, "confidence": np.ones((n, t, 18)), "keypoints": np.zeros((n, t, 18, 2)),
                  "boxes": np.zeros((n, t, 4)), "frames": np.zeros((n, t)), "person_id": np.zeros(n),
                  "start_frame": np.arange(n), "mid_frame": np.arange(n)}
        paths.append(root / f"video_{i:03d}.h5")
        write_segments(paths[-1], arrays, {"video": f"video_{i:03d}", "split": "train"})
    return paths


def loop_train(model_cfg: FlowConfig, train_cfg: FlowTrainConfig, pose: np.ndarray, device: torch.device) -> float:
    """Seconds to take one Adamax step per segment, batch of 1: the baseline."""
    torch.manual_seed(train_cfg.seed)
    model = STGNF(model_cfg).to(device).train()
    opt = torch.optim.Adamax(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    x_all = torch.from_numpy(pose).to(device)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(len(x_all)):
        _, nll = model.nll(x_all[i:i + 1])
        opt.zero_grad(set_to_none=True)
        nll.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
    _sync(device)
    return time.perf_counter() - t0


@torch.inference_mode()
def loop_score(model: STGNF, paths: list[Path], out_path: Path, limit: int,
               device: torch.device) -> tuple[int, float]:
    """The baseline for ``encode_flow``: the same work (read a segment from HDF5, score it, write its latent and NLL)
    one segment at a time. Returns (segments, seconds)."""
    n_done = 0
    _sync(device)
    t0 = time.perf_counter()
    with h5py.File(out_path, "w") as out:
        for path in paths:
            with h5py.File(path, "r") as src:
                n, *shape = src["pose"].shape
                n = min(n, limit - n_done)
                latent = out.create_dataset(f"{path.stem}/latent", (n, *shape), np.float32)
                nll = out.create_dataset(f"{path.stem}/nll", (n,), np.float32)
                for i in range(n):
                    z, s = model.nll(torch.from_numpy(src["pose"][i:i + 1]).to(device))
                    latent[i], nll[i] = z[0].cpu().numpy(), s[0].item()
            n_done += n
            if n_done >= limit:
                break
    return n_done, time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=4096, help="synthetic segments for the batched paths")
    ap.add_argument("--loop-segments", type=int, default=256, help="segments for the per-sample baselines")
    ap.add_argument("--seg-len", type=int, default=24)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    device = resolve_device(args.device)
    model_cfg = FlowConfig(seg_len=args.seg_len)
    train_cfg = FlowTrainConfig(epochs=1, batch_size=256, device=str(device), seed=0)
    pose = synthetic_poses(args.segments, args.seg_len)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_videos(Path(tmp), pose, per_video=256)
        model, history = train_flow(paths, model_cfg, train_cfg, log=lambda s: None)
        n_train = len(pose) * (2 if train_cfg.flip_augment else 1)
        rows.append(("train", "batched (256, from HDF5, flip x2)", n_train, history[0]["seconds"]))
        loop_pose = pose[:args.loop_segments]
        rows.append(("train", "per-sample loop (batch 1)", len(loop_pose), loop_train(model_cfg, train_cfg,
                                                                                    loop_pose, device)))
        _sync(device)
        t0 = time.perf_counter()
        encode_flow(model, paths, Path(tmp) / "flow.h5", batch_size=256, device=device)
        rows.append(("score", "batched (256, encode_flow to HDF5)", len(pose), time.perf_counter() - t0))
        rows.append(("score", "per-sample loop (batch 1, HDF5 to HDF5)",
                     *loop_score(model, paths, Path(tmp) / "loop.h5", args.loop_segments, device)))

    print(f"STG-NF flow, K={model_cfg.n_flows}, T={model_cfg.seg_len}, temporal kernel "
          f"{model_cfg.temporal_kernel}, {sum(p.numel() for p in model.parameters())} parameters; device {device}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"{'task':<6} {'path':<40} {'segments':>8} {'seconds':>8} {'segments/s':>11}")
    rate = {}
    for task, path, n, sec in rows:
        rate.setdefault(task, []).append(n / sec)
        print(f"{task:<6} {path:<40} {n:>8} {sec:>8.2f} {n / sec:>11.0f}")
    ok = True
    for task, (batched, loop) in rate.items():
        ratio = batched / loop
        ok &= ratio >= MIN_RATIO
        print(f"{task}: batched / loop = {ratio:.1f}x (required >= {MIN_RATIO:.0f}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
