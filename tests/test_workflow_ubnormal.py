"""UBnormal with its object annotations through snakemake: STG-NF's supervised setting with the preset
(config/ubnormal_stgnf_supervised.yaml), and RBDC / TBDC from the test videos' masks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import REPO, copy_workflow, run_snakemake, walking_track, write_ubnormal_annotations

from mgenet.io import ALPHAPOSE_SUFFIX, write_alphapose

N = 60
W, H = 320, 240


def anomalous_video(root: Path, name: str, folder: str, rng: np.random.Generator) -> None:
    """A walker and a runner; the runner (object 2) is anomalous in frames 20..49, its mask its body's box."""
    walker = walking_track(range(N), 40, 200, 1.0, rng)
    runner = walking_track(range(N), 60, 120, 3.0, rng)
    write_alphapose({0: walker, 1: runner}, root / "pose" / folder / f"{name}{ALPHAPOSE_SUFFIX}")
    masks = []
    for f in range(N):
        m = np.zeros((H, W), np.uint8)
        x1, y1 = runner[f][:, :2].min(axis=0).astype(int) - 2
        x2, y2 = runner[f][:, :2].max(axis=0).astype(int) + 3
        m[max(y1, 0):y2, max(x1, 0):x2] = 2
        masks.append(m)
    write_ubnormal_annotations(root, name, masks, "2,20,49\n")


def make_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("normal_scene_1_scenario_1", "normal_scene_2_scenario_1"):
        write_alphapose({0: walking_track(range(N), 40, 200, 1.0, rng), 1: walking_track(range(N), 90, 150, 1.0, rng)},
                        root / "pose" / "train" / f"{name}{ALPHAPOSE_SUFFIX}")
    anomalous_video(root, "abnormal_scene_1_scenario_2", "abnormal_train", rng)
    anomalous_video(root, "abnormal_scene_2_scenario_2", "abnormal_train", rng)
    anomalous_video(root, "abnormal_scene_1_scenario_3", "test", rng)
    write_alphapose({0: walking_track(range(N), 40, 200, 1.0, rng)},
                    root / "pose" / "test" / f"normal_scene_2_scenario_3{ALPHAPOSE_SUFFIX}")
    gt = np.ones(N)
    gt[20:50] = 0  # STG-NF's test files: NumPy under a _tracks.txt name, 1 = normal
    with open(root / "gt" / "abnormal_scene_1_scenario_3_tracks.txt", "wb") as f:
        np.save(f, gt)
    with open(root / "gt" / "normal_scene_2_scenario_3_tracks.txt", "wb") as f:
        np.save(f, np.ones(N))
    return root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("ub")
    copy_workflow(wd)
    (wd / "ub" / "gt").mkdir(parents=True)
    make_dataset(wd / "ub")
    cfg = yaml.safe_load((REPO / "config" / "ubnormal_stgnf_supervised.yaml").read_text())
    cfg["dataset"].update({"name": "ubtiny", "root": "ub", "resolution": [W, H]})
    cfg["segments"].update({"seg_len": 12, "train_stride": 3})
    cfg["flow"]["model"].update({"n_flows": 2})
    cfg["flow"]["train"].update({"epochs": 2, "batch_size": 64})
    cfg["evaluation"] = {"bootstrap": 0}
    cfg["arnet"] = {"enabled": False}
    (wd / "sup.yaml").write_text(yaml.safe_dump(cfg))
    (wd / "unsup.yaml").write_text(yaml.safe_dump({**cfg, "flow": {**cfg["flow"], "train": {
        **cfg["flow"]["train"], "supervised": False}}}))
    run_snakemake(wd, "sup.yaml", 2)
    return wd


def test_supervised_training_with_the_preset_records_its_labels(workdir: Path) -> None:
    r = workdir / "results" / "ubtiny"
    man = (r / "manifest.csv").read_text()
    assert man.count(",abnormal_train,") == 2
    labels = {p.stem: np.loadtxt(p, delimiter=",", skiprows=1, dtype=int)[:, 3] for p in (r / "labels").glob("*.csv")}
    assert sorted(labels) == ["abnormal_scene_1_scenario_2", "abnormal_scene_2_scenario_2"]
    n_neg = sum(int((lab == -1).sum()) for lab in labels.values())
    assert n_neg > 0 and all((lab == 1).any() for lab in labels.values())  # the walker stays normal
    ck = torch.load(r / "models" / "flow.pt", weights_only=True)
    assert ck["train_config"]["supervised"] and ck["model_config"]["prior_mean"] == 10.0
    counts = ck["window_labels"]
    assert counts["label_-1"] > 0 and counts["label_-1"] <= n_neg
    log = (r / "logs" / "flow" / "train_flow.log").read_text()
    m = re.search(r"(\d+) windows labelled 1 .* (\d+) labelled -1", log)
    assert m and (int(m.group(1)), int(m.group(2))) == (counts["label_1"], counts["label_-1"])


def test_ubnormal_runs_report_rbdc_and_tbdc_from_the_masks(workdir: Path) -> None:
    r = workdir / "results" / "ubtiny"
    boxes = (r / "gt" / "anomaly_boxes.csv").read_text().splitlines()
    assert boxes[0] == "video,track,frame,x1,y1,x2,y2" and len(boxes) == 1 + 30  # frames 20..49, end included
    assert all(b.startswith("abnormal_scene_1_scenario_3,2,") for b in boxes[1:])
    metrics = json.loads((r / "eval" / "metrics.json").read_text())
    nf = metrics["scores"]["nf"]
    assert 0.0 <= nf["rbdc"] <= 1.0 and 0.0 <= nf["tbdc"] <= 1.0


def test_abnormal_train_is_left_alone_without_the_supervised_setting(workdir: Path) -> None:
    proc = run_snakemake(workdir, "unsup.yaml", 1, "-n", "--forceall", "--quiet", "rules")
    assert "label_windows" not in proc.stdout
    # the index would drop abnormal_train: its params change, so it reruns
    assert "index_dataset" in proc.stdout and "train_flow" in proc.stdout
