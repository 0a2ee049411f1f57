"""Keypoint accuracy of the default backend on real photographs (hand-checked joints) and on the demo's renders."""

import numpy as np
import pytest
from photos import ASTRONAUT, ASTRONAUT_TOL, astronaut_bgr, camera_bgr, composite, joint_errors, match, place

from mgenet.pose.backends import PoseConfig, make_backend


@pytest.fixture(scope="module")
def backend():
    return make_backend(PoseConfig(detector="blazepose", tiles=(3, 1)))


def _check(kp, gt, scale):
    errors = joint_errors(kp, gt)
    bad = {j: round(e, 1) for j, e in errors.items() if e > ASTRONAUT_TOL[j] * scale}
    assert not bad, f"joints off by more than their tolerance: {bad} (all errors {errors})"


def test_astronaut_photo(backend):
    found = backend(astronaut_bgr())
    assert len(found) == 1
    _check(found.keypoints[0], ASTRONAUT, 1.0)
    assert found.keypoints[0][[0, 1, 2, 5, 6], 2].min() > 0.5  # visible joints are confident


def test_mirrored_photo_keeps_anatomical_left_and_right(backend):
    canvas = np.zeros((512, 512, 3), np.uint8)
    gt = place(canvas, astronaut_bgr(), 0, 0, 1.0, True, ASTRONAUT)  # labels swap with the mirror
    (kp,) = backend(canvas).keypoints
    assert kp[1, 0] > kp[2, 0] and kp[5, 0] > kp[6, 0]  # still facing us: her left eye is on the image's right
    _check(kp, gt, 1.0)


def test_composite_of_scaled_and_mirrored_people(backend):
    canvas, gts, scales = composite()
    found = backend(canvas)
    assert len(found) == 3
    for gt, s in zip(gts, scales):
        _check(match(found.keypoints, gt), gt, s)


def test_cameraman_photo_one_person(backend):
    found = backend(camera_bgr())
    assert len(found) == 1
    kp = found.keypoints[0]
    assert 200 < kp[0, 0] < 260 and 140 < kp[0, 1] < 200  # his nose (seen in profile) is near (245, 170)


def test_demo_render_pck(tmp_path):
    demo = pytest.importorskip("mgenet.datasets.demo")
    from mgenet.pose.extract import extract_poses
    from mgenet.pose.metrics import pck

    root = tmp_path / "demo"
    demo.generate_demo(root, demo.DemoConfig(n_scenes=2, train_videos_per_scene=1, test_videos_per_scene=1, val_videos_per_scene=0,
                                             frames=48))
    video = sorted((root / "videos" / "train").glob("*.mp4"))[0]
    gt = np.load(root / "gt" / "joints" / f"{video.stem}.npz")["joints"]
    poses, _ = extract_poses(video, PoseConfig(detector="both"))
    r = pck(poses, gt)
    assert r.recall > 0.5 and r.pck_found > 0.6, r
