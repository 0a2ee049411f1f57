"""Frame assignment and smoothing of segment scores, checked against hand-computed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter1d

from mgenet import MgenetError
from mgenet.io import INTERVAL_COLUMNS
from mgenet.scoring.frames import DEFAULT_SIGMAS, frame_scores


def _seg(video, mid, **scores):
    n = len(mid)
    return pd.DataFrame({"video": [video] * n, "person_id": np.zeros(n, int), "start_frame": np.asarray(mid) - 1,
                         "mid_frame": mid, **scores})


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
