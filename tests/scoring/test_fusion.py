"""Segment fusion and frame assignment, checked against hand-computed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter1d

from mgenet import MgenetError
from mgenet.io import INTERVAL_COLUMNS
from mgenet.scoring.fusion import (DEFAULT_SIGMAS, finite_scores, fit_scaling, frame_scores, fuse_segments,
                            fuse_with, fusion_fill)


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


# ------------------------------------------------------------------------------------------------ frame assignment


@pytest.fixture
def two_videos():
    # Video a (6 frames): persons 0 and 1 both land on frame 1 -> max; frames 0, 3, 5 uncovered.
    # Video b (4 frames): persons 0 and 2 share frame 3; the max over persons keeps 0.3 (mo) and 2.0 (nf).
    # Video c (3 frames): nobody -> the fill value everywhere.
    seg = pd.DataFrame({
        "video": ["a", "a", "a", "a", "b", "b", "b"],
        "person_id": [0, 1, 0, 1, 0, 0, 2],
        "start_frame": [0, 0, 1, 3, 0, 2, 2],
        "mid_frame": [1, 1, 2, 4, 0, 3, 3],
        "nf": [-1.0, -2.0, 5.0, 0.0, 3.0, 1.0, 2.0],
        "mo": [0.2, 0.7, 0.4, 0.9, 0.5, 0.3, 0.1],
    })
    videos = pd.DataFrame({"video": ["b", "c", "a"], "frames": [4, 3, 6]})
    gts = {"a": np.array([0, 0, 0, 1, 1, 1], np.uint8), "b": np.array([0, 1, 0, 0], np.uint8),
           "c": np.zeros(3, np.uint8)}
    intervals = pd.DataFrame([["a", 3, 4, "motion", "running"],
                              ["b", 0, 1, "scene", "cycling"],      # frame 0 is GT-normal: stays untyped
                              ["train_x", 0, 99, "motion", "jumping"]],  # not a test video: ignored
                             columns=INTERVAL_COLUMNS)
    return seg, videos, gts, intervals


def test_frame_assignment_element_by_element(two_videos):
    seg, videos, gts, intervals = two_videos
    fr = frame_scores(seg, videos, gts, intervals, sigmas=[])
    assert list(fr.columns) == ["video", "frame", "gt", "type", "subtype", "nf", "mo"]
    assert fr["video"].tolist() == ["a"] * 6 + ["b"] * 4 + ["c"] * 3  # sorted by video name
    assert fr["frame"].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0, 1, 2]
    # Fill = lowest frame score over the test set after the max over persons (STG-NF): mo 0.3 (b's frame 3), not the
    # lowest segment 0.1 that person 0 masks; nf -1 (a's frame 1), not -2.
    f_mo, f_nf = 0.3, -1.0
    expected_mo = [f_mo, 0.7, 0.4, f_mo, 0.9, f_mo] + [0.5, f_mo, f_mo, 0.3] + [f_mo] * 3
    expected_nf = [f_nf, -1.0, 5.0, f_nf, 0.0, f_nf] + [3.0, f_nf, f_nf, 2.0] + [f_nf] * 3
    np.testing.assert_array_equal(fr["mo"].to_numpy(), expected_mo)
    np.testing.assert_array_equal(fr["nf"].to_numpy(), expected_nf)
    assert fr["mo"].dtype == np.float64
    assert fr["gt"].tolist() == [0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    assert fr["type"].tolist() == ["", "", "", "motion", "motion", ""] + ["", "scene", "", ""] + [""] * 3
    assert fr["subtype"].tolist() == ["", "", "", "running", "running", ""] + ["", "cycling", "", ""] + [""] * 3


def test_frame_table_roundtrips_parquet(two_videos, tmp_path):
    from mgenet.io import read_parquet, write_parquet
    fr = frame_scores(*two_videos, sigmas=[])
    write_parquet(fr, tmp_path / "frames.parquet")
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "frames.parquet"), fr)


def test_smoothing_matches_sequential_gaussian_filter1d():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=40)
    seg = _seg("v", list(range(40)), mo=raw)
    videos = pd.DataFrame({"video": ["v"], "frames": [40]})
    gts = {"v": np.zeros(40, np.uint8)}
    empty = pd.DataFrame(columns=INTERVAL_COLUMNS)
    expected = raw.copy()
    for s in (1, 2, 3):
        expected = gaussian_filter1d(expected, s)
    got = frame_scores(seg, videos, gts, empty, sigmas=[1, 2, 3])["mo"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert not np.allclose(got, raw)
    # The default is STG-NF's sigma = 1..6 in turn.
    assert list(DEFAULT_SIGMAS) == [1, 2, 3, 4, 5, 6]
    expected6 = raw.copy()
    for s in range(1, 7):
        expected6 = gaussian_filter1d(expected6, s)
    np.testing.assert_allclose(frame_scores(seg, videos, gts, empty)["mo"], expected6, atol=1e-12)


def test_smoothing_is_per_video():
    # A spike at the end of video a must not leak into the start of video b.
    seg = pd.DataFrame({"video": ["a"] * 5 + ["b"] * 5, "person_id": 0, "start_frame": 0,
                        "mid_frame": list(range(5)) * 2, "mo": [0, 0, 0, 0, 10.0, 0, 0, 0, 0, 0]})
    videos = pd.DataFrame({"video": ["a", "b"], "frames": [5, 5]})
    gts = {"a": np.zeros(5, np.uint8), "b": np.zeros(5, np.uint8)}
    fr = frame_scores(seg, videos, gts, pd.DataFrame(columns=INTERVAL_COLUMNS), sigmas=[2])
    np.testing.assert_array_equal(fr.loc[fr.video == "b", "mo"], np.zeros(5))


def test_mid_frame_outside_video_is_an_error(two_videos):
    seg, videos, gts, intervals = two_videos
    seg.loc[3, "mid_frame"] = 6  # video a has frames 0..5
    with pytest.raises(MgenetError, match="mid_frame 6"):
        frame_scores(seg, videos, gts, intervals, sigmas=[])


def test_segments_of_unknown_video_are_an_error(two_videos):
    seg, videos, gts, intervals = two_videos
    seg["video"] = seg["video"].replace("b", "zz")
    with pytest.raises(MgenetError, match="zz"):
        frame_scores(seg, videos, gts, intervals, sigmas=[])


def test_gt_length_mismatch_is_an_error(two_videos):
    seg, videos, gts, intervals = two_videos
    gts["a"] = np.zeros(5, np.uint8)
    with pytest.raises(MgenetError, match="'a'"):
        frame_scores(seg, videos, gts, intervals, sigmas=[])


def test_interval_outside_video_is_an_error(two_videos):
    seg, videos, gts, intervals = two_videos
    intervals.loc[0, "end"] = 6  # inclusive end past frame 5
    with pytest.raises(MgenetError, match="outside"):
        frame_scores(seg, videos, gts, intervals, sigmas=[])


def test_bad_sigma_is_an_error(two_videos):
    with pytest.raises(MgenetError, match="sigma"):
        frame_scores(*two_videos, sigmas=[0])
