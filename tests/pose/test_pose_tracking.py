import numpy as np
import pytest
from helpers import standing_pose

from mgenet.pose.backends import TrackerConfig
from mgenet.pose.tracking import Tracker, interpolate_track, oks


def _run(tracker, frames):
    """frames: list of (frame, [poses]); returns {frame: ids}"""
    return {f: tracker.update(f, np.array(p, np.float32).reshape(-1, 17, 3)) for f, p in frames}


def _walker(x0, vx, y=200.0, h=80.0):
    return lambda f: standing_pose(x0 + vx * f, y, h)


def test_oks_is_one_for_identical_poses_and_falls_with_distance():
    p = standing_pose(100, 200)[None]
    assert oks(p, p)[0, 0] == pytest.approx(1.0)
    q = p.copy()
    q[..., :2] += 5
    r = p.copy()
    r[..., :2] += 20
    assert 1 > oks(p, q)[0, 0] > oks(p, r)[0, 0] > 0


@pytest.mark.parametrize("same_height", [True, False])
def test_two_people_crossing_keep_their_ids(same_height):
    rng = np.random.default_rng(1)
    a, b = _walker(40, 4.0), _walker(360, -4.0, y=200 if same_height else 210, h=80 if same_height else 90)
    tr = Tracker(TrackerConfig(min_hits=2))
    for f in range(80):  # they meet at frame 40
        poses = [a(f), b(f)]
        order = rng.permutation(2)  # detections come in no particular order
        dets = np.stack([poses[i] for i in order])
        dets[..., :2] += rng.normal(0, 1.0, dets[..., :2].shape)
        if 38 <= f <= 41:  # one hides the other while they overlap
            dets = dets[:1]
        tr.update(f, dets)
    res = tr.result()
    assert len(res) == 2
    for track in res.values():
        xs = [track[f][:, 0].mean() for f in sorted(track)]
        start = xs[0]
        going_right = start < 200
        # each track keeps moving the same way through the crossing: one person, one id
        assert all((x2 - x1 > 0) == going_right for x1, x2 in zip(xs, xs[1:]))
        assert sorted(track) == list(range(80))  # the hidden frames are bridged


def test_birth_after_min_hits_and_false_positives_dropped():
    tr = Tracker(TrackerConfig(min_hits=3))
    walker = _walker(50, 2.0)
    ids = _run(tr, [(f, [walker(f)] + ([standing_pose(300, 100)] if f in (5, 6) else [])) for f in range(10)])
    assert ids[0] == [None] and ids[1] == [None] and ids[2] == [0]  # born at its third detection
    assert ids[5][1] is None  # the 2-frame blip never becomes a track
    res = tr.result()
    assert list(res) == [0] and sorted(res[0]) == list(range(10))  # frames before birth are kept


def test_death_after_max_age_gives_a_new_id():
    tr = Tracker(TrackerConfig(min_hits=1, max_age=3))
    walker = _walker(50, 1.0)
    frames = [(f, [walker(f)]) for f in range(5)] + [(f, []) for f in range(5, 12)] + \
             [(f, [walker(f)]) for f in range(12, 15)]
    _run(tr, frames)
    res = tr.result()
    assert len(res) == 2 and sorted(res[0]) == list(range(5)) and sorted(res[1]) == [12, 13, 14]


def test_short_gap_is_bridged_by_interpolation():
    tr = Tracker(TrackerConfig(min_hits=1, max_age=5))
    walker = _walker(50, 3.0)
    _run(tr, [(f, [walker(f)] if f not in (4, 5, 6) else []) for f in range(10)])
    (track,) = tr.result().values()
    assert sorted(track) == list(range(10))
    np.testing.assert_allclose(track[5][:, :2], walker(5)[:, :2], atol=1e-4)  # linear motion: exact


def test_interpolate_track_respects_max_gap_and_scores():
    p0 = standing_pose(0, 100, score=0.9)
    p1 = standing_pose(40, 100, score=0.5)
    full = interpolate_track([0, 4], [p0, p1], max_gap=3)
    assert sorted(full) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(full[1][:, 0], p0[:, 0] + 10, atol=1e-5)
    assert (full[2][:, 2] == 0.5).all()
    assert sorted(interpolate_track([0, 4], [p0, p1], max_gap=2)) == [0, 4]


def test_frames_must_increase():
    tr = Tracker()
    tr.update(3, np.zeros((0, 17, 3)))
    with pytest.raises(ValueError):
        tr.update(3, np.zeros((0, 17, 3)))
