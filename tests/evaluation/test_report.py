"""The HTML report is self-contained and shows every figure and number."""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import shutil
import subprocess

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from mgenet import MgenetError, __version__, cli
from mgenet.evaluation.metrics import compute_metrics
from mgenet.evaluation.report import collect_provenance, git_commit, percentile, type_colours, video_figure, write_report

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


def _section(text: str, anchor: str) -> str:
    """The HTML from heading ``id=anchor`` to the next heading."""
    start = text.index(f'<h2 id="{anchor}">')
    end = text.find("<h2", start + 1)
    return text[start:end if end >= 0 else len(text)]


def test_report_is_self_contained(frames, tmp_path):
    metrics = compute_metrics(frames, "demo")
    out = tmp_path / "eval" / "report.html"
    plots = tmp_path / "eval" / "plots"
    config = {"scoring": {"weights": {"mo": 1.0}}, "ablation": {"variants": {"full": {"description": "all"}}}}
    write_report(frames, metrics, out, plots, config=config,
                 provenance={"mgenet_version": "0.1.0", "models_sha256": {"flow.pt": "ab" * 32}, "git_commit": None})
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

    table = _section(text, "metrics")
    for s in metrics["scores"].values():
        assert f"{s['micro_auc']:.4f}" in table
        assert f"{s['macro_auc']:.4f}" in table
        for auc in s["by_type"].values():
            assert f"{auc:.4f}" in table
    assert "AUC motion" in table and "AUC scene" in table
    assert "S_nf (pose flow NLL)" in table and "S_mo (motion)" in table
    assert 'alt="ROC curves"' in _section(text, "roc")
    assert "No ablation table yet" in _section(text, "ablation")

    # The configuration as YAML that reads back to the same object, and provenance as a key/value table.
    pre = re.search(r"<pre>(.*?)</pre>", _section(text, "config"), re.S).group(1)
    assert yaml.safe_load(html.unescape(pre)) == config
    prov = _section(text, "provenance")
    assert re.search(r"<td>mgenet_version</td><td><code>0\.1\.0</code>", prov)
    assert re.search(r"<td>models_sha256 / flow\.pt</td><td><code>(ab){32}</code>", prov)
    assert re.search(r"<td>git_commit</td><td><code>unavailable</code>", prov)


def test_video_panels_stack_the_fused_score_over_each_component(frames, tmp_path):
    write_report(frames, compute_metrics(frames, "demo"), tmp_path / "r.html", tmp_path / "plots")
    # One row per score (fused, nf, mo here): the panel is taller than wide-and-flat, one PNG per video.
    sizes = {p.stem: Image.open(p).size for p in (tmp_path / "plots").glob("0*.png")}
    assert len(sizes) == 3 and all(w == 1000 and 200 < h < 300 for w, h in sizes.values()), sizes
    # Palette PNGs keep a report of a hundred videos a few MB.
    assert Image.open(tmp_path / "plots" / "01_0014.png").mode == "P"

    g = frames[frames["video"] == "01_0014"]
    cols = ["fused", "nf", "mo"]
    ref = {c: np.sort(frames[c].to_numpy()) for c in cols}
    fig = video_figure(g, cols, ref, type_colours(["motion", "scene"]))
    axes = fig.axes
    assert [a.get_ylabel() for a in axes] == ["fused", "S_nf", "S_mo"]
    assert all(axes[0].get_shared_x_axes().joined(axes[0], a) for a in axes[1:])
    # Each row shades both GT intervals (frames 20-35 motion, 50-60 scene), in the types' colours.
    for a in axes:
        spans = sorted((p.get_x(), p.get_width(), p.get_facecolor()[:3]) for p in a.patches)
        assert [(x, w) for x, w, _ in spans] == [(19.5, 16.0), (49.5, 11.0)]
        assert spans[0][2] != spans[1][2]
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["GT: motion", "GT: scene"]
    # Each curve is its score's percentile among all test frames.
    y = axes[2].lines[0].get_ydata()
    assert np.allclose(y, percentile(g["mo"].to_numpy(), ref["mo"])) and 0 <= y.min() and y.max() <= 1


def test_percentile_counts_ties_half():
    ref = np.array([1.0, 2.0, 2.0, 4.0])
    assert percentile(np.array([0.0, 1.0, 2.0, 3.0, 5.0]), ref).tolist() == [0.0, 0.125, 0.5, 0.75, 1.0]
    assert percentile(np.array([1.0]), np.array([])).tolist() == [0.0]
    assert np.isnan(percentile(np.array([np.nan, 2.0]), ref)).tolist() == [True, False]


def test_ablation_table_is_shown_with_the_best_value_bold(frames, tmp_path):
    ablation = pd.DataFrame({"variant": ["full", "stgnf"], "description": ["all <losses>", "stage 1"],
                             "fusion": ["mo + 0.1 app", "nf"], "micro_auc": [0.91, 0.85], "macro_auc": [0.8, 0.88],
                             "auc_motion": [0.95, float("nan")]})
    write_report(frames, compute_metrics(frames, "demo"), tmp_path / "r.html", tmp_path / "plots", ablation=ablation)
    section = _section((tmp_path / "r.html").read_text(encoding="utf-8"), "ablation")
    assert "<th>micro AUC</th>" in section and "<th>AUC motion</th>" in section
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[1])
    assert len(rows) == 2
    assert "all &lt;losses&gt;" in rows[0] and "<b>0.9100</b>" in rows[0] and "<td>0.8000</td>" in rows[0]
    assert "<b>0.8800</b>" in rows[1] and "<td>–</td>" in rows[1]


def test_summary_over_seeds_is_shown_as_mean_and_std(frames, tmp_path):
    from mgenet.studies.seeds import seed_summary

    m = compute_metrics(frames, "demo")
    other = {**m, "scores": {k: {**v, "micro_auc": v["micro_auc"] - 0.02} for k, v in m["scores"].items()}}
    seeds = seed_summary({"0": m, "1": other})
    write_report(frames, m, tmp_path / "r.html", tmp_path / "plots", seeds=seeds)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    section = _section(text, "seeds")
    fused = m["scores"]["fused"]["micro_auc"]
    assert f"{fused - 0.01:.4f} ± {0.02 / 2 ** 0.5:.4f}" in section and "over 2 training seeds: 0, 1." in section
    assert "<th>AUC motion</th>" in section
    write_report(frames, m, tmp_path / "r2.html", tmp_path / "plots")
    assert 'id="seeds"' not in (tmp_path / "r2.html").read_text(encoding="utf-8")
    write_report(frames, m, tmp_path / "r3.html", tmp_path / "plots", matching_seeds=seed_summary({"0": m, "5": other}))
    text = (tmp_path / "r3.html").read_text(encoding="utf-8")
    assert 'id="seeds"' not in text
    section = _section(text, "matching-seeds")
    assert f"{fused - 0.01:.4f} ± {0.02 / 2 ** 0.5:.4f}" in section and "snakemake matching_seeds" in section
    assert "random start and clip order" in section and ": 0, 5." in section


def _features_file(path, sha):
    with h5py.File(path, "w") as f:
        f.attrs.update({"checkpoint_sha256": sha, "backbone": "swin", "weights": "w.pth"})


def test_provenance_hashes_models_and_reads_the_features_checkpoint(tmp_path):
    (tmp_path / "flow.pt").write_bytes(b"flow")
    (tmp_path / "stage2.pt").write_bytes(b"stage 2")
    (tmp_path / "frames.parquet").write_bytes(b"scores")
    for i in range(2):
        _features_file(tmp_path / f"v{i}.h5", "c0ffee")
    prov = collect_provenance(tmp_path / "frames.parquet", [tmp_path / "flow.pt", tmp_path / "stage2.pt"],
                              [tmp_path / "v0.h5", tmp_path / "v1.h5"], cwd=tmp_path)
    assert prov["mgenet_version"] == __version__
    assert prov["models_sha256"] == {"flow.pt": hashlib.sha256(b"flow").hexdigest(),
                                     "stage2.pt": hashlib.sha256(b"stage 2").hexdigest()}
    assert prov["frame_scores"]["sha256"] == hashlib.sha256(b"scores").hexdigest()
    assert prov["features"] == {"files": 2, "checkpoint_sha256": "c0ffee", "weights": "w.pth", "backbone": "swin"}
    assert prov["packages"]["numpy"] == np.__version__
    # Features made with different backbone weights are a mixed run worth seeing: every distinct hash is listed.
    _features_file(tmp_path / "v2.h5", "beef")
    mixed = collect_provenance(features=[tmp_path / "v0.h5", tmp_path / "v2.h5"], cwd=tmp_path)
    assert mixed["features"]["checkpoint_sha256"] == ["beef", "c0ffee"]


def test_git_commit_outside_a_repository_or_without_git(tmp_path, monkeypatch):
    assert git_commit(tmp_path) == (None, None)

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert git_commit(tmp_path) == (None, None)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_of_a_repository(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-q", "-m", "a")
    assert git_commit(tmp_path) == (git("rev-parse", "HEAD"), False)
    (tmp_path / "a.txt").write_text("b")
    assert git_commit(tmp_path)[1] is True


def test_evaluate_command_writes_the_full_report(frames, tmp_path):
    frames.to_parquet(tmp_path / "frames.parquet", index=False)
    (tmp_path / "flow.pt").write_bytes(b"flow")
    _features_file(tmp_path / "v.h5", "c0ffee")
    pd.DataFrame({"variant": ["full"], "micro_auc": [0.75]}).to_csv(tmp_path / "ablation.csv", index=False)
    args = ["evaluate", "--frames", str(tmp_path / "frames.parquet"), "--out", str(tmp_path / "metrics.json"),
            "--report", str(tmp_path / "report.html"), "--params", '{"dataset": "demo", "config": {"seed": 3}}',
            "--models", str(tmp_path / "flow.pt"), "--features", str(tmp_path / "v.h5")]
    assert cli.main([*args, "--ablation", str(tmp_path / "ablation.csv")]) == 0
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<b>0.7500</b>" in _section(text, "ablation")
    prov = _section(text, "provenance")
    assert hashlib.sha256(b"flow").hexdigest() in prov and "c0ffee" in prov
    assert "seed: 3" in _section(text, "config")
    assert (tmp_path / "plots" / "roc.png").exists()
    # A table asked for by name must exist (the workflow passes it only when it does).
    assert cli.main([*args, "--ablation", str(tmp_path / "missing.csv")]) == 1


def test_metrics_table_shows_intervals_ap_eer_regions_and_the_paired_gain(frames, tmp_path):
    m = compute_metrics(frames, "demo", bootstrap=50, seed=0)
    m["scores"]["fused"].update({"rbdc": 0.125, "tbdc": 0.25})
    m["localization"] = {"iou": 0.1, "track_fraction": 0.1, "max_fp_per_frame": 1.0, "n_regions": 7, "n_tracks": 2,
                         "n_detections": 40, "n_frames": 190}
    write_report(frames, m, tmp_path / "r.html", tmp_path / "plots")
    section = _section((tmp_path / "r.html").read_text(encoding="utf-8"), "metrics")
    for head in ("95% CI", "micro AP", "macro EER", "RBDC", "TBDC", "DeLong p"):
        assert f"<th>{head}</th>" in section, head
    lo, hi = m["scores"]["fused"]["micro_auc_ci95"]
    assert f"{lo:.4f} – {hi:.4f}" in section and "<td>0.1250</td>" in section
    gain = m["scores"]["mo"]["fused_vs_this"]
    assert f"{gain['auc_diff']:+.4f}" in section and f"{gain['ci95'][0]:.4f} – {gain['ci95'][1]:.4f}" in section
    # the one video without an anomaly is named as skipped by the macro figures
    assert "2 videos; 1 one-class video(s) skipped: 01_0003." in section
    assert "50 bootstrap resamples of the test videos" in section and "7 anomalous regions in 2 tracks" in section


def test_evaluate_command_adds_rbdc_and_tbdc_when_the_dataset_has_boxes(frames, tmp_path, caplog):
    from mgenet.io import write_segments

    frames.to_parquet(tmp_path / "frames.parquet", index=False)
    # video 01_0014: person 1 on the anomalous box in frames 22 and 23 (segments starting at 20 and 21, T = 4),
    # person 2 elsewhere in frame 42. S_nf scores person 2 highest (a false positive first), S_mo lowest.
    starts = np.array([20, 21, 40], np.int32)
    boxes = np.repeat(np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)[:, None], 4, axis=1)
    write_segments(tmp_path / "01_0014.h5", {
        "pose": np.zeros((3, 2, 4, 18)), "confidence": np.ones((3, 4, 18)), "keypoints": np.zeros((3, 4, 18, 2)),
        "boxes": boxes, "frames": starts[:, None] + np.arange(4), "person_id": [1, 1, 2], "start_frame": starts,
        "mid_frame": starts + 2}, {})
    pd.DataFrame({"video": "01_0014", "person_id": [1, 1, 2], "start_frame": starts, "mid_frame": starts + 2,
                  "nf": [5.0, 4.0, 9.0], "mo": [5.0, 4.0, 1.0]}).to_parquet(tmp_path / "seg.parquet")
    (tmp_path / "boxes.csv").write_text("video,track,frame,x1,y1,x2,y2\n01_0014,1,22,0,0,10,10\n"
                                        "01_0014,1,23,0,0,10,10\n")
    params = {"dataset": "demo", "seed": 0, "evaluation": {"bootstrap": 20}, "fusion": {"weights": {"mo": 1.0}}}
    args = ["evaluate", "--frames", str(tmp_path / "frames.parquet"), "--out", str(tmp_path / "metrics.json"),
            "--params", json.dumps(params), "--segments", str(tmp_path / "seg.parquet"),
            "--segment-files", str(tmp_path / "01_0014.h5")]
    assert cli.main([*args, "--boxes", str(tmp_path / "boxes.csv")]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    # S_nf: one false positive (1 of 190 frames) before both regions: the curve is 0 until x = 1/190, then 1
    assert (m["scores"]["nf"]["rbdc"], m["scores"]["nf"]["tbdc"]) == (pytest.approx(189 / 190),) * 2
    assert (m["scores"]["mo"]["rbdc"], m["scores"]["fused"]["rbdc"]) == (1.0, 1.0)
    assert m["localization"]["n_regions"] == 2 and m["localization"]["n_detections"] == 3
    assert m["bootstrap"]["resamples"] == 20
    # without a boxes file the two figures are absent, not 0, and the log says why
    with caplog.at_level(logging.INFO, logger="mgenet"):
        assert cli.main([*args, "--boxes", str(tmp_path / "none.csv")]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert "rbdc" not in m["scores"]["nf"] and "localization" not in m
    assert "RBDC and TBDC are not computed" in caplog.text
    # boxes without the detections' inputs: one error, no metrics file
    (tmp_path / "metrics.json").unlink()
    assert cli.main([*args[:7], "--boxes", str(tmp_path / "boxes.csv")]) == 1
    assert not (tmp_path / "metrics.json").exists()


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
