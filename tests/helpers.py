"""Small hand-made fixtures shared by the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from mgenet.io import ALPHAPOSE_SUFFIX, write_alphapose

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(workdir: Path) -> Path:
    """The Snakefile, default config, rules and envs in ``workdir``, so a test runs snakemake as a user would,
    without touching the checkout's results or lock."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, workdir / name)
    shutil.copytree(REPO / "workflow", workdir / "workflow")
    shutil.copytree(REPO / "envs", workdir / "envs")
    return workdir


def snakemake_env() -> dict[str, str]:
    """The environment for a snakemake subprocess: this interpreter's bin first, so rules find its `mgenet`."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def run_snakemake(workdir: Path, configfile: str, cores: int, *args: str,
                  check: bool = True) -> subprocess.CompletedProcess:
    """``snakemake --configfile CONFIGFILE --cores N ARGS`` in ``workdir``; with ``check``, a failure raises with
    snakemake's stderr and the tail of every rule log. (--configfile takes several values: --cores ends them, so
    targets in ``args`` stay targets.)"""
    cmd = [sys.executable, "-m", "snakemake", "--configfile", configfile, "--cores", str(cores), *args]
    proc = subprocess.run(cmd, cwd=workdir, env=snakemake_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in workdir.glob("results/*/logs/**/*.log"))
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-4000:]}\n{logs}")
    return proc


def standing_pose(x: float, y: float, h: float = 60.0, score: float = 0.9) -> np.ndarray:
    """A plausible COCO-17 standing pose (17, 3) with its feet at (x, y) and height h."""
    rel = np.array([[0, -1.0], [-0.03, -1.02], [0.03, -1.02], [-0.06, -1.0], [0.06, -1.0],  # head
                    [-0.12, -0.82], [0.12, -0.82], [-0.15, -0.62], [0.15, -0.62], [-0.16, -0.45],
                    [0.16, -0.45], [-0.08, -0.5], [0.08, -0.5], [-0.08, -0.25], [0.08, -0.25],
                    [-0.08, 0.0], [0.08, 0.0]])
    xy = rel * h + [x, y]
    return np.concatenate([xy, np.full((17, 1), score)], axis=1).astype(np.float32)


def walking_track(frames: range, x0: float, y: float, vx: float, rng: np.random.Generator) -> dict:
    track = {}
    for f in frames:
        kp = standing_pose(x0 + vx * (f - frames.start), y)
        kp[:, :2] += rng.normal(0, 0.5, (17, 2))
        track[f] = kp
    return track


def make_stgnf_dataset(root: Path, n_frames: int = 60, seed: int = 0) -> Path:
    """STG-NF / ShanghaiTech layout without videos: 2 train and 2 test videos, test masks with one interval."""
    rng = np.random.default_rng(seed)
    for split, names in (("train", ["01_001", "02_001"]), ("test", ["01_0014", "02_0003"])):
        for name in names:
            poses = {1: walking_track(range(0, n_frames), 20, 100, 1.5, rng),
                     2: walking_track(range(5, n_frames - 5), 200, 150, -1.0, rng)}
            write_alphapose(poses, root / "pose" / split / f"{name}{ALPHAPOSE_SUFFIX}")
            if split == "test":
                gt = np.zeros(n_frames, np.uint8)
                gt[30:45] = 1
                (root / "gt" / "test_frame_mask").mkdir(parents=True, exist_ok=True)
                np.save(root / "gt" / "test_frame_mask" / f"{name}.npy", gt)
    return root


def make_ubnormal_dataset(root: Path, n_frames: int = 50, seed: int = 0) -> Path:
    """UBnormal layout with STG-NF pose files and UBnormal tracks files, no videos."""
    rng = np.random.default_rng(seed)
    names = {"train": ["normal_scene_1_scenario_1", "normal_scene_2_scenario_3"],
             "test": ["abnormal_scene_1_scenario_2", "normal_scene_2_scenario_1"]}
    for split, videos in names.items():
        for name in videos:
            poses = {0: walking_track(range(0, n_frames), 30, 120, 1.0, rng)}
            write_alphapose(poses, root / "pose" / split / f"{name}{ALPHAPOSE_SUFFIX}")
    (root / "gt").mkdir(parents=True, exist_ok=True)
    (root / "gt" / "abnormal_scene_1_scenario_2_tracks.txt").write_text("0,10,19\n3,40,44\n")
    return root


def write_ubnormal_annotations(root: Path, video: str, masks: list[np.ndarray], tracks: str,
                               tracks_name: str = "tracks") -> Path:
    """A video's annotation folder exactly as UBnormal ships it: ``Scene{N}/{video}_annotations/`` holding one
    ``{video}_{frame:04d}_gt.png`` per frame (pixel value = object id) and ``{video}_{tracks_name}.txt``."""
    from PIL import Image

    scene = video.split("_scene_")[1].split("_")[0]
    folder = root / f"Scene{scene}" / f"{video}_annotations"
    folder.mkdir(parents=True, exist_ok=True)
    for frame, mask in enumerate(masks):
        Image.fromarray(mask.astype(np.uint8), mode="L").save(folder / f"{video}_{frame:04d}_gt.png")
    (folder / f"{video}_{tracks_name}.txt").write_text(tracks)
    return folder
