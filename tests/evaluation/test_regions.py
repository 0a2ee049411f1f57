"""RBDC and TBDC (Ramachandra & Jones, WACV 2020) on hand-made detections with areas worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgenet import MgenetError
from mgenet.io import write_segments
from mgenet.evaluation.regions import (
    add_localization,
    rowwise_iou,
    detections,
    localization_metrics,
    rbdc_tbdc,
    segment_boxes,
)


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 0, 5]])
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [52, 52, 62, 62], [0, 0, 0, 5]])
    # 8 x 8 = 64 shared of 100 + 100 - 64; an empty box overlaps nothing
    np.testing.assert_allclose(rowwise_iou(a, b), [1.0, 0.0, 64 / 136, 0.0])


@pytest.fixture
def case():
    """One video of 10 frames. Track A: the same box in frames 0-3 (4 regions); track B: frame 5 (1 region).

    Detections (frame, box, score): 0 on A .9; 1 on A .5; 2 elsewhere .8 (false positive); 5 near B (IoU 64/136) .3;
    6 where A was, but no region there .7 (false positive).
    Thresholds .9 .8 .7 .5 .3 give (false positives per frame, RBDR): (0, .2) (.1, .2) (.2, .2) (.2, .4) (.2, .6),
    flat to 1 after: RBDC = .1 * .2 + .1 * .2 + .8 * .6 = .52. Tracks (A from its best region, 1 of 4 >= 10%):
    TBDR (0, .5) (.1, .5) (.2, .5) (.2, .5) (.2, 1): TBDC = .05 + .05 + .8 = .9.
    """
    gt = pd.DataFrame({"video": "v", "track": ["A"] * 4 + ["B"], "frame": [0, 1, 2, 3, 5],
                       "x1": [0, 0, 0, 0, 50], "y1": [0, 0, 0, 0, 50], "x2": [10, 10, 10, 10, 60],
                       "y2": [10, 10, 10, 10, 60]})
    det = pd.DataFrame({"video": "v", "frame": [0, 1, 2, 5, 6], "x1": [0, 0, 100, 52, 0], "y1": [0, 0, 100, 52, 0],
                        "x2": [10, 10, 110, 62, 10], "y2": [10, 10, 110, 62, 10], "s": [0.9, 0.5, 0.8, 0.3, 0.7]})
    return det, gt


def test_rbdc_tbdc_hand_computed(case):
    det, gt = case
    assert rbdc_tbdc(det, gt, 10, "s") == pytest.approx((0.52, 0.9))


def test_track_fraction(case):
    # alpha 0.5: A needs 2 of its 4 regions, its second best scores .5: TBDR (0, 0) (.1, 0) (.2, 0) (.2, .5) (.2, 1)
    # -> .8 * 1; RBDC does not depend on alpha. alpha 0.3 of 10 regions is 3, not ceil(3.0000000000000004) = 4.
    det, gt = case
    assert rbdc_tbdc(det, gt, 10, "s", track_fraction=0.5) == pytest.approx((0.52, 0.8))
    gt10 = pd.DataFrame({"video": "v", "track": "A", "frame": np.arange(10), "x1": 0, "y1": 0, "x2": 10, "y2": 10})
    det3 = pd.DataFrame({"video": "v", "frame": [0, 1, 2], "x1": 0, "y1": 0, "x2": 10, "y2": 10, "s": [3.0, 2, 1]})
    # 3 regions detected at threshold 1 with no false positive: TBDR is 1 from x = 0
    assert rbdc_tbdc(det3, gt10, 10, "s", track_fraction=0.3)[1] == pytest.approx(1.0)


def test_max_fp_per_frame_cuts_and_normalises(case):
    # up to .15 false positives per frame: RBDR .2 and TBDR .5 over the whole range
    det, gt = case
    assert rbdc_tbdc(det, gt, 10, "s", max_fp=0.15) == pytest.approx((0.2, 0.5))


def test_a_detection_below_the_iou_is_a_false_positive(case):
    det, gt = case
    # on region A@3 but barely: IoU 1 / 199 < .1, so it detects nothing and counts as a false positive at .95:
    # every point moves right by .1: RBDR (.1, 0) (.1, .2) (.2, .2) (.3, .2) (.3, .4) (.3, .6) ->
    # .1 * .2 + .1 * .2 + .7 * .6 = .46
    extra = pd.DataFrame({"video": "v", "frame": [3], "x1": [9], "y1": [9], "x2": [19], "y2": [19], "s": [0.95]})
    assert rbdc_tbdc(pd.concat([det, extra]), gt, 10, "s")[0] == pytest.approx(0.46)
    # with beta 0.001 it detects A@3 instead: RBDR (0, .2) at .95 and the curve of before shifted up by .2 until .5
    assert rbdc_tbdc(pd.concat([det, extra]), gt, 10, "s", iou=0.001)[0] == pytest.approx(
        0.1 * 0.4 + 0.1 * 0.4 + 0.8 * 0.8)


def test_perfect_and_useless_detectors(case):
    _, gt = case
    on_gt = gt.assign(s=1.0)
    assert rbdc_tbdc(on_gt, gt, 10, "s") == (1.0, 1.0)
    nowhere = gt.assign(x1=200, x2=210, s=1.0)  # every detection is a false positive, nothing is detected
    assert rbdc_tbdc(nowhere, gt, 10, "s") == (0.0, 0.0)


def test_localization_metrics_keeps_the_evaluated_videos(case):
    det, gt = case
    other = gt.assign(video="w")  # a video that is not evaluated (e.g. left out by a scene split)
    loc = localization_metrics(det, pd.concat([gt, other]), 10, ["v"], ["s"])
    assert loc["scores"] == {"s": {"rbdc": pytest.approx(0.52), "tbdc": pytest.approx(0.9)}}
    assert loc["settings"] == {"iou": 0.1, "track_fraction": 0.1, "max_fp_per_frame": 1.0, "n_regions": 5,
                               "n_tracks": 2, "n_detections": 5, "n_frames": 10}
    assert localization_metrics(det, other, 10, ["v"], ["s"]) is None


def test_add_localization_leaves_metrics_without_boxes_alone():
    m = {"scores": {"fused": {"micro_auc": 0.7}}}
    assert add_localization(m, None) == {"scores": {"fused": {"micro_auc": 0.7}}}
    add_localization(m, {"settings": {"iou": 0.1}, "scores": {"fused": {"rbdc": 0.5, "tbdc": 0.25}}})
    assert m == {"scores": {"fused": {"micro_auc": 0.7, "rbdc": 0.5, "tbdc": 0.25}}, "localization": {"iou": 0.1}}


def _segments_file(path, frames, boxes, pids, T=4):
    n = len(frames)
    frames = np.asarray(frames, np.int32)
    write_segments(path, {"pose": np.zeros((n, 2, T, 18)), "confidence": np.ones((n, T, 18)),
                          "keypoints": np.zeros((n, T, 18, 2)), "boxes": np.asarray(boxes, np.float32),
                          "frames": frames, "person_id": pids, "start_frame": frames[:, 0],
                          "mid_frame": frames[:, 0] + T // 2}, {})


def test_segment_boxes_take_the_middle_frame(tmp_path):
    boxes = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    # segment 2 missed its middle frame 12 (a tracking gap): the box of the nearest step, frame 13, stands in
    _segments_file(tmp_path / "vid.h5", [[0, 1, 2, 3], [10, 13, 14, 15]], boxes, [1, 2])
    df = segment_boxes([tmp_path / "vid.h5"])
    assert df["video"].tolist() == ["vid", "vid"] and df["mid_frame"].tolist() == [2, 12]
    np.testing.assert_array_equal(df[["x1", "y1", "x2", "y2"]].to_numpy(), [boxes[0, 2], boxes[1, 1]])
    seg = pd.DataFrame({"video": ["vid"], "person_id": [2], "start_frame": [10], "mid_frame": [12], "nf": [1.0]})
    det = detections(seg, df)
    assert det["frame"].tolist() == [12] and det["x1"].tolist() == [boxes[1, 1, 0]]
    with pytest.raises(MgenetError, match="no box in the segments files"):
        detections(seg.assign(start_frame=99), df)
