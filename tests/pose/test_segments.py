import math

import numpy as np
import pytest
from helpers import standing_pose

from mgenet.pose.skeleton import OPENPOSE18, coco17_to_openpose18, normalize_segments
from mgenet.pose.segments import SegmentConfig, build_segments, window_starts


def test_coco_to_openpose18_order_and_neck():
    kp = np.arange(17 * 3, dtype=np.float32).reshape(17, 3)
    out = coco17_to_openpose18(kp)
    assert out.shape == (18, 3)
    assert OPENPOSE18[1] == "neck" and OPENPOSE18[2] == "r_shoulder"
    np.testing.assert_allclose(out[1, :2], (kp[5, :2] + kp[6, :2]) / 2)
    assert out[1, 2] == min(kp[5, 2], kp[6, 2])
    np.testing.assert_array_equal(out[2], kp[6])  # r-shoulder
    np.testing.assert_array_equal(out[17], kp[3])  # l-ear


def test_normalisation_is_stgnf():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (3, 5, 18, 2))
    out = normalize_segments(xy, 200, 100)
    ref = xy / [200, 100]
    ref = ref - ref.mean(axis=(1, 2), keepdims=True)
    ref = ref / ref[..., 1].std(axis=(1, 2))[:, None, None, None]
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    np.testing.assert_allclose(out[..., 1].std(axis=(1, 2)), 1, rtol=1e-5)


def test_window_count_matches_stgnf_ceil():
    frames = list(range(40))
    starts = window_starts(frames, 24, 6, 2)
    assert len(starts) == math.ceil((40 - 24) / 6) == 3
    assert starts == [0, 6, 12]
    # the last window (start 16) is only kept on request
    assert window_starts(frames, 24, 6, 2, keep_last=True) == [0, 6, 12]
    assert window_starts(list(range(42)), 24, 6, 2, keep_last=True) == [0, 6, 12, 18]
    assert window_starts(list(range(24)), 24, 1, 2) == []  # STG-NF drops a track of exactly seg_len frames
    assert window_starts(list(range(24)), 24, 1, 2, keep_last=True) == [0]


def test_window_gaps_bridged_up_to_max_missing():
    frames = [f for f in range(30) if f not in (5, 6)]  # a 2-frame gap
    assert 0 in window_starts(frames, 10, 1, 2)
    frames = [f for f in range(30) if f not in (5, 6, 7)]  # 3 missing: windows over the gap dropped
    assert 0 not in window_starts(frames, 10, 1, 2)


def test_build_segments_shapes_and_mid_frame():
    poses = {4: {f: standing_pose(10 + f, 80) for f in range(30)}, 9: {f: standing_pose(5, 90) for f in range(8)}}
    cfg = SegmentConfig(seg_len=8, train_stride=4, test_stride=1)
    out = build_segments(poses, 160, 120, "test", cfg)
    n = math.ceil((30 - 8) / 1)
    assert out["pose"].shape == (n, 2, 8, 18)
    assert out["confidence"].shape == (n, 8, 18) and out["boxes"].shape == (n, 8, 4)
    assert set(out["person_id"]) == {4}  # person 9 has exactly seg_len frames: STG-NF keeps none
    np.testing.assert_array_equal(out["mid_frame"], out["start_frame"] + 4)
    np.testing.assert_array_equal(out["frames"][:, 0], out["start_frame"])
    box = out["boxes"][0, 0]
    assert box[0] < box[2] and box[1] < box[3]
    train = build_segments(poses, 160, 120, "train", cfg)
    assert len(train["person_id"]) == math.ceil((30 - 8) / 4)


def test_build_segments_no_person():
    out = build_segments({}, 160, 120, "test", SegmentConfig(seg_len=8))
    assert out["pose"].shape == (0, 2, 8, 18) and out["person_id"].shape == (0,)


def test_segment_config_rejects_unknown_key():
    with pytest.raises(ValueError, match="seglen"):
        SegmentConfig.from_dict({"seglen": 3})


def test_norm_size_stgnf_divides_by_856x480_whatever_the_frame():
    """STG-NF divides every video's pixels by 856x480; ``frame`` divides by the video's own size. Only x's scale
    relative to y differs: y is standardised either way."""
    poses = {1: {f: standing_pose(10 + 2 * f, 80) for f in range(12)}}
    kp = coco17_to_openpose18(np.stack([poses[1][f] for f in range(8)]))[None, ..., :2]
    stgnf = build_segments(poses, 320, 240, "train", SegmentConfig(seg_len=8, train_stride=4))["pose"]
    frame = build_segments(poses, 320, 240, "train", SegmentConfig(seg_len=8, train_stride=4,
                                                                   norm_size="frame"))["pose"]
    np.testing.assert_allclose(stgnf[0], normalize_segments(kp, 856, 480)[0].transpose(2, 0, 1), rtol=1e-6)
    np.testing.assert_allclose(frame[0], normalize_segments(kp, 320, 240)[0].transpose(2, 0, 1), rtol=1e-6)
    np.testing.assert_allclose(stgnf[:, 1], frame[:, 1], rtol=1e-5)
    np.testing.assert_allclose(stgnf[:, 0], frame[:, 0] * (480 / 856) / (240 / 320), rtol=1e-5)
    with pytest.raises(ValueError, match="norm_size"):
        SegmentConfig(norm_size="video")
