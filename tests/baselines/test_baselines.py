"""Baseline components in the scores, the evaluation and the report (scores/baselines/{method}.parquet): hand-made
tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mgenet import MgenetError
from mgenet.cli import main
from mgenet.evaluation.metrics import compute_metrics, evaluate
from mgenet.io import read_weak_split
from mgenet.evaluation.report import write_report
from mgenet.scoring.frames import add_baselines, smooth
from mgenet.scoring.fusion import BASELINES, fuse_segments


def _frames(seed=0):
    """Three test videos: v1 and v3 with a typed anomaly, v2 normal; nf and fused score columns."""
    rng = np.random.default_rng(seed)
    parts = []
    for video, n, anomaly in [("v1", 40, (10, 19, "motion")), ("v2", 30, None), ("v3", 50, (20, 34, "scene"))]:
        gt = np.zeros(n, np.uint8)
        types = np.full(n, "", dtype=object)
        if anomaly:
            gt[anomaly[0]:anomaly[1] + 1] = 1
            types[anomaly[0]:anomaly[1] + 1] = anomaly[2]
        nf = gt + rng.normal(0, 0.8, n)
        parts.append(pd.DataFrame({"video": video, "frame": np.arange(n), "gt": gt, "type": types, "subtype": "",
                                   "nf": nf, "fused": nf}))
    return pd.concat(parts, ignore_index=True)


def _baseline(frames, name="arnet", seed=1):
    rng = np.random.default_rng(seed)
    df = frames[["video", "frame"]].copy()
    df[name] = frames["gt"] * 2.0 + rng.normal(0, 0.5, len(frames))
    return df.sample(frac=1.0, random_state=0)  # any row order


def test_add_baselines_aligns_and_smooths_each_video_like_the_components():
    fr = _frames()
    raw = _baseline(fr)
    out = add_baselines(fr, {"arnet.parquet": raw}, sigmas=[2.0])
    assert list(out.columns[-3:]) == ["nf", "fused", "arnet"] and len(out) == len(fr)
    for v, g in out.groupby("video"):
        want = raw[raw["video"] == v].sort_values("frame")["arnet"].to_numpy()
        np.testing.assert_allclose(g["arnet"].to_numpy(), smooth(want, [2.0]))  # per video: no bleed across videos
    np.testing.assert_array_equal(out["nf"], fr["nf"])  # the components are untouched


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.iloc[1:], "lacks video"),
    (lambda d: pd.concat([d, d.iloc[:1].assign(video="train_1")]), "not a test frame"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "more than one row"),
    (lambda d: d.rename(columns={"arnet": "mystery"}), "mystery"),
    (lambda d: d.drop(columns="frame"), "lacks column"),
    (lambda d: d.assign(arnet=np.where(np.arange(len(d)) == 3, np.nan, d["arnet"])), "NaN"),
])
def test_add_baselines_refuses_a_table_that_is_not_every_test_frame_once(edit, match):
    fr = _frames()
    with pytest.raises(MgenetError, match=match) as e:
        add_baselines(fr, {"results/x/scores/baselines/arnet.parquet": edit(_baseline(fr))})
    assert "results/x/scores/baselines/arnet.parquet" in str(e.value)


def test_a_baseline_column_comes_from_one_file_and_is_never_fused():
    fr = _frames()
    with pytest.raises(MgenetError, match="also come from a.parquet"):
        add_baselines(fr, {"a.parquet": _baseline(fr), "b.parquet": _baseline(fr, seed=2)})
    seg = pd.DataFrame({"video": ["v1"], "mid_frame": [0], "nf": [1.0], "arnet": [0.5]})
    with pytest.raises(MgenetError, match="unknown component"):
        fuse_segments(seg, {"nf": 1.0, "arnet": 1.0})
    assert fuse_segments(seg, {"nf": 1.0})["fused"].tolist() == [0.0]  # arnet is carried, not fused
    assert set(BASELINES) == {"arnet", "cr", "kr", "crkr"}


def _weak_split(test=("v2", "v3")):
    """Training: a normal training video n1 and the anomalous test video v1; testing: ``test``."""
    rows = [("n1", "train", 0), ("v1", "train", 1)] + [(v, "test", int(v == "v3")) for v in test]
    return pd.DataFrame(rows, columns=["video", "split", "label"])


def _gt_score(frames, video, name):
    g = frames[frames["video"] == video]
    return g["gt"].to_numpy(), g[name].to_numpy()


def test_weak_scores_are_evaluated_on_the_weak_test_videos_only():
    fr = add_baselines(_frames(), {"arnet.parquet": _baseline(_frames())})
    fr.loc[fr["video"] == "v2", "arnet"] = np.linspace(0, 1, 30)  # half the normal video's frames above 0.5
    with pytest.raises(MgenetError, match="weakly supervised"):
        evaluate(fr, "demo")
    m = evaluate(fr, "demo", weak_split=_weak_split(), weak_split_name="weak_split.csv")
    assert list(m["scores"]) == ["nf", "fused"]  # AR-Net never on the whole test split
    assert all(s["supervision"] == "unsupervised" for s in m["scores"].values())
    w = m["weak"]
    assert list(w["scores"]) == ["nf", "fused", "arnet"] and w["scores"]["arnet"]["supervision"] == "weak"
    assert w["videos"] == ["v2", "v3"] and w["n_videos"] == 2 and w["n_frames"] == 80 and w["n_train_videos"] == 2
    assert w["split_file"] == "weak_split.csv" and list(w["scores"]["arnet"]["by_type"]) == ["scene"]
    sub = fr[fr["video"].isin(["v2", "v3"])]
    nf = dict(w["scores"]["nf"])
    assert nf.pop("anomalous_video_auc") == pytest.approx(roc_auc_score(*_gt_score(fr, "v3", "nf")))
    assert nf == compute_metrics(sub, "demo")["scores"]["nf"]  # like with like: the same frames
    # AR-Net's own figures: AUC on the anomalous videos only (v3), false alarms at 0.5 on the normal ones (v2)
    assert w["scores"]["arnet"]["anomalous_video_auc"] == pytest.approx(roc_auc_score(*_gt_score(fr, "v3", "arnet")))
    v2 = fr.loc[fr["video"] == "v2", "arnet"].to_numpy()
    assert w["scores"]["arnet"]["false_alarm_rate"] == pytest.approx(0.5) == (v2 > 0.5).mean()
    assert "false_alarm_rate" not in w["scores"]["nf"]  # not a probability
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    with pytest.raises(MgenetError, match="not test videos"):
        evaluate(fr, "demo", weak_split=_weak_split(test=("v2", "train_9")))


def test_fuse_and_evaluate_commands_with_a_baseline(tmp_path):
    from mgenet.io import write_parquet

    fr = _frames()
    seg = pd.DataFrame({"video": fr["video"], "person_id": 0, "start_frame": fr["frame"], "mid_frame": fr["frame"],
                        "nf": fr["nf"]})
    write_parquet(seg, tmp_path / "segments.parquet")
    write_parquet(_baseline(fr), tmp_path / "arnet.parquet")
    man = pd.DataFrame({"video": ["v1", "v2", "v3"], "split": "test", "scene": "01", "frames": [40, 30, 50],
                        "fps": 25.0, "height": 64, "width": 64, "video_path": "", "pose_path": "", "gt_path": ""})
    for v, g in fr.groupby("video"):
        np.save(tmp_path / f"{v}.npy", g["gt"].to_numpy())
        man.loc[man["video"] == v, "gt_path"] = str(tmp_path / f"{v}.npy")
    man.to_csv(tmp_path / "manifest.csv", index=False)
    _weak_split().to_csv(tmp_path / "weak.csv", index=False)
    params = json.dumps({"weights": {"nf": 1.0}, "smoothing_sigmas": [1.0]})
    assert main(["fuse", "--scores", str(tmp_path / "segments.parquet"), "--manifest", str(tmp_path / "manifest.csv"),
                 "--baselines", str(tmp_path / "arnet.parquet"), "--params", params,
                 "--out", str(tmp_path / "frames.parquet")]) == 0
    assert "arnet" in pd.read_parquet(tmp_path / "frames.parquet").columns
    out = tmp_path / "eval" / "metrics.json"
    assert main(["evaluate", "--frames", str(tmp_path / "frames.parquet"), "--weak-split", str(tmp_path / "weak.csv"),
                 "--out", str(out), "--report", str(tmp_path / "eval" / "report.html")]) == 0
    m = json.loads(out.read_text())
    assert "arnet" not in m["scores"] and m["weak"]["scores"]["arnet"]["supervision"] == "weak"
    text = (tmp_path / "eval" / "report.html").read_text()
    weak = text[text.index('<h2 id="weak">'):text.index("<h2", text.index('<h2 id="weak">') + 1)]
    assert "AR-Net (weakly supervised)" in weak and "weak.csv" in weak and "2 test videos" in weak
    main_table = text[text.index('<h2 id="metrics">'):text.index('<h2 id="weak">')]
    assert "AR-Net" not in main_table
    assert (tmp_path / "eval" / "plots" / "roc_weak.png").is_file()


def test_report_draws_a_weak_score_on_the_weak_test_videos_only(tmp_path):
    fr = add_baselines(_frames(), {"arnet.parquet": _baseline(_frames())})
    m = evaluate(fr, "demo", weak_split=_weak_split())
    write_report(fr, m, tmp_path / "r.html", tmp_path / "plots")
    from PIL import Image

    h = {v: Image.open(tmp_path / "plots" / f"{v}.png").size[1] for v in ("v1", "v2", "v3")}
    assert h["v2"] == h["v3"] > h["v1"]  # v1 trained AR-Net: no AR-Net row in its panel


@pytest.mark.parametrize("text, match", [
    ("video,split\nv1,train\n", "lacks column"),
    ("video,split,label\nv1,train,1\nv1,test,1\nn1,train,0\n", "more than once"),
    ("video,split,label\nv1,val,1\n", "split 'val'"),
    ("video,split,label\nv1,train,anomalous\n", "label 'anomalous'"),
    ("video,split,label\nv1,train,1\nv2,train,0\n", "no test video"),
])
def test_weak_split_file_is_checked(tmp_path, text, match):
    path = tmp_path / "weak_split.csv"
    path.write_text(text)
    with pytest.raises(MgenetError, match=match) as e:
        read_weak_split(path)
    assert str(path) in str(e.value)
    assert len(read_weak_split(_ok(tmp_path))) == 3


def _ok(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("video,split,label\nn1,train,0\nv1,train,1\nv2,test,0\n")
    return path
