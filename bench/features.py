"""Feature extraction throughput, decoder speed and memory flatness, each against a baseline measured in this run.

    python bench/features.py [--max-frames 96] [--repeat 5] [--crop 32 16] [--threads 2] [--skip-memory]
                             [--device cpu|cuda|auto] [--amp auto|bf16|fp16|off]

1. clips/s of the whole extraction of one demo-sized video (decode, crops, backbone, scene feature, HDF5 write)
   against the bare backbone forward on the same batches of ready, normalised tensors. Requires >= 0.8.
2. decode frames/s of decord (``get_batch``, as the pipeline reads) against PyAV (sequential decode) on the same file.
3. memory (RSS of a fresh process) extracting a video and one 10x as long: must level off, not grow with the length.
4. features.layout window vs track on one whole demo test video at test stride 1, in the same run: backbone seconds
   and token bytes per test window (target: track >= 10x less of both), and how much the tokens of the same window
   differ between the layouts (relative to the tokens, and to how much consecutive windows differ).
5. peak memory of layout track for one person tracked over a video and one 10x as long (test stride 1): flat.
6. the real-data estimate table (ShanghaiTech, UBnormal) of both layouts, from stated dataset sizes (see ``REAL``).

The video is the demo dataset's first test video when ``results/demo`` has one (``--video``/``--segments`` pick
another), else a synthetic one of the demo's size (320x240, 240 frames, walking figures) with STG-NF test windows
(stride 1). Only the windows within its first ``--max-frames`` frames are extracted (the backbone dominates: a whole
demo video takes minutes on 2 cores), and both measurements are repeated alternately, best of each kept, so that a
busy machine slows both alike.
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

from mgenet.runtime import resolve_device
from mgenet.features.crops import normalise_clips, widen_boxes
from mgenet.features.decode import even_frames, open_frames
from mgenet.features.extract import ClipStream, FeatureConfig, FeatureStats, extract_video_features
from mgenet.runtime import autocast
from mgenet.features.plan import plan_crops
from mgenet.features.swin import build_swin_stages12
from mgenet.io import provenance, read_segments, write_segments
from mgenet.pose.segments import SegmentConfig, build_segments
from mgenet.pose.skeleton import boxes_from_keypoints

MIN_RATIO = 0.8
# Peak RSS (VmHWM) with 10x the frames, relative to 1x. Not 1.0: the heaps settle only after some batches (the short
# run ends near that point), so the steady state is checked too: RSS at the end of the long run vs 10% into it.
MAX_PEAK_GROWTH = 1.3


# --------------------------------------------------------------------------------------------- synthetic video


def _pose(x: float, y: float, h: float) -> np.ndarray:
    """A COCO-17 standing figure (17, 3) with its feet at (x, y)."""
    rel = np.array([[0, -1.0], [-0.03, -1.02], [0.03, -1.02], [-0.06, -1.0], [0.06, -1.0], [-0.12, -0.82],
                    [0.12, -0.82], [-0.15, -0.62], [0.15, -0.62], [-0.16, -0.45], [0.16, -0.45], [-0.08, -0.5],
                    [0.08, -0.5], [-0.08, -0.25], [0.08, -0.25], [-0.08, 0.0], [0.08, 0.0]])
    return np.concatenate([rel * h + [x, y], np.full((17, 1), 0.9)], axis=1).astype(np.float32)


def make_video(root: Path, frames: int, people: int, seg_len: int, split: str, stride: int,
               size: tuple[int, int] = (320, 240)) -> tuple[Path, Path]:
    """A synthetic mp4 of ``people`` walking figures and its segments file."""
    w, h = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 64 * 4], -1).astype(np.uint8)
    tracks = [(rng.uniform(20, w - 20), rng.uniform(h * 0.5, h - 10), rng.uniform(-1, 1), rng.uniform(40, 80),
               tuple(int(c) for c in rng.integers(40, 255, 3))) for _ in range(people)]
    poses: dict[int, dict[int, np.ndarray]] = {p: {} for p in range(people)}
    video = root / f"video_{frames}.mp4"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for f in range(frames):
        img = background.copy()
        for p, (x0, y, vx, ph, colour) in enumerate(tracks):
            x = 20 + (x0 + vx * f - 20) % (w - 40)  # walk, wrapping around inside the frame
            kp = _pose(x, y, ph)
            poses[p][f] = kp
            x1, y1, x2, y2 = boxes_from_keypoints(kp[None])[0].astype(int)
            cv2.rectangle(img, (x1, y1), (x2, y2), colour, -1)
        out.write(img)
    out.release()
    cfg = SegmentConfig(seg_len=seg_len, train_stride=stride, test_stride=stride)
    seg = root / f"segments_{frames}.h5"
    write_segments(seg, build_segments(poses, w, h, split, cfg),
                   provenance("bench", video=video.stem, split=split, seg_len=seg_len, stride=stride))
    return video, seg


def first_frames(segments: Path, max_frames: int, out: Path) -> Path:
    """A copy of a segments file keeping only the windows that end before ``max_frames``."""
    import h5py

    from mgenet.io import SEGMENT_DTYPES

    with h5py.File(segments) as f:
        keep = f["frames"][()].max(axis=1) < max_frames
        arrays = {k: f[k][()][keep] for k in SEGMENT_DTYPES}
        attrs = dict(f.attrs)
    write_segments(out, arrays, attrs)
    return out


def find_demo_video() -> tuple[Path, Path] | None:
    man = Path("results/demo/manifest.csv")
    if not man.exists():
        return None
    import pandas as pd

    df = pd.read_csv(man, dtype={"video": str}, keep_default_na=False)
    for r in df[df["split"] == "test"].itertuples():
        seg = Path(f"results/demo/segments/{r.video}.h5")
        if r.video_path and Path(r.video_path).exists() and seg.exists():
            return Path(r.video_path), seg
    return None


# ------------------------------------------------------------------------------------------------ measurements


def ready_batches(video: Path, segments: Path, cfg: FeatureConfig) -> list[torch.Tensor]:
    """The pipeline's own clip batches, decoded, cropped and normalised ahead of time."""
    seg, _ = read_segments(segments, ("boxes", "frames", "person_id", "start_frame", "mid_frame"))
    reader = open_frames(video)
    boxes = widen_boxes(seg["boxes"], reader.width, reader.height, cfg.widen)
    stream = ClipStream(reader, plan_crops(seg["frames"], boxes), cfg, even_frames(reader.n_frames, cfg.scene_frames))
    out = [normalise_clips(torch.from_numpy(clips)) for rows, clips in stream if not isinstance(rows, str)]
    reader.close()
    return out


@torch.inference_mode()
def bare_forward(model: torch.nn.Module, batches: list[torch.Tensor], device: torch.device, amp: str) -> float:
    """Seconds for the backbone alone on ready tensors already on the device (with the pipeline's autocast)."""
    ctx = autocast(device, amp)
    _sync(device)
    t0 = time.perf_counter()
    with ctx:
        for x in batches:
            model(x)
    _sync(device)
    return time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def pipeline(model: torch.nn.Module, video: Path, segments: Path, cfg: FeatureConfig, out: Path,
             threads: int, device: torch.device) -> tuple[float, str]:
    attrs = {"video": video.stem, "split": "test", "scene": "0", "config_hash": "bench",
             "checkpoint_sha256": "random:0"}
    stats = extract_video_features(video, segments, out, cfg, model, device, attrs, threads=threads)
    return stats.seconds, stats.summary()


def decode_rates(video: Path, chunk: int) -> tuple[float, float, int]:
    import av

    reader = open_frames(video)
    n = reader.n_frames
    t0 = time.perf_counter()
    for lo in range(0, n, chunk):
        reader.get(np.arange(lo, min(lo + chunk, n)))
    t_decord = time.perf_counter() - t0
    reader.close()
    t0 = time.perf_counter()
    with av.open(str(video)) as container:
        m = sum(1 for frame in container.decode(video=0) if frame.to_ndarray(format="rgb24") is not None)
    t_av = time.perf_counter() - t0
    assert m == n, (m, n)
    return n / t_decord, n / t_av, n


CHILD = """
import json, sys, threading, time
import numpy as np, torch
from mgenet.features.extract import FeatureConfig, extract_video_features, run_backbone, scene_feature
from mgenet.features.swin import build_swin_stages12

threads = int(sys.argv[5])
torch.set_num_threads(threads)
cfg = FeatureConfig.from_dict(json.loads(sys.argv[1]))
m = build_swin_stages12(seed=0)
run_backbone(m, np.zeros((cfg.batch_size, 24, *cfg.crop, 3), np.uint8), torch.device("cpu"))  # warm-up
scene_feature(m, np.zeros((240, 320, 3), np.uint8), cfg.scene_size, torch.device("cpu"))
def hwm():  # this process's peak RSS (MiB); ru_maxrss would include the parent's at fork (kept across exec)
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024

base = hwm()
samples, running = [], [True]

def sample():
    while running[0]:
        samples.append(int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6)
        time.sleep(0.02)

threading.Thread(target=sample, daemon=True).start()
s = extract_video_features(sys.argv[2], sys.argv[3], sys.argv[4], cfg, m, torch.device("cpu"),
                           {"video": "v", "split": "train", "scene": "0", "config_hash": "",
                            "checkpoint_sha256": "random:0"}, threads=threads)
running[0] = False
at = {f"{q}%": samples[min(int(q / 100 * len(samples)), len(samples) - 1)] for q in (10, 50, 100)}
print(json.dumps({"base": base, "peak": hwm(), "at": at,
                  "clips": s.clips, "frames": s.frames_decoded, "peak_crops": s.peak_crops, "seconds": s.seconds}))
"""


def memory_child(video: Path, segments: Path, cfg: FeatureConfig, out: Path, threads: int) -> dict:
    """A fresh process builds the backbone, runs one batch and the scene (base), then extracts one video while a
    thread samples its RSS: peak RSS, and RSS at 10%, 50% and 100% of the extraction's duration."""
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg.to_dict()), str(video), str(segments),
                           str(out), str(threads)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path)
    ap.add_argument("--segments", type=Path)
    ap.add_argument("--frames", type=int, default=240, help="frames of the synthetic video (the demo's length)")
    ap.add_argument("--max-frames", type=int, default=96, help="extract the windows within these first frames")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--seg-len", type=int, default=24)
    ap.add_argument("--crop", type=int, nargs=2, default=[32, 16])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (the memory test always runs on the CPU)")
    ap.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto",
                    help="features.amp: mixed precision of the backbone on a GPU (a CPU run is float32 regardless)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true", help="skip [1] and [2]")
    ap.add_argument("--skip-layouts", action="store_true", help="skip [4] and [5]")
    ap.add_argument("--memory-frames", type=int, default=2000, help="length of the short video of the memory test")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = FeatureConfig.from_dict({"weights": "random", "crop": args.crop, "batch_size": args.batch_size,
                                   "amp": args.amp})
    tmp = Path(tempfile.mkdtemp(prefix="mgenet-bench-"))
    if args.video and args.segments:
        video, segments = args.video, args.segments
    elif found := find_demo_video():
        video, segments = found
    else:
        video, segments = make_video(tmp, args.frames, args.people, args.seg_len, "test", 1)
    full_segments = segments
    if args.max_frames:
        segments = first_frames(segments, args.max_frames, tmp / "segments_subset.h5")
    print(f"video {video} ({open_frames(video).n_frames} frames), segments {segments}; crop {list(cfg.crop)}, "
          f"batch {cfg.batch_size}, {args.threads} torch threads, {device} amp {cfg.amp} "
          f"({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), decoder thread "
          f"{'on' if cfg.use_prefetch(device) else 'off'}")

    t0 = time.perf_counter()
    model = build_swin_stages12(seed=0).to(device)
    print(f"backbone build (mmaction2 import + init, once per job): {time.perf_counter() - t0:.1f} s")
    ok = True
    if not args.skip_throughput:
        ok &= throughput(args, model, video, segments, cfg, device, tmp)
    if not args.skip_memory:
        ok &= memory(args, cfg, tmp, "window")
    if not args.skip_layouts:
        ok &= compare_layouts(model, video, full_segments, cfg, args.threads, device, max(args.repeat // 2, 1), tmp)
        if not args.skip_memory:
            ok &= memory(args, cfg, tmp, "track")
    real_estimates(cfg)
    return 0 if ok else 1


def throughput(args: argparse.Namespace, model: torch.nn.Module, video: Path, segments: Path, cfg: FeatureConfig,
               device: torch.device, tmp: Path) -> bool:
    batches = [b.to(device) for b in ready_batches(video, segments, cfg)]
    n_clips = sum(len(b) for b in batches)
    bare_forward(model, batches[:1], device, cfg.amp)  # warm-up
    # alternate the two, ABBA, so that a noisy neighbour on the machine hits both alike; keep the best of each
    t_bare, t_pipe, summary = [], [], ""
    for i in range(args.repeat):
        for which in (("bare", "pipe") if i % 2 == 0 else ("pipe", "bare")):
            if which == "bare":
                t_bare.append(bare_forward(model, batches, device, cfg.amp))
            else:
                t, summary = pipeline(model, video, segments, cfg, tmp / "features.h5", args.threads, device)
                t_pipe.append(t)
    bare, pipe = n_clips / min(t_bare), n_clips / min(t_pipe)
    ratio = pipe / bare
    print(f"    runs (s): bare {[round(t, 1) for t in t_bare]}, whole {[round(t, 1) for t in t_pipe]}")
    print(f"\n[1] {n_clips} clips  bare forward {bare:.1f} clips/s  whole extraction {pipe:.1f} clips/s  "
          f"ratio {ratio:.2f} (>= {MIN_RATIO}: {'PASS' if ratio >= MIN_RATIO else 'FAIL'})")
    print(f"    pipeline: {summary}")

    fps_decord, fps_av, n = decode_rates(video, cfg.decode_chunk)
    print(f"\n[2] decode {n} frames: decord get_batch {fps_decord:.0f} frames/s, PyAV sequential {fps_av:.0f} "
          f"frames/s (decord/PyAV {fps_decord / fps_av:.2f})")
    return ratio >= MIN_RATIO


def memory(args: argparse.Namespace, cfg: FeatureConfig, tmp: Path, layout: str) -> bool:
    """[3] window: one person, training windows (stride = seg_len, so every frame is decoded); [5] track: one person
    tracked over the whole video, test windows (stride 1: both phases of every frame go through the backbone, in
    chunks). Batches of 8 and 16x8 crops keep the backbone's share of the time small. The short video still runs
    enough batches (>= 10) for glibc's heap to reach its steady state: the first few batches of a run grow it, then
    it stays put."""
    mem_cfg = FeatureConfig.from_dict({**cfg.to_dict(), "batch_size": 8, "crop": [16, 8], "prefetch": "auto",
                                       "layout": layout})
    label, split, stride = ("[3]", "train", args.seg_len) if layout == "window" else ("[5] track:", "test", 1)
    rows = []
    for frames in (args.memory_frames, 10 * args.memory_frames):
        v, sg = make_video(tmp, frames, 1, args.seg_len, split, stride)
        r = memory_child(v, sg, mem_cfg, tmp / f"mem_{layout}_{frames}.h5", args.threads)
        rows.append((frames, r))
        at = ", ".join(f"{k} {v:.0f}" for k, v in r["at"].items())
        print(f"\n{label} {r['frames']:>6} frames decoded, {r['clips']:>5} clips in {r['seconds']:.0f} s: peak RSS "
              f"{r['peak']:.0f} MB (model + warm-up batch {r['base']:.0f} MB); RSS through the run (MB): {at}; "
              f"crops held at most {r['peak_crops']}")
    (f1, r1), (f10, r10) = rows
    steady = r10["at"]["100%"] <= 1.1 * r10["at"]["10%"]
    ok_mem = steady and r10["peak"] <= MAX_PEAK_GROWTH * r1["peak"]
    whole = f10 * 240 * 320 * 3 / 1e6
    print(f"    {f10 // f1}x the frames: peak RSS {r10['peak'] / r1['peak']:.2f}x; over the long run RSS goes "
          f"{r10['at']['10%']:.0f} -> {r10['at']['100%']:.0f} MB from 10% to 100% of it while 9x more frames are "
          f"decoded (holding its decoded frames would take {whole:.0f} MB): "
          f"{'flat: PASS' if ok_mem else 'grows: FAIL'}")
    return ok_mem


MIN_LAYOUT_RATIO = 10.0


def compare_layouts(model: torch.nn.Module, video: Path, segments: Path, cfg: FeatureConfig, threads: int,
                    device: torch.device, repeat: int, tmp: Path) -> bool:
    """[4] Both layouts on one whole video, alternated ``repeat`` times (best backbone time of each kept)."""
    from mgenet.io import read_features

    attrs = {"video": video.stem, "split": "test", "scene": "0", "config_hash": "bench",
             "checkpoint_sha256": "random:0"}
    best: dict[str, FeatureStats] = {}
    paths = {lay: tmp / f"layout_{lay}.h5" for lay in ("window", "track")}
    for i in range(repeat):
        for lay in (("window", "track") if i % 2 == 0 else ("track", "window")):
            c = FeatureConfig.from_dict({**cfg.to_dict(), "layout": lay})
            st = extract_video_features(video, segments, paths[lay], c, model, device, attrs, threads=threads)
            if lay not in best or st.forward_s < best[lay].forward_s:
                best[lay] = st
    n = best["window"].clips
    print(f"\n[4] layouts on {video.name}, {n} test windows (stride 1), crop {list(cfg.crop)}, best of {repeat}:")
    for lay, st in best.items():
        print(f"    {lay:<7} backbone {st.forward_s:6.1f} s = {1e3 * st.forward_s / n:6.1f} ms/window "
              f"({st.backbone_frames} frames through it), tokens {st.token_bytes / 1e6:6.2f} MB = "
              f"{st.token_bytes / n / 1e3:6.1f} kB/window, file {paths[lay].stat().st_size / 1e6:6.2f} MB, "
              f"whole extraction {st.seconds:.1f} s")
    w, t = best["window"], best["track"]
    r_time, r_bytes = w.forward_s / t.forward_s, w.token_bytes / t.token_bytes
    r_file = paths["window"].stat().st_size / paths["track"].stat().st_size
    ok = min(r_time, r_bytes) >= MIN_LAYOUT_RATIO
    print(f"    window / track: backbone seconds {r_time:.1f}x, "
          f"backbone frames {w.backbone_frames / t.backbone_frames:.1f}x, "
          f"token bytes {r_bytes:.1f}x, file {r_file:.1f}x (>= {MIN_LAYOUT_RATIO:.0f}x: {'PASS' if ok else 'FAIL'})")
    a = read_features(paths["window"], ("tokens", "person_id"))[0]
    b = read_features(paths["track"], ("tokens",))[0]["tokens"].astype(np.float32)
    ta = a["tokens"].astype(np.float32)
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    rel = np.linalg.norm(flat(ta - b), axis=1) / np.linalg.norm(flat(ta), axis=1)
    cos = (flat(ta) * flat(b)).sum(1) / np.linalg.norm(flat(ta), axis=1) / np.linalg.norm(flat(b), axis=1)
    same = a["person_id"][1:] == a["person_id"][:-1]
    nxt = np.linalg.norm(flat(ta[1:] - ta[:-1]), axis=1)[same] / np.linalg.norm(flat(ta[:-1]), axis=1)[same]
    print(f"    the same window's tokens, window vs track layout: relative difference ||a - b|| / ||a|| mean "
          f"{rel.mean():.3f}, median {np.median(rel):.3f}, max {rel.max():.3f}; cosine mean {cos.mean():.3f}. "
          f"For scale, consecutive windows of one person (window layout) differ by {nxt.mean():.3f} on average")
    return ok


# [6] Real-data estimates, from dataset sizes (frames per split: ShanghaiTech as the issue / STG-NF count them, UBnormal
# as its paper gives them) and an assumed crowd: persons per frame and the length of a track. The ratios depend on the
# track length and the stride, not on the number of persons; sizes scale with persons per frame.
REAL = {
    "ShanghaiTech": {"seg_len": 24, "splits": {"train": (330, 274_515, 6), "test": (107, 40_791, 1)}},
    "UBnormal": {"seg_len": 16, "splits": {"train": (268, 116_087, 6), "validation": (64, 28_175, 1),
                                           "test": (211, 92_640, 1)}},
}
PERSONS_PER_FRAME = 3
TRACK_FRAMES = 150


def real_estimates(cfg: FeatureConfig) -> None:
    """Counts of synthetic pose tracks of the stated sizes, through the same code as ``mgenet features --estimate``."""
    from mgenet.features.estimate import estimate_table, layout_counts, pose_windows

    real_cfg = FeatureConfig.from_dict({**cfg.to_dict(), "crop": [128, 64]})
    for name, spec in REAL.items():
        counts = []
        for split, (videos, frames, stride) in spec["splits"].items():
            seg_cfg = SegmentConfig(seg_len=spec["seg_len"], train_stride=stride, test_stride=stride)
            per_video = frames // videos
            n_tracks = max(round(PERSONS_PER_FRAME * per_video / TRACK_FRAMES), 1)
            # tracks of TRACK_FRAMES frames staggered over the video (the last ones cut at its end)
            starts = np.linspace(0, max(per_video - TRACK_FRAMES, 0), n_tracks).astype(int)
            poses = {p: {f: None for f in range(s, min(s + TRACK_FRAMES, per_video))} for p, s in enumerate(starts)}
            fr, pid = pose_windows(poses, seg_cfg, "train" if split == "train" else "test")
            c = layout_counts(fr, pid, real_cfg)
            counts += [{"video": f"{split}{v}", "split": split, "exact": True, **c} for v in range(videos)]
        print(f"\n[6] {name}: {sum(v for v, _, _ in spec['splits'].values())} videos, {PERSONS_PER_FRAME} persons per "
              f"frame in tracks of {TRACK_FRAMES} frames (assumed), strides "
              f"{ {k: s for k, (_, _, s) in spec['splits'].items()} }")
        print(estimate_table(counts, real_cfg, spec["seg_len"]))


if __name__ == "__main__":
    sys.exit(main())
