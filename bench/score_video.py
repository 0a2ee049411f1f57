"""The whole ``mgenet score-video`` with stage 1 only, as a user with an imported STG-NF checkpoint runs it: frames/s
per stage, and peak memory on a clip and on the same clip 10x in a row (flat: ratio <= 1.3).

    python bench/score_video.py [--frames 40] [--people 6] [--threads 1] [--config my_config.yaml] [--no-video]

The clip is ``bench/footage.py``'s crowd of photographs of real people (768x576, 25 fps). The checkpoint has the
official STG-NF layout and ShanghaiTech's shape (K=8, seg_len 24) with random weights (tests/helpers.py), imported
with ``mgenet import-stgnf``: the scores mean nothing, the work done is the real one. Each run is a fresh process;
its peak RSS (``VmHWM``) and its ``provenance.json`` (seconds and frames/s per stage) are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from footage import make_crowd_video

MAX_RSS_RATIO = 1.3


def checkpoint(folder: Path) -> Path:
    from helpers import official_stgnf_state, save_official_stgnf

    from mgenet.cli import main

    tar = save_official_stgnf(folder / "stgnf.tar", official_stgnf_state(K=8, tk=13, T=24))
    assert main(["import-stgnf", str(tar), "--out", str(folder / "models" / "flow.pt")]) == 0
    return folder / "models"


def score(video: Path, models: Path, out: Path, threads: int, config: str, video_out: bool) -> tuple[float, dict]:
    args = ["--threads", str(threads), "score-video", str(video), "--models", str(models), "--out", str(out)]
    args += ["--config", config] if config else []
    args += [] if video_out else ["--no-video"]
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would include this (parent) process's RSS
    code = ("import sys; from mgenet.cli import main; "
            f"rc = main({args!r}); "
            "print(int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024); sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"score-video failed:\n{res.stderr[-3000:]}")
    return float(res.stdout.strip().splitlines()[-1]), json.loads((out / "provenance.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--people", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--config", default="", help="a config.yaml whose pose section to use (default: the defaults)")
    ap.add_argument("--no-video", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mgenet-bench-sv-"))
    models = checkpoint(tmp)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"score-video, stage 1 only (imported STG-NF checkpoint), crowd clip of {args.people} people, 768x576, "
          f"{args.threads} thread(s), CPU; load average {load} on {os.cpu_count()} CPUs")
    rss = {}
    for k in (1, 10):
        video = make_crowd_video(tmp / f"crowd{k}x.mp4", args.frames, args.people, repeat=k)
        rss[k], prov = score(video, models, tmp / f"out{k}", args.threads, args.config, not args.no_video)
        rates = ", ".join(f"{s} {v:g}" for s, v in prov["frames_per_second"].items())
        pose = prov.get("pose_extraction") or {}
        print(f"  {prov['frames']:5d} frames ({k}x): {prov['frames_per_second']['total']:.2f} frames/s in all, "
              f"{pose.get('persons_per_frame', float('nan')):.2f} persons/frame; peak RSS {rss[k]:.0f} MiB\n"
              f"      frames/s per stage: {rates}")
    ratio = rss[10] / rss[1]
    print(f"  memory: peak RSS {rss[1]:.0f} -> {rss[10]:.0f} MiB for 10x the frames: ratio {ratio:.2f} "
          f"({'flat' if ratio <= MAX_RSS_RATIO else 'GROWS'}; limit {MAX_RSS_RATIO})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
