"""Segment fusion, checked against hand-computed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgenet import MgenetError
from mgenet.io import INTERVAL_COLUMNS
from mgenet.scoring.frames import frame_scores, fusion_fill
from mgenet.scoring.fusion import finite_scores, fit_scaling, fuse_segments, fuse_with


def _seg(video, mid, **scores):
    n = len(mid)
    return pd.DataFrame({"video": video if isinstance(video, list) else [video] * n,
                         "person_id": np.zeros(n, int), "start_frame": np.asarray(mid) - 1,
                         "mid_frame": mid, **scores})


# ----------------------------------------------------------------------------------------------------------- fusion


def test_fusion_min_max_and_weights():
    seg = _seg("a", [1, 2, 3], mo=[1.0, 3.0, 5.0], app=[10.0, 30.0, 20.0], mm=[7.0, 0.0, 1.0])
    out = fuse_segments(seg, {"mo": 1.0, "app": 0.1})
    # mo scaled [0, .5, 1]; app scaled [0, 1, .5]; mm has no weight so it is not fused.
    np.testing.assert_allclose(out["fused"], [0.0, 0.5 + 0.1, 1.0 + 0.05])
    # Components keep their raw values; the input is not modified.
    np.testing.assert_array_equal(out["mo"], [1.0, 3.0, 5.0])
    assert "fused" not in seg.columns


def test_fusion_single_component_is_its_min_max():
    seg = _seg("a", [1, 2, 3, 4], nf=[-4.0, 0.0, 4.0, 2.0])
    np.testing.assert_allclose(fuse_segments(seg, {"nf": 1.0})["fused"], [0.0, 0.5, 1.0, 0.75])


def test_fusion_constant_component_contributes_zero():
    seg = _seg("a", [1, 2], mo=[3.0, 3.0], app=[0.0, 2.0])
    np.testing.assert_allclose(fuse_segments(seg, {"mo": 1.0, "app": 0.5})["fused"], [0.0, 0.5])


def test_fusion_replaces_infinities_before_scaling():
    seg = _seg("a", [1, 2, 3, 4], nf=[1.0, np.inf, 3.0, -np.inf])
    out = fuse_segments(seg, {"nf": 1.0})
    np.testing.assert_array_equal(out["nf"], [1.0, 3.0, 3.0, 1.0])
    np.testing.assert_allclose(out["fused"], [0.0, 1.0, 1.0, 0.0])


@pytest.mark.parametrize("weights, needle", [({"mo": 1.0, "mm": 0.1}, "mm"), ({"foo": 1.0}, "foo"), ({}, "weights")])
def test_fusion_bad_weights_name_the_problem(weights, needle):
    seg = _seg("a", [1, 2], mo=[0.0, 1.0])
    with pytest.raises(MgenetError, match=needle):
        fuse_segments(seg, weights)


def test_sum_then_minmax_scales_the_raw_weighted_sum_once():
    seg = _seg("a", [1, 2, 3], mo=[1.0, 3.0, 5.0], app=[10.0, 30.0, 20.0], mm=[7.0, 0.0, 1.0])
    out = fuse_segments(seg, {"mo": 1.0, "app": 0.1}, "sum_then_minmax")
    # raw sum 1 + 1, 3 + 3, 5 + 2 = [2, 6, 7] -> min-max [0, 0.8, 1]; test_minmax would give [0, 0.6, 1.05]
    np.testing.assert_allclose(out["fused"], [0.0, 0.8, 1.0])
    np.testing.assert_array_equal(out["mo"], [1.0, 3.0, 5.0])
    # AUC-equivalent to the raw sum: same order
    assert fit_scaling(seg, {"mo": 1.0, "app": 0.1}, "sum_then_minmax") == {"fused": (2.0, 5.0)}


def _train_table():
    # training mo 0, 1, ..., 100: median 50, 0.99 quantile 99 (linear interpolation); app 0..10 in steps of 0.1
    n = 101
    return _seg(["t"] * n, list(range(n)), mo=np.arange(n, dtype=float), app=np.arange(n) / 10.0)


def test_train_normalisation_scales_by_the_training_median_and_quantile():
    seg = _seg("a", [1, 2, 3], mo=[50.0, 99.0, 148.0], app=[5.0, 0.1, 14.8])
    ref = _train_table()
    scaling = fit_scaling(ref, {"mo": 1.0, "app": 0.5}, "train")
    assert scaling["mo"] == pytest.approx((50.0, 49.0)) and scaling["app"] == pytest.approx((5.0, 4.9))
    out = fuse_segments(seg, {"mo": 1.0, "app": 0.5}, "train", ref)
    # mo -> [0, 1, 2]; app -> [0, -1, 2]
    np.testing.assert_allclose(out["fused"], [0.0, 1.0 - 0.5, 2.0 + 1.0])
    # another quantile: q = max (100) -> mo spread 50
    out = fuse_segments(seg, {"mo": 1.0}, "train", ref, quantile=1.0)
    np.testing.assert_allclose(out["fused"], [0.0, 0.98, 1.96])


def test_train_normalisation_uses_no_test_statistic():
    ref = _train_table()
    seg = _seg("a", [1, 2, 3, 4], mo=[75.0, 60.0, 80.0, 90.0], app=[2.5, 1.0, 3.0, 4.0])
    other = seg.assign(mo=[75.0, 7000.0, -80.0, 1e6], app=[2.5, -50.0, 3e3, 0.0])  # every other test score moved
    for normalise, same in (("train", True), ("test_minmax", False), ("sum_then_minmax", False)):
        a = fuse_with(seg, {"weights": {"mo": 1.0, "app": 0.1}, "normalise": normalise}, ref)["fused"].iloc[0]
        b = fuse_with(other, {"weights": {"mo": 1.0, "app": 0.1}, "normalise": normalise}, ref)["fused"].iloc[0]
        assert bool(a == b) is same, normalise
    # the fill of frames without a person comes from the training segments too, and only under train
    fusion = {"weights": {"mo": 1.0, "app": 0.1}, "normalise": "train"}
    fill = fusion_fill(fusion, ref)
    assert fill == pytest.approx({"mo": 0.0, "app": 0.0, "fused": (0 - 50) / 49 + 0.1 * (0 - 5) / 4.9})
    assert fusion_fill({**fusion, "normalise": "test_minmax"}, ref) is None
    videos = pd.DataFrame({"video": ["a", "empty"], "frames": [5, 3]})
    gts = {"a": np.zeros(5, np.uint8), "empty": np.zeros(3, np.uint8)}
    frames = [frame_scores(fuse_with(s, fusion, ref), videos, gts, pd.DataFrame(columns=INTERVAL_COLUMNS), [],
                           fill=fusion_fill(fusion, ref)) for s in (seg, other)]
    for f in frames:  # frame 0 of a and the whole empty video: the training fill, whatever the test scores are
        np.testing.assert_allclose(f.loc[f["video"] == "empty", "fused"], fill["fused"])
        assert f["fused"].iloc[0] == pytest.approx(fill["fused"])
    assert frames[0]["fused"].iloc[1] == frames[1]["fused"].iloc[1]


def test_train_normalisation_selects_the_motion_measure_in_the_reference_too():
    ref = _train_table().assign(mo_sim=np.arange(101) / 100.0)
    seg = _seg("a", [1], mo=[1000.0], mo_sim=[0.99])
    out = fuse_with(seg, {"weights": {"mo": 1.0}, "normalise": "train", "motion_score": "mo_sim"}, ref)
    np.testing.assert_allclose(out["fused"], [1.0])  # (0.99 - 0.5) / (0.99 - 0.5)


def test_train_normalisation_of_a_component_without_spread_contributes_zero_and_says_so(caplog):
    ref = _train_table().assign(app=1.0)  # app constant on the training segments: no scale
    seg = _seg("a", [1, 2], mo=[50.0, 99.0], app=[1.0, 5.0])
    with caplog.at_level("WARNING", logger="mgenet"):
        out = fuse_segments(seg, {"mo": 1.0, "app": 0.5}, "train", ref)
    np.testing.assert_allclose(out["fused"], [0.0, 1.0])
    assert "component app" in caplog.text and "contributes 0" in caplog.text


@pytest.mark.parametrize("normalise, reference, kwargs, needle", [
    ("train", None, {}, "--train-scores"),
    ("minmax", None, {}, "not one of"),
    ("train", "no_app", {}, "app"),
    ("train", "empty", {}, "no segment"),
    ("train", "full", {"quantile": 0.3}, "train_quantile"),
])
def test_normalisation_errors_name_the_problem(normalise, reference, kwargs, needle):
    seg = _seg("a", [1, 2], mo=[0.0, 1.0], app=[1.0, 2.0])
    ref = _train_table()
    refs = {None: None, "full": ref, "no_app": ref.drop(columns="app"), "empty": ref.iloc[:0]}
    with pytest.raises(MgenetError, match=needle):
        fuse_segments(seg, {"mo": 1.0, "app": 0.1}, normalise, refs[reference], **kwargs)


def test_nan_score_is_an_error():
    with pytest.raises(MgenetError, match="NaN"):
        finite_scores(np.array([0.0, np.nan]), "mo")
