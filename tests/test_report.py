"""The HTML report is self-contained and shows every figure and number."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mgenet import MgenetError
from mgenet.evaluation import compute_metrics
from mgenet.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def frames():
    rng = np.random.default_rng(1)
    parts = []
    # Names deliberately unsorted; "01_0003" has no anomaly, "01_0001" has an untyped one.
    for video, n, anomalies in [("01_0014", 80, [(20, 35, "motion"), (50, 60, "scene")]), ("01_0003", 60, []),
                                ("01_0001", 50, [(10, 20, "")])]:
        gt = np.zeros(n, np.uint8)
        types = np.full(n, "", dtype=object)
        for s, e, t in anomalies:
            gt[s:e + 1] = 1
            types[s:e + 1] = t
        mo = gt + rng.normal(0, 0.4, n)
        parts.append(pd.DataFrame({"video": video, "frame": np.arange(n), "gt": gt, "type": types,
                                   "subtype": "", "nf": rng.normal(size=n), "mo": mo, "fused": 0.5 * mo + 0.2}))
    return pd.concat(parts, ignore_index=True)


def test_report_is_self_contained(frames, tmp_path):
    metrics = compute_metrics(frames, "demo")
    out = tmp_path / "eval" / "report.html"
    plots = tmp_path / "eval" / "plots"
    write_report(frames, metrics, out, plots, config={"scoring": {"weights": {"mo": 1.0}}},
                 provenance={"mgenet_version": "0.1.0"})
    text = out.read_text(encoding="utf-8")

    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == 1 + 3  # ROC + one per video
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in text and "https://" not in text
    assert "<link" not in text and "<script" not in text

    # One figure per video, in name order.
    assert re.findall(r'alt="scores of video ([^"]+)"', text) == ["01_0001", "01_0003", "01_0014"]
    assert sorted(p.name for p in plots.iterdir()) == ["01_0001.png", "01_0003.png", "01_0014.png", "roc.png"]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in plots.iterdir())
    assert not list(out.parent.glob(".*tmp*")) and not list(plots.glob(".*tmp*"))

    for s in metrics["scores"].values():
        assert f"{s['micro_auc']:.4f}" in text
        assert f"{s['macro_auc']:.4f}" in text
        for auc in s["by_type"].values():
            assert f"{auc:.4f}" in text
    assert "AUC motion" in text and "AUC scene" in text
    assert "weights" in text and "mgenet_version" in text and "<pre>" in text


def test_report_handles_undefined_auc(frames, tmp_path):
    normal = frames.assign(gt=0, type="")
    metrics = compute_metrics(normal, "demo")
    assert metrics["scores"]["fused"]["micro_auc"] is None
    write_report(normal, metrics, tmp_path / "r.html", tmp_path / "plots")
    assert (tmp_path / "plots" / "roc.png").exists()


def test_video_named_like_the_roc_plot_is_refused(frames, tmp_path):
    frames = frames.replace({"video": {"01_0003": "roc"}})
    with pytest.raises(MgenetError, match="roc"):
        write_report(frames, compute_metrics(frames, "demo"), tmp_path / "r.html", tmp_path / "plots")
