"""The papers' presets under config/ (MGENet and STG-NF alone, on ShanghaiTech and UBnormal): each says where every
value comes from, keeps the papers' settings over config.yaml's demo sizes, and dry-runs on a tiny dataset in its
layout as a user passes it (`snakemake --configfile config/<preset>.yaml`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from helpers import REPO, copy_workflow, make_stgnf_dataset, make_ubnormal_dataset, snakemake_env
from snakemake.utils import update_config, validate

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
# preset -> (layout, seg_len, stage 2)
PRESETS = {"shanghaitech": ("stgnf", 24, True), "ubnormal": ("ubnormal", 16, True),
           "shanghaitech_stgnf": ("stgnf", 24, False), "ubnormal_stgnf": ("ubnormal", 16, False)}
N_FRAMES = {"stgnf": 60, "ubnormal": 50}  # make_stgnf_dataset's and make_ubnormal_dataset's defaults


def preset(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())


def merged(name: str) -> dict:
    """config.yaml with the preset merged over it, key by key, as `snakemake --configfile` does."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, preset(name))
    validate(config, SCHEMA, set_default=True)
    return config


@pytest.mark.parametrize("name", PRESETS)
def test_every_value_says_where_it_comes_from(name):
    bad = []
    for n, line in enumerate((REPO / "config" / f"{name}.yaml").read_text().splitlines(), 1):
        body = line.split("#", 1)[0]
        if re.match(r"^\s*[A-Za-z_.]+:\s*\S", body) and "#" not in line:  # a key with a value on its line
            bad.append(f"{n}: {line}")
    assert bad == [], "values without a source comment (or [choice] with the reason)"


@pytest.mark.parametrize("name", PRESETS)
def test_preset_sets_the_papers_values_over_the_demo(name):
    layout, seg_len, stage2 = PRESETS[name]
    config = merged(name)
    assert config["dataset"]["layout"] == layout and not config["dataset"]["generate"]
    assert config["dataset"]["name"] not in {"demo", *(n for n in PRESETS if n != name)}  # its own results/ folder
    assert config["segments"]["seg_len"] == seg_len and config["segments"]["train_stride"] == 6
    flow = config["flow"]
    assert (flow["model"]["n_flows"], flow["model"]["prior_mean"], flow["train"]["epochs"],
            flow["train"]["batch_size"], flow["train"]["lr"]) == (8, 3.0, 8, 256, 0.0005)  # STG-NF's args.py
    assert config["stage2"]["enabled"] is stage2
    if stage2:  # the paper's sizes and optimiser, not config.yaml's CPU demo ones
        m, t = config["stage2"]["model"], config["stage2"]["train"]
        assert (m["dim"], m["depth"], m["n_behaviour"], m["n_scene"], m["n_matching"], m["top_k"]) == \
            (256, 4, 128, 32, 64, 4)
        assert (m["memory_temperature"], m["matching_balance"], m["centre_scene"]) == (1.0, False, False)
        assert (t["optimizer"], t["lr"], t["momentum"], t["level1_epochs"], t["level2_epochs"]) == \
            ("sgd", 0.0001, 0.5, 10, 10)
        assert config["fusion"]["weights"] == {"mo": 1.0, "app": 0.1, "mm": 0.1}  # Eq. 16
        assert config["features"]["crop"] == [128, 64] and config["features"]["weights"] != "random"
    else:
        # config.yaml's stage-2 weights merge in and are dropped without stage 2 (common.smk): S_nf alone
        assert {k: w for k, w in config["fusion"]["weights"].items() if k not in ("mo", "app", "mm")} == {"nf": 1.0}
        assert not config["crkr"]["enabled"] and not config["arnet"]["enabled"]
        assert config["dataset"]["resolution"]  # pose only: no video gives the frame size


def _write_video(path: Path, n_frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for f in range(n_frames):
        out.write(np.full((240, 320, 3), (f * 4) % 256, np.uint8))
    out.release()


def tiny_dataset(root: Path, layout: str, videos: bool) -> Path:
    """make_*_dataset's pose files and ground truth in the layout, with a small video per pose file if asked."""
    (make_stgnf_dataset if layout == "stgnf" else make_ubnormal_dataset)(root)
    if videos:
        for pose in root.glob("pose/*/*.json"):
            name = pose.name.split("_alphapose")[0]
            where = root / "videos" / pose.parent.name if layout == "stgnf" else root / "Scene1"
            _write_video(where / f"{name}.mp4", N_FRAMES[layout])
    return root


def planned(proc: subprocess.CompletedProcess) -> set[str]:
    stats = (proc.stdout + proc.stderr).split("Job stats")[-1].split("Reasons")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", stats, re.MULTILINE)} - {"total", "all"}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_dry_runs_on_a_tiny_dataset_in_its_layout(name, tmp_path):
    layout, _, stage2 = PRESETS[name]
    wd = copy_workflow(tmp_path)
    (wd / "config").mkdir()
    shutil.copy(REPO / "config" / f"{name}.yaml", wd / "config")
    root = tiny_dataset(wd / "data", layout, videos=stage2)
    if stage2:  # the Swin checkpoint must exist for the DAG; a dry run never reads it
        weights = wd / preset(name)["features"]["weights"]
        weights.parent.mkdir(parents=True)
        weights.write_bytes(b"stand-in")
    (wd / "here.yaml").write_text(yaml.safe_dump({"dataset": {"root": str(root)}}))
    results = f"results/{preset(name)['dataset']['name']}"

    def snakemake(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "snakemake", "--configfile", f"config/{name}.yaml", "here.yaml", "--cores", "1",
               *args]
        proc = subprocess.run(cmd, check=False, cwd=wd, env=snakemake_env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc

    # the manifest first (a checkpoint: a dry run cannot see past it), then the whole DAG dry
    snakemake(f"{results}/manifest.csv")
    proc = snakemake("-n")
    jobs = planned(proc)
    assert {"import_pose", "build_segments", "train_flow", "encode_flow", "score_components", "fuse_scores",
            "evaluate"} <= jobs
    assert ({"extract_features", "train_stage2"} <= jobs) is stage2
    assert not jobs & {"train_cr", "train_kr", "train_arnet"}  # baselines off in every preset
    assert "Traceback" not in proc.stdout + proc.stderr
