"""Named evaluation protocols (metrics.json `protocols`): STG-NF's ShanghaiTech-HR leaves out exactly its six videos."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from mgenet import cli
from mgenet.evaluation.metrics import compute_metrics
from mgenet.evaluation.protocols import PROTOCOLS, applicable, protocol_metrics

HR_SKIP = ["01_0130", "01_0135", "01_0136", "06_0144", "06_0145", "12_0152"]  # orhir/STG-NF dataset.py


def frames_of(videos: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for i, v in enumerate(videos):
        gt = np.zeros(40, np.uint8)
        gt[10 + i % 5:25] = 1
        nf = gt * (0.5 + i % 3) + rng.normal(0, 1, 40)  # some videos score much better than others
        parts.append(pd.DataFrame({"video": v, "frame": np.arange(40), "gt": gt, "type": "", "subtype": "",
                                   "nf": nf, "fused": nf}))
    return pd.concat(parts, ignore_index=True)


def test_shanghaitech_hr_is_one_table_entry_with_stgnfs_six_videos():
    (hr,) = [p for p in PROTOCOLS if p.name == "shanghaitech_hr"]
    assert sorted(hr.leaves_out) == HR_SKIP and hr.layouts == ("stgnf",) and "orhir/STG-NF" in hr.source
    assert hr.left_out(["01_0130", "01_0131", "12_0152", "06_144", "1_130x"]) == ["01_0130", "06_144", "12_0152"]


def test_a_protocol_applies_to_its_layout_when_a_test_video_is_one_it_leaves_out():
    assert applicable("stgnf", ["01_0014", "01_0130"]) == [p for p in PROTOCOLS if p.name == "shanghaitech_hr"]
    assert applicable("stgnf", ["01_0014", "02_0003"]) == []  # nothing left out: no entry
    assert applicable("ubnormal", ["01_0130"]) == []


def test_protocol_figures_are_the_top_levels_on_the_kept_videos():
    videos = ["01_0014", "01_0130", "01_0135", "02_0003", "06_0144", "12_0152", "12_0153"]
    frames = frames_of(videos)
    out = protocol_metrics(frames, "stgnf", "shanghaitech")
    hr = out["shanghaitech_hr"]
    kept = frames[frames["video"].isin(["01_0014", "02_0003", "12_0153"])].reset_index(drop=True)
    expected = compute_metrics(kept, "shanghaitech")
    assert {k: hr[k] for k in expected} == expected  # the top level's keys and figures
    assert hr["left_out"] == ["01_0130", "01_0135", "06_0144", "12_0152"] and hr["n_videos"] == 3
    assert hr["scores"]["nf"]["micro_auc"] != compute_metrics(frames, "x")["scores"]["nf"]["micro_auc"]


def test_evaluate_adds_protocols_to_metrics_and_the_report(tmp_path):
    frames_of(["01_0014", "01_0130", "02_0003"]).to_parquet(tmp_path / "frames.parquet", index=False)
    base = ["evaluate", "--frames", str(tmp_path / "frames.parquet"), "--out", str(tmp_path / "metrics.json"),
            "--report", str(tmp_path / "report.html")]
    assert cli.main([*base, "--params", '{"dataset": "shanghaitech", "layout": "stgnf"}']) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    hr = metrics["protocols"]["shanghaitech_hr"]
    assert set(hr["scores"]) == set(metrics["scores"]) and hr["n_videos"] == 2 and hr["left_out"] == ["01_0130"]
    text = (tmp_path / "report.html").read_text()
    assert '<h2 id="protocols">' in text and "ShanghaiTech-HR" in text and "01_0130" in text
    assert cli.main([*base, "--params", '{"dataset": "ub", "layout": "ubnormal"}']) == 0  # not its layout
    assert "protocols" not in json.loads((tmp_path / "metrics.json").read_text())
