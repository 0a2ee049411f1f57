"""Small hand-made fixtures shared by the tests."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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


def mount_tmpfs(folder: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` on ``folder``, or skip the test saying why it cannot."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which only root can mount")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=False,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")


def _stgnf_bn(g: torch.Generator, prefix: str, c: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": 1 + 0.2 * torch.randn(c, generator=g),
            f"{prefix}.bias": 0.2 * torch.randn(c, generator=g),
            f"{prefix}.running_mean": 0.5 * torch.randn(c, generator=g),
            f"{prefix}.running_var": 0.5 + torch.rand(c, generator=g),
            f"{prefix}.num_batches_tracked": torch.tensor(40)}


def official_stgnf_state(K: int = 3, R: float = 3.0, tk: int = 5, hidden: int = 0, invconv: bool = False,
                   edge_importance: bool = False, seed: int = 0, T: int = 8) -> dict[str, torch.Tensor]:
    """A state dict in STG-NF's layout (model_pose.py / stgcn.py) with random values, for windows of T frames."""
    V = 18
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {"prior_h": torch.zeros(1, 4, T, V),
                                   "prior_h_normal": torch.cat([torch.full((2, T, V), R), torch.zeros(2, T, V)]),
                                   "prior_h_abnormal": torch.cat([torch.full((2, T, V), -R), torch.zeros(2, T, V)])}
    widths = [1, 2] if hidden == 0 else [1, hidden, 2]
    for k in range(K):
        p = f"flow.layers.{k}"
        sd[f"{p}.actnorm.bias"] = 0.3 * torch.randn(1, 2, 1, 1, generator=g)
        sd[f"{p}.actnorm.logs"] = 0.3 * torch.randn(1, 2, 1, 1, generator=g)
        if invconv:
            lower, upper = torch.randn(2, 2, generator=g), torch.randn(2, 2, generator=g)
            sd.update({f"{p}.invconv.p": torch.tensor([[0.0, 1.0], [1.0, 0.0]]),
                       f"{p}.invconv.sign_s": torch.tensor([1.0, -1.0]), f"{p}.invconv.lower": lower,
                       f"{p}.invconv.upper": upper,
                       f"{p}.invconv.log_s": 0.2 * torch.randn(2, generator=g)})
        for b, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            q = f"{p}.block.{b}"
            sd[f"{q}.gcn.conv.weight"] = 0.5 * torch.randn(cout, cin, 1, 1, generator=g)
            sd[f"{q}.gcn.conv.bias"] = 0.2 * torch.randn(cout, generator=g)
            sd.update(_stgnf_bn(g, f"{q}.tcn.0", cout))
            sd[f"{q}.tcn.2.weight"] = 0.3 * torch.randn(cout, cout, tk, 1, generator=g)
            sd[f"{q}.tcn.2.bias"] = 0.2 * torch.randn(cout, generator=g)
            sd.update(_stgnf_bn(g, f"{q}.tcn.3", cout))
            if k > 0 and cin != cout:
                sd[f"{q}.residual.0.weight"] = 0.5 * torch.randn(cout, cin, 1, 1, generator=g)
                sd[f"{q}.residual.0.bias"] = 0.2 * torch.randn(cout, generator=g)
                sd.update(_stgnf_bn(g, f"{q}.residual.1", cout))
            if edge_importance:
                sd[f"{p}.edge_importance.{b}"] = 0.5 + torch.rand(1, V, V, generator=g)
    return sd


def save_official_stgnf(path: Path, sd: dict[str, torch.Tensor], **args) -> Path:
    """``sd`` saved as the official STG-NF code saves a checkpoint (its args as an argparse.Namespace)."""
    seg_len = sd["prior_h"].shape[2] if "prior_h" in sd else 8  # an empty state dict: a window length all the same
    ns = argparse.Namespace(seg_len=seg_len, K=sum(k.endswith("actnorm.bias") for k in sd), L=1, R=3.0, hidden_dim=0,
                            temporal_kernel=None, flow_permutation="invcov", strategy="uniform", max_hop=8,
                            seed=6276204685895611204, batch_size=256, epochs=8)
    for k, v in args.items():
        setattr(ns, k, v)
    torch.save({"epoch": 8, "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}, "args": ns}, path)
    return path


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


def wait_gone(p, timeout: float) -> None:
    """Wait up to ``timeout`` s for the psutil.Process ``p`` to end; if it is still there, kill it and fail: a job
    that outlives the run that started it."""
    import psutil

    try:
        p.wait(timeout)
    except psutil.TimeoutExpired:
        p.kill()
        raise AssertionError(f"the job (pid {p.pid}) outlived the run that started it by {timeout} s") from None
