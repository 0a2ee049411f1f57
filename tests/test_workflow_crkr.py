"""The two-stream baseline (CR + KR) in the DAG: `snakemake` on a tiny config with stage 2 off (the baseline does not
need it), checking its artifacts, its columns in the evaluation, and that its training reads no test file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import copy_workflow, run_snakemake

TINY_CRKR = {
    "dataset": {"name": "tiny"},
    "demo": {"n_scenes": 3, "train_videos_per_scene": 2, "test_videos_per_scene": 2, "frames": 96,
             "width": 160, "height": 120},
    "segments": {"seg_len": 12, "train_stride": 3},
    "flow": {"model": {"n_flows": 2}, "train": {"epochs": 2, "batch_size": 64, "lr": 0.001}},
    "stage2": {"enabled": False},
    "fusion": {"weights": {"nf": 1.0}},
    "arnet": {"enabled": False},  # AR-Net has its own DAG test (test_workflow.py)
    "snippets": {"size": [32, 48], "batch_size": 8},
    "crkr": {"enabled": True,
             "cr": {"model": {"width": 8},
                    "train": {"size": [32, 48], "epochs": 1, "iterations": 4, "batch_size": 8, "lr": 0.001},
                    "score": {"patch_size": 8, "patch_stride": 4, "stride": 8}},
             "kr": {"snippet_len": 8, "train": {"epochs": 5}}},
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("wf_crkr")
    copy_workflow(wd)
    (wd / "tiny.yaml").write_text(yaml.safe_dump(TINY_CRKR))
    run_snakemake(wd, "tiny.yaml", 2)
    return wd


def test_crkr_artifacts_and_metrics(workdir):
    r = workdir / "results" / "tiny"
    man = pd.read_csv(r / "manifest.csv", dtype={"video": str})
    test = man[man["split"] == "test"]
    scores = pd.read_parquet(r / "scores" / "baselines" / "crkr.parquet")
    assert list(scores.columns) == ["video", "frame", "cr", "kr", "crkr"]
    assert len(scores) == test["frames"].sum() and scores[["cr", "kr", "crkr"]].notna().all().all()
    for stream in ("train_cr", "score_cr", "train_kr", "score_kr"):
        assert (r / "benchmarks" / "crkr" / f"{stream}.tsv").exists()
    for row in man.itertuples():  # KR's snippets: every training and test video (not validation), at 8 frames
        assert (r / "snippets" / "len8" / f"{row.video}.h5").exists() == (row.split != "val"), row.video
    frames = pd.read_parquet(r / "scores" / "frames.parquet")
    assert {"cr", "kr", "crkr"} <= set(frames.columns) and "fused" in frames.columns
    m = json.loads((r / "eval" / "metrics.json").read_text())
    for name in ("cr", "kr", "crkr"):
        s = m["scores"][name]
        assert s["supervision"] == "unsupervised" and 0.0 <= s["micro_auc"] <= 1.0
        assert "fused_vs_this" in s  # compared with MGENet's fused score like any component
    paper = m["paper_protocol"]["crkr"]
    assert paper["sigmas"] == {"cr": 9.0, "kr": 32.0}
    assert set(paper["scores"]) == {"cr", "kr", "crkr"}
    assert all(0.0 <= v["micro_auc"] <= 1.0 for v in paper["scores"].values())


def test_training_reads_no_test_file(workdir):
    r = workdir / "results" / "tiny"
    man = pd.read_csv(r / "manifest.csv", dtype={"video": str})
    proc = run_snakemake(workdir, "tiny.yaml", 1, "-n", "-p", "--forcerun", "train_cr", "train_kr",
                         "--", "results/tiny/models/cr.pt", "results/tiny/models/kr.pt")
    out = proc.stdout
    cr = re.search(r"mgenet .*train-cr .*", out).group(0)
    kr = re.search(r"mgenet .*train-kr .*", out).group(0)
    for row in man.itertuples():
        in_cr, in_kr = row.video_path in cr, f"len8/{row.video}.h5" in kr
        assert in_cr == in_kr == (row.split == "train"), (row.video, row.split)
