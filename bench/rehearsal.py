"""Full-scale rehearsal of the pose-only path: a ShanghaiTech-sized pose set in STG-NF's layout, and its DAG run.

    python bench/rehearsal.py make DIR [--scale 1.0] [--persons 5.0] [--seed 0]
    python bench/rehearsal.py table DIR            # after the run: per-stage wall time and peak RSS, file sizes

``make`` writes ``DIR/data`` (``pose/{train,test}/<video>_alphapose_tracked_person.json``,
``gt/test_frame_mask/<video>.npy``, no videos), ``DIR/rehearsal.yaml`` (dataset keys to put beside
``config/shanghaitech_stgnf.yaml``) and ``DIR/one_epoch.yaml`` (``flow.train.epochs: 1``, to measure one epoch of
training where eight take too long). Run the DAG with the config files, e.g.

    nice -n 10 /usr/bin/time -v snakemake --cores 2 --configfile config/shanghaitech_stgnf.yaml DIR/rehearsal.yaml \
        DIR/one_epoch.yaml

What is real and what is assumed:
- 330 training and 107 test videos with 274,515 and 40,791 frames in all (the dataset's published totals, Liu et al.
  CVPR 2018). No public source found here lists each video's frame count, so the counts are drawn from a lognormal
  around the mean length and scaled to the exact totals: plausible lengths, not the real ones.
- Video names follow ShanghaiTech's pattern (train ``SS_CCC`` over scenes 01-13, test ``SS_CCCC`` over 01-12, scenes
  assigned in turn), and the test set holds the six videos STG-NF's ShanghaiTech-HR leaves out (01_0130, 01_0135,
  01_0136, 06_0144, 06_0145, 12_0152), so that protocol is exercised; the other names are not the real ones.
- Persons per frame: no published per-frame count was found; assumed ``--persons`` (default 5) tracked persons on
  average, as tracks of mean length 150 frames (about 6 s at 24 fps) entering and leaving at random, with 3% of
  detections missed (gaps that the windows' ``max_missing`` has to handle).
- Anomalies: each test video has one or two anomalous intervals covering about 40% of its frames in all, during
  which one extra person runs (fast, with large limb swings), so the scores have something to find.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

TRAIN_VIDEOS, TEST_VIDEOS = 330, 107
TRAIN_FRAMES, TEST_FRAMES = 274_515, 40_791
HR_SKIP = ("01_0130", "01_0135", "01_0136", "06_0144", "06_0145", "12_0152")  # STG-NF dataset.py
SUFFIX = "_alphapose_tracked_person.json"
WIDTH, HEIGHT = 856, 480
TRACK_LEN = 150.0
MISS_RATE = 0.03

# COCO-17 standing pose relative to the feet, in body heights (x right, y down)
_REST = np.array([[0, -1.0], [-0.03, -1.02], [0.03, -1.02], [-0.06, -1.0], [0.06, -1.0],
                  [-0.12, -0.82], [0.12, -0.82], [-0.15, -0.62], [0.15, -0.62], [-0.16, -0.45],
                  [0.16, -0.45], [-0.08, -0.5], [0.08, -0.5], [-0.08, -0.25], [0.08, -0.25],
                  [-0.08, 0.0], [0.08, 0.0]])
_SWING = np.zeros((17, 2))  # x offset per unit of gait phase: wrists and ankles swing opposite to each other
_SWING[[7, 9], 0], _SWING[[8, 10], 0] = 0.06, -0.06
_SWING[[13, 15], 0], _SWING[[14, 16], 0] = -0.08, 0.08


def frame_counts(n: int, total: int, rng: np.random.Generator) -> np.ndarray:
    """n lengths around total / n (lognormal, sigma 0.4, at least 120), scaled to sum to exactly total."""
    raw = np.maximum(rng.lognormal(0.0, 0.4, n), 0.3)
    counts = np.maximum(np.floor(raw / raw.sum() * total).astype(int), 120)
    counts[np.argmax(counts)] += total - counts.sum()
    return counts


def video_names(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    train = [f"{1 + i % 13:02d}_{1 + i // 13:03d}" for i in range(TRAIN_VIDEOS)]
    taken = {int(n[3:]) for n in HR_SKIP}
    numbers = [c for c in range(14, 14 + TEST_VIDEOS + len(HR_SKIP)) if c not in taken][:TEST_VIDEOS - len(HR_SKIP)]
    test = sorted([f"{1 + i % 12:02d}_{c:04d}" for i, c in enumerate(numbers)] + list(HR_SKIP))
    return train, test


def track(n_frames: int, start: int, length: int, rng: np.random.Generator, run: bool = False) -> dict[str, dict]:
    """One tracked person: {frame key: {keypoints, scores}} for the frames it is seen in."""
    frames = np.arange(max(start, 0), min(start + length, n_frames))
    frames = frames[rng.random(frames.size) >= MISS_RATE]
    if frames.size < 2:
        return {}
    y = rng.uniform(0.35, 0.95) * HEIGHT + rng.normal(0, 0.2) * (frames - frames[0])
    height = 0.12 * HEIGHT + 0.25 * y  # perspective: nearer (lower) people are taller
    speed = rng.uniform(4.0, 7.0) if run else rng.uniform(0.3, 2.0)
    x = rng.uniform(0, WIDTH) + rng.choice([-1, 1]) * speed * (frames - frames[0])
    phase = np.sin(frames * (0.5 if run else 0.25) + rng.uniform(0, 6.3))
    swing = (3.0 if run else 1.0) * phase[:, None, None] * _SWING
    xy = (_REST + swing) * height[:, None, None] + np.stack([x, y], -1)[:, None, :]
    xy += rng.normal(0, 1.0, xy.shape)
    score = np.clip(rng.normal(0.75, 0.15, (frames.size, 17)), 0.05, 1.0)
    kp = np.concatenate([xy, score[..., None]], -1).round(2)
    return {f"{f:04d}": {"keypoints": k.reshape(-1).tolist(), "scores": round(float(s.mean()), 4)}
            for f, k, s in zip(frames.tolist(), kp, score)}


def video_poses(n_frames: int, persons: float, rng: np.random.Generator,
                intervals: list[tuple[int, int]] = ()) -> dict[str, dict]:
    n_tracks = max(1, rng.poisson(persons * (n_frames + TRACK_LEN) / TRACK_LEN))
    tracks = [track(n_frames, int(rng.integers(-int(TRACK_LEN), n_frames)),
                    int(rng.exponential(TRACK_LEN)) + 24, rng) for _ in range(n_tracks)]
    tracks += [track(n_frames, a, b - a, rng, run=True) for a, b in intervals]
    return {str(i): t for i, t in enumerate(t for t in tracks if t)}


def anomalous_intervals(n_frames: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    k = int(rng.integers(1, 3))
    lengths = rng.dirichlet(np.ones(k)) * 0.4 * n_frames
    out, lo = [], 0
    for i, length in enumerate(lengths):
        hi = n_frames * (i + 1) // k
        a = int(rng.integers(lo, max(lo + 1, hi - int(length))))
        out.append((a, min(a + max(int(length), 24), n_frames)))
        lo = hi
    return out


def make(out: Path, scale: float, persons: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    root = out / "data"
    train, test = video_names(rng)
    n_train, n_test = max(2, round(TRAIN_VIDEOS * scale)), max(2, round(TEST_VIDEOS * scale))
    counts = {"train": frame_counts(TRAIN_VIDEOS, TRAIN_FRAMES, rng)[:n_train],
              "test": frame_counts(TEST_VIDEOS, TEST_FRAMES, rng)[:n_test]}
    rows = []
    for split, names in (("train", train[:n_train]), ("test", test[:n_test])):
        (root / "pose" / split).mkdir(parents=True, exist_ok=True)
        for name, n in zip(names, counts[split].tolist()):
            intervals = anomalous_intervals(n, rng) if split == "test" else []
            poses = video_poses(n, persons, rng, intervals)
            (root / "pose" / split / f"{name}{SUFFIX}").write_text(json.dumps(poses, separators=(",", ":")))
            if split == "test":
                gt = np.zeros(n, np.uint8)
                for a, b in intervals:
                    gt[a:b] = 1
                (root / "gt" / "test_frame_mask").mkdir(parents=True, exist_ok=True)
                np.save(root / "gt" / "test_frame_mask" / f"{name}.npy", gt)
            dets = sum(len(t) for t in poses.values())
            rows.append({"video": name, "split": split, "frames": n, "tracks": len(poses), "detections": dets})
            print(f"{split} {name}: {n} frames, {len(poses)} tracks, {dets / n:.2f} persons/frame", flush=True)
    with open(out / "videos.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "rehearsal.yaml").write_text(
        f"# dataset keys for the rehearsal set (bench/rehearsal.py make), beside config/shanghaitech_stgnf.yaml\n"
        f"dataset:\n  name: rehearsal\n  root: {root.resolve()}\n")
    (out / "one_epoch.yaml").write_text("flow:\n  train:\n    epochs: 1   # one epoch measured, eight extrapolated\n")
    for split in ("train", "test"):
        sel = [r for r in rows if r["split"] == split]
        print(f"{split}: {len(sel)} videos, {sum(r['frames'] for r in sel)} frames, "
              f"{sum(r['detections'] for r in sel) / sum(r['frames'] for r in sel):.2f} persons/frame")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def table(out: Path, results: Path) -> None:
    """Per rule, from Snakemake's benchmark TSVs: jobs, summed and median job wall seconds, median job CPU seconds,
    largest peak RSS; then the sizes of the inputs and of each results/ folder."""
    bench: dict[str, list[tuple[float, float, float]]] = {}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.stem if tsv.parent.name == "benchmarks" else tsv.parent.name
        with open(tsv) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        bench.setdefault(rule, []).append((float(row["s"]), float(row["cpu_time"]), float(row["max_rss"])))
    print("| rule | jobs | wall s (sum) | wall s (median job) | CPU s (median job) | peak RSS MB (largest job) |")
    print("|---|---:|---:|---:|---:|---:|")
    for rule, rows in bench.items():
        wall, cpu, rss = (np.array(c) for c in zip(*rows))
        print(f"| `{rule}` | {len(rows)} | {wall.sum():.0f} | {np.median(wall):.1f} | {np.median(cpu):.2f} | "
              f"{rss.max():.0f} |")
    print()
    print("| files | size MB |")
    print("|---|---:|")
    for p in [out / "data" / "pose" / "train", out / "data" / "pose" / "test", *sorted(results.iterdir())]:
        if p.name not in {"logs", "benchmarks"}:
            print(f"| `{p.name if p.parent == results else p.relative_to(out)}` | {_size(p) / 1e6:.1f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out", type=Path)
    m.add_argument("--scale", type=float, default=1.0, help="fraction of the videos to write (1.0: all)")
    m.add_argument("--persons", type=float, default=5.0, help="assumed mean tracked persons per frame")
    m.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("table")
    t.add_argument("out", type=Path)
    t.add_argument("--results", type=Path, default=Path("results/rehearsal"))
    args = p.parse_args(argv)
    if args.cmd == "make":
        make(args.out, args.scale, args.persons, args.seed)
    else:
        table(args.out, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
