"""Stage 2 throughput: the batched engine against a per-clip loop in the same run, and peak memory per batch size.

    python bench/stage2.py [--arch both|paper|small] [--clips 128] [--loop-clips 16] [--threads N] [--device auto]
                           [--amp on|off|both] [--crop 32 16]

Both paths are the pipeline's own code on demo-shaped clips (T=24 -> t=12, a 32x16 crop -> 4x2 tokens, C_b = C_s =
192) stored in features/flow HDF5 files, so reading is included: training is ``train_stage2`` with one epoch of each
phase (the per-clip loop is the same with batch_size=1), scoring is ``score_stage2`` (batch_size=1 for the loop).
``paper`` is the default architecture (ViT dim 256, depth 4, heads 4); ``small`` (dim 64, depth 2) is the size a
CPU demo can afford. Peak memory per batch size is measured for one level-1 step, one level-2 step and one scoring
batch: from torch.profiler's allocation events on CPU, torch.cuda.max_memory_allocated on a GPU. ``--amp`` sets the
training config's ``amp`` (bfloat16 autocast on a GPU that has it, float16 with loss scaling otherwise; CPU runs ignore
it); ``both`` measures everything twice, AMP on then off, in the same run. ``--crop 128 64`` gives real data's token
grid (16 x 8 per step, P = 1536 tokens) instead of the demo's 4 x 2.
"""

from __future__ import annotations

import functools

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import torch

from mgenet.runtime import autocast as runtime_autocast, resolve_device
from mgenet.engine.stage2 import Stage2Config, score_stage2, train_stage2
from mgenet.engine.stage2_data import ClipSource
from mgenet.models.masking import clip_mask_pairs, keep_indices, random_masks
from mgenet.models.mgenet import MGENet

MIN_RATIO = 10.0
T, t, h, w, C = 24, 12, 4, 2, 192
ARCHS = {"paper": {}, "small": {"dim": 64, "depth": 2, "heads": 2, "c_app": 64, "n_behaviour": 32}}


def write_videos(root: Path, n_clips: int, per_video: int = 48, seed: int = 0) -> list[tuple[Path, Path]]:
    """Features files (tokens chunked one clip per chunk, as extract_features writes them) and one flow file."""
    rng = np.random.default_rng(seed)
    flow = root / "flow" / "train.h5"
    flow.parent.mkdir(parents=True)
    (root / "features").mkdir()
    pairs = []
    for i, start in enumerate(range(0, n_clips, per_video)):
        n, video = min(per_video, n_clips - start), f"video_{i:03d}"
        keys = {"person_id": np.zeros(n, np.int32), "start_frame": np.arange(n, dtype=np.int32),
                "mid_frame": np.arange(n, dtype=np.int32) + T // 2}
        with h5py.File(root / "features" / f"{video}.h5", "w") as f:
            f.create_dataset("tokens", data=rng.normal(size=(n, t, h, w, C)).astype(np.float16),
                             chunks=(1, t, h, w, C))
            f["scene"] = rng.normal(size=C).astype(np.float32)
            for k, v in keys.items():
                f[k] = v
            f.attrs["video"] = video
        with h5py.File(flow, "a") as g:
            g[f"{video}/latent"] = rng.normal(size=(n, 2, T, 18)).astype(np.float32)
            for k, v in keys.items():
                g[f"{video}/{k}"] = v
        pairs.append((root / "features" / f"{video}.h5", flow))
    return pairs


def config(arch: str, batch_size: int, device: str, amp: bool = True, workers: int = 0) -> Stage2Config:
    return Stage2Config.from_dict({"model": ARCHS[arch], "train": {
        "level1_epochs": 1, "level2_epochs": 1, "matching_epochs": 1, "batch_size": batch_size, "device": device,
        "block_rows": max(batch_size, 16), "amp": amp, "num_workers": workers}})


def subset(pairs: list, n_clips: int) -> list:
    """The first videos holding at least ``n_clips`` clips."""
    out, n = [], 0
    for p in pairs:
        if n >= n_clips:
            break
        with h5py.File(p[0]) as f:
            n += f["tokens"].shape[0]
        out.append(p)
    return out


def throughput(arch: str, pairs: list, loop_pairs: list, root: Path, device: str, amp: bool,
               workers: int = 0) -> dict[str, float]:
    """clips/s of each path: per training phase (wall clock, from the engine's history), for scoring, and for the
    whole training run and scoring by process CPU time too (robust to other jobs on a shared machine)."""
    rates: dict[str, float] = {}
    for name, bs, use in (("batched", 64, pairs), ("loop", 1, loop_pairs)):
        ckpt = root / f"{arch}_{name}.pt"
        n = len(ClipSource(use))
        cpu0 = time.process_time()
        history = train_stage2(use, config(arch, bs, device, amp, workers), ckpt, log=lambda s: None)
        rates[f"train_cpu_{name}"] = n * len(history) / (time.process_time() - cpu0)
        for row in history:
            rates[f"train_{row['phase']}_{name}"] = row["clips_per_s"]
        _sync(device)
        t0, cpu0 = time.perf_counter(), time.process_time()
        score_stage2(ckpt, use, batch_size=256 if bs > 1 else 1, device=device)
        _sync(device)
        rates[f"score_{name}"] = n / (time.perf_counter() - t0)
        rates[f"score_cpu_{name}"] = n / (time.process_time() - cpu0)
    return rates


def _sync(device: str) -> None:
    if resolve_device(device).type == "cuda":
        torch.cuda.synchronize()


def peak_memory(arch: str, batch_size: int, device_name: str, amp: bool) -> dict[str, float]:
    """Peak memory (MiB) that one training step of each level and one scoring batch add on top of the model."""
    device = resolve_device(device_name)
    torch.manual_seed(0)
    cfg = config(arch, batch_size, device_name, amp).model
    autocast = functools.partial(runtime_autocast, device, amp)
    shape = {"t": t, "h": h, "w": w, "in_dim": C, "seg_len": T, "c_mo": 36, "scene_dim": C}
    model = MGENet(replace(cfg, **shape)).to(device)
    x = torch.randn(batch_size, t, h, w, C, device=device)
    f_sk, scene = torch.randn(batch_size, 2, T, 18, device=device), torch.randn(batch_size, C, device=device)
    keep = keep_indices(random_masks(batch_size, h, w, model.cfg.mask, np.random.default_rng(0)), t).to(device)
    m1, m2 = clip_mask_pairs(0, ["v"] * batch_size, range(batch_size), h, w, model.cfg.mask)
    k1, k2 = keep_indices(m1, t).to(device), keep_indices(m2, t).to(device)

    def level1() -> None:
        with autocast():
            loss = model.level1_losses(x, f_sk, scene)["loss"]
        loss.backward()
        model.zero_grad(set_to_none=True)

    def level2() -> None:
        with autocast():
            loss = model.level2_losses(x, keep)["loss"]
        loss.backward()
        model.zero_grad(set_to_none=True)

    def score() -> None:
        with torch.no_grad(), autocast():
            model.scores(x, f_sk, scene, k1, k2)

    return {name: _peak(fn, device) for name, fn in (("level1", level1), ("level2", level2), ("score", score))}


def _peak(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    # CPU: replay the profiler's allocation events in time order; the running total's maximum is the peak of the
    # memory allocated inside fn (at op granularity).
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["both", *ARCHS], default="paper")
    parser.add_argument("--clips", type=int, default=128, help="clips of the batched runs")
    parser.add_argument("--loop-clips", type=int, default=16, help="clips of the per-clip runs")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", choices=["on", "off", "both"], default="on",
                        help="mixed precision of the training config (GPU only; a CPU run ignores it)")
    parser.add_argument("--workers", type=int, default=0, help="stage2.train.num_workers (HDF5 reading processes)")
    parser.add_argument("--crop", type=int, nargs=2, default=[32, 16], metavar=("H", "W"),
                        help="person crop size whose token grid (H/8 x W/8) the clips have")
    args = parser.parse_args()
    global h, w
    h, w = args.crop[0] // 8, args.crop[1] // 8
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {args.threads} intra-op thread(s); clips: "
          f"{args.clips} batched (batch 64 train, 256 score), {args.loop_clips} per-clip; token grid {t}x{h}x{w}")
    archs = list(ARCHS) if args.arch == "both" else [args.arch]
    ok = True
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs = write_videos(root, args.clips)
        loop_pairs = subset(pairs, args.loop_clips)
        amps = {"on": [True], "off": [False], "both": [True, False]}[args.amp] if device.type == "cuda" else [False]
        for arch, amp in ((a, m) for a in archs for m in amps):
            r = throughput(arch, pairs, loop_pairs, root, args.device, amp, args.workers)
            print(f"\n[{arch}, AMP {'on' if amp else 'off'}] {ARCHS[arch] or 'defaults: dim 256, depth 4, heads 4'}")
            print(f"{'path':<22}{'batched clips/s':>16}{'per-clip clips/s':>18}{'ratio':>8}")
            for name in ("train_level1", "train_level2", "train_matching", "score", "train_cpu", "score_cpu"):
                ratio = r[f"{name}_batched"] / r[f"{name}_loop"]
                # on a GPU, process CPU time is the host's launch overhead, not throughput: only wall clock counts
                ok &= ratio >= MIN_RATIO or (device.type == "cuda" and "cpu" in name)
                label = name.replace("_cpu", " (CPU time)") if "cpu" in name else f"{name} (wall)"
                print(f"{label:<22}{r[f'{name}_batched']:>16.1f}{r[f'{name}_loop']:>18.1f}{ratio:>7.1f}x")
            unit = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "torch.profiler allocations"
            print(f"peak memory per batch size, MiB above the model ({unit}):")
            print(f"{'batch':>7}{'level-1 step':>14}{'level-2 step':>14}{'score':>8}")
            for b in args.batch_sizes:
                p = peak_memory(arch, b, args.device, amp)
                print(f"{b:>7}{p['level1']:>14.1f}{p['level2']:>14.1f}{p['score']:>8.1f}")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; batched >= {MIN_RATIO:.0f}x per-clip "
          f"{'in wall clock' if device.type == 'cuda' else 'everywhere'}: "
          f"{'yes' if ok else 'NO'}")
    if not ok and device.type == "cpu":
        print("On a CPU both paths do the same FLOPs per clip, and a 96-token ViT at batch 1 already runs its matmuls "
              "near a core's throughput, so batching can only remove the per-clip overhead (op dispatch, optimiser "
              "steps, reads); the ratio is bounded by that share, not by the engine.")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
