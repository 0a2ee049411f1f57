"""Frame-level AUCs against hand-counted pairs, and the metrics.json contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mgenet.evaluation import compute_metrics, macro_auc, micro_auc, roc_points, type_auc


def _frames(videos, gt, score, types=None, name="fused"):
    n = len(gt)
    return pd.DataFrame({"video": videos, "frame": np.arange(n), "gt": np.asarray(gt, np.uint8),
                         "type": types if types is not None else [""] * n, "subtype": [""] * n,
                         name: np.asarray(score, float)})


@pytest.mark.parametrize("score, auc", [
    ([0.1, 0.2, 0.8, 0.9], 1.0),   # every anomalous frame above every normal one
    ([0.9, 0.8, 0.2, 0.1], 0.0),   # reversed
    ([0.1, 0.6, 0.4, 0.9], 0.75),  # pairs (pos > neg): 0.4>0.1, 0.9>0.1, 0.9>0.6; not 0.4>0.6 -> 3/4
    ([0.5, 0.5, 0.5, 0.5], 0.5),   # ties count one half
])
def test_micro_auc_known_values(score, auc):
    assert micro_auc(_frames(["v"] * 4, [0, 0, 1, 1], score), "fused") == pytest.approx(auc)


@pytest.fixture
def four_videos():
    # a: AUC 1; b: AUC 0.75 (as above); c: all normal and d: all anomalous, both skipped by the macro AUC.
    videos = ["a"] * 2 + ["b"] * 4 + ["c"] * 2 + ["d"] * 2
    gt = [0, 1] + [0, 0, 1, 1] + [0, 0] + [1, 1]
    score = [0.1, 0.2] + [0.1, 0.6, 0.4, 0.9] + [0.9, 0.9] + [0.3, 0.3]
    return _frames(videos, gt, score)


def test_macro_auc_skips_single_class_videos(four_videos):
    assert macro_auc(four_videos, "fused") == pytest.approx((1.0 + 0.75) / 2)


def test_micro_auc_concatenates_videos(four_videos):
    # negatives {.1, .1, .6, .9, .9}, positives {.2, .4, .9, .3, .3}; pairs won (tie = 1/2):
    # .2 -> 2, .4 -> 2, .9 -> 3 + 2 * 0.5, .3 -> 2, .3 -> 2  => 12 of 25.
    assert micro_auc(four_videos, "fused") == pytest.approx(12 / 25)


def test_macro_auc_nan_when_no_video_has_both_classes():
    fr = _frames(["a", "a", "b", "b"], [0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    assert np.isnan(macro_auc(fr, "fused"))
    m = compute_metrics(fr, "demo")
    assert m["scores"]["fused"]["macro_auc"] is None
    assert m["scores"]["fused"]["micro_auc"] == pytest.approx(1.0)
    assert '"macro_auc": null' in json.dumps(m)


@pytest.fixture
def typed():
    # normals .1 .2 .3 .4; motion .5 .6 (AUC 1); scene .15 .35 (1 + 3 of 8 pairs = 0.5); one untyped anomaly at 0.0.
    gt = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    score = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.15, 0.35, 0.0]
    types = ["", "", "", "", "motion", "motion", "scene", "scene", ""]
    return _frames(["v"] * 9, gt, score, types)


def test_type_auc_uses_normals_and_that_type_only(typed):
    assert type_auc(typed, "fused", "motion") == pytest.approx(1.0)
    assert type_auc(typed, "fused", "scene") == pytest.approx(0.5)
    # The untyped anomaly (score 0) counts in the overall AUC only: (4 + 4 + 1 + 3 + 0) / 20.
    assert micro_auc(typed, "fused") == pytest.approx(12 / 20)


def test_metrics_contract(typed):
    fr = typed.assign(nf=typed["fused"] * -1, mm=typed["fused"])  # columns deliberately out of canonical order
    m = compute_metrics(fr, "demo")
    assert list(m) == ["dataset", "n_videos", "n_frames", "scores"]
    assert m["dataset"] == "demo" and m["n_videos"] == 1 and m["n_frames"] == 9
    assert isinstance(m["n_videos"], int) and isinstance(m["n_frames"], int)
    assert list(m["scores"]) == ["nf", "mm", "fused"]
    for s in m["scores"].values():
        assert list(s) == ["micro_auc", "macro_auc", "by_type"]
        assert list(s["by_type"]) == ["motion", "scene"]
        assert all(isinstance(v, float) for v in (s["micro_auc"], s["macro_auc"], *s["by_type"].values()))
    assert m["scores"]["fused"]["by_type"] == {"motion": pytest.approx(1.0), "scene": pytest.approx(0.5)}
    assert m["scores"]["nf"]["by_type"]["motion"] == pytest.approx(0.0)
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_by_type_empty_without_types(four_videos):
    assert compute_metrics(four_videos, "x")["scores"]["fused"]["by_type"] == {}
    assert compute_metrics(four_videos.drop(columns=["type"]), "x")["scores"]["fused"]["by_type"] == {}


def test_roc_points():
    fr = _frames(["v"] * 4, [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    fpr, tpr, auc = roc_points(fr, "fused")
    assert auc == pytest.approx(1.0)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    fpr, tpr, auc = roc_points(_frames(["v"] * 2, [0, 0], [0.1, 0.2]), "fused")
    assert fpr.size == 0 and np.isnan(auc)
