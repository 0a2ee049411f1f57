import numpy as np
import pytest
from onnx_models import heatmap_model, simcc_model
from photos import astronaut_bgr

from mgenet import MgenetError
from mgenet.pose import runtimes
from mgenet.pose.backends import PoseConfig, backend_class, make_backend
from mgenet.pose.onnx_backend import OnnxTopDownBackend, decode_heatmaps, decode_simcc
from mgenet.pose.regions import Region


def test_config_rejects_unknown_keys_and_ignores_source():
    cfg = PoseConfig.from_dict({"source": "extract", "every_n": 3, "tiles": [2, 1], "tracking": {"max_age": 4}})
    assert cfg.every_n == 3 and cfg.tiles == (2, 1) and cfg.tracking.max_age == 4
    with pytest.raises(MgenetError, match="unknown pose settings"):
        PoseConfig.from_dict({"evry_n": 2})
    with pytest.raises(MgenetError, match="pose.tracking"):
        PoseConfig.from_dict({"tracking": {"maxage": 2}})
    with pytest.raises(MgenetError, match="every_n"):
        PoseConfig(every_n=0)


def test_backend_registry_and_plugins():
    from scripted_backend import ScriptedBackend

    assert backend_class("mediapipe").__name__ == "MediaPipeBackend"
    assert backend_class("onnx") is OnnxTopDownBackend
    assert backend_class("scripted_backend:ScriptedBackend") is ScriptedBackend  # your own, by config
    assert isinstance(make_backend(PoseConfig(backend="scripted_backend:ScriptedBackend")), ScriptedBackend)
    with pytest.raises(MgenetError, match="unknown"):
        backend_class("openpose")
    with pytest.raises(MgenetError, match="cannot import"):
        backend_class("no_such_module:Backend")
    with pytest.raises(MgenetError, match="not a subclass"):
        backend_class("scripted_backend:NotABackend")


def test_mediapipe_models_are_found_in_the_installed_package_not_downloaded():
    p = runtimes.find_mediapipe_model("pose_landmark_full")
    assert p.is_file() and "mediapipe" in str(p) and p.stat().st_size > 1_000_000


def test_missing_mediapipe_models_name_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(runtimes.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MgenetError, match=r"pip install --no-deps mediapipe==0\.10\.14"):
        runtimes.find_mediapipe_model("pose_detection")
    # a copy in pose.model_dir is used instead
    (tmp_path / "pose_detection.tflite").write_bytes(b"x")
    assert runtimes.find_mediapipe_model("pose_detection", (tmp_path,)) == tmp_path / "pose_detection.tflite"


def test_decode_heatmaps_and_simcc_known_peaks():
    hm = np.zeros((1, 17, 16, 12), np.float32)
    hm[0, :, 5, 7] = 0.8
    hm[0, 3, 5, 8] = 0.5  # a higher right neighbour moves joint 3 a quarter cell right
    kp = decode_heatmaps(hm, 48, 64)
    np.testing.assert_allclose(kp[0, 0], [(7 + 0.5) * 4, (5 + 0.5) * 4, 0.8])
    np.testing.assert_allclose(kp[0, 3, :2], [(7.25 + 0.5) * 4, (5 + 0.5) * 4])
    sx, sy = np.zeros((1, 17, 96)), np.zeros((1, 17, 128))
    sx[0, :, 41] = 0.9
    sy[0, :, 10] = 0.7
    kp = decode_simcc(sx, sy, 48, 64)
    np.testing.assert_allclose(kp[0, 0], [20.75, 5.25, 0.7])


@pytest.mark.parametrize("kind", ["heatmap", "simcc", "batch1"])
def test_onnx_backend_runs_user_weights(tmp_path, kind):
    path = tmp_path / "pose.onnx"
    if kind == "simcc":
        simcc_model(path)
    else:
        heatmap_model(path, batch=1 if kind == "batch1" else "n")
    cfg = PoseConfig(backend="onnx", weights=str(path), detector="blazepose", min_pose_score=0.0,
                     min_person_height=0)
    be = make_backend(cfg)
    assert be.kind == ("simcc" if kind == "simcc" else "heatmap") and (be.in_h, be.in_w) == (64, 48)
    img = astronaut_bgr()
    regions = [Region(220, 250, 300), Region(100, 100, 120, 0.5)]
    kp = be.keypoints(img[..., ::-1].copy(), regions)
    assert kp.shape == (2, 17, 3) and kp.dtype == np.float32
    for r, k in zip(regions, kp):  # every keypoint lies inside its region's crop
        inside = np.abs(k[:, :2] - [r.cx, r.cy]).max()
        assert inside <= r.size / np.sqrt(2) + 1
        assert ((k[:, 2] >= 0) & (k[:, 2] <= 1)).all()
    found = be(img)  # BlazePose finds the astronaut; the random model poses her
    assert len(found) == 1 and found.keypoints.shape == (1, 17, 3)


def test_onnx_backend_errors(tmp_path):
    with pytest.raises(MgenetError, match="pose.weights is empty"):
        make_backend(PoseConfig(backend="onnx"))
    with pytest.raises(MgenetError, match=r"missing\.onnx: weights file not found.*resources/weights"):
        make_backend(PoseConfig(backend="onnx", weights=str(tmp_path / "missing.onnx")))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(MgenetError, match="not a loadable ONNX model"):
        make_backend(PoseConfig(backend="onnx", weights=str(bad)))


def test_detector_runs_every_kth_call_unless_nobody_is_tracked() -> None:
    from scripted_backend import ScriptedBackend

    backend = ScriptedBackend(PoseConfig(detect_every=3))
    hint = [Region(10, 10, 20)]
    assert [backend.detect_now(hint) for _ in range(7)] == [True, False, False, True, False, False, True]
    assert backend.detect_now(None) and backend.detect_now([])  # no tracked person to look for: detect
    backend.reset()
    assert backend.detect_now(hint) and not backend.detect_now(hint)
    with pytest.raises(MgenetError, match="detect_every"):
        PoseConfig(detect_every=0)


def test_a_lost_hint_runs_the_skipped_detector_at_once() -> None:
    """With detect_every > 1, a tracked person not found at their hint is looked for by the detector on the same
    frame: else their track ends (a tentative one at its first miss) until the next detector frame."""
    from mgenet.pose import mediapipe_backend as mb

    backend = make_backend(PoseConfig(detect_every=5, refine=False, detector="blazepose"))
    person_at, present = Region(100, 100, 80), {"hint": True}
    calls = {"detector": 0}

    def detector(frame):
        calls["detector"] += 1
        return [person_at]

    def landmarks(rgb, region):  # a person 60 px tall at the region's centre; the hint finds them only if present
        lm = np.zeros((mb.N_LANDMARKS, 3))
        lm[:, 0] = region.cx
        lm[:, 1] = region.cy + np.linspace(-30, 30, mb.N_LANDMARKS)
        lm[:, 2] = 0.9
        lm[mb.AUX_HIPS, :2], lm[mb.AUX_SCALE, :2] = (region.cx, region.cy), (region.cx, region.cy - 40)
        is_hint = region.cx == 101
        return lm, (0.9 if present["hint"] or not is_hint else 0.1)

    backend.detector, backend.landmarks = detector, landmarks
    frame = np.zeros((240, 320, 3), np.uint8)
    hint = [Region(101, 100, 80)]
    assert len(backend(frame, None)) == 1 and calls["detector"] == 1  # first call: the detector runs
    assert len(backend(frame, hint)) == 1 and calls["detector"] == 1  # the hint finds the person: no detector
    present["hint"] = False
    assert len(backend(frame, hint)) == 1 and calls["detector"] == 2  # the hint misses: the detector finds them


def test_skip_inner_skips_detections_inside_a_found_person_only() -> None:
    """pose.skip_inner: a detection centred inside a found person's confident joints (and no taller) gets no
    landmark pass; one beside the person, or off by default, does."""
    from mgenet.pose import mediapipe_backend as mb

    person, part, beside = Region(100, 100, 80), Region(97, 110, 30), Region(200, 100, 80)
    passes: list[Region] = []

    def landmarks(rgb, region):  # a person 60 px tall, 20 px wide, at the region's centre; only whole regions pass
        lm = np.zeros((mb.N_LANDMARKS, 3))
        lm[:, 0] = region.cx + np.linspace(-10, 10, mb.N_LANDMARKS)
        lm[:, 1] = region.cy + np.linspace(-30, 30, mb.N_LANDMARKS)[::-1]
        lm[:, 2] = 0.9
        lm[mb.AUX_HIPS, :2], lm[mb.AUX_SCALE, :2] = (region.cx, region.cy), (region.cx, region.cy - 40)
        passes.append(region)
        return lm, (0.9 if region.size == 80 else 0.1)

    frame = np.zeros((240, 320, 3), np.uint8)
    for skip, expected in ((True, [person, beside]), (False, [person, part, beside])):
        backend = make_backend(PoseConfig(skip_inner=skip, refine=False, detector="blazepose"))
        backend.detector, backend.landmarks = (lambda f: [person, part, beside]), landmarks
        passes.clear()
        assert len(backend(frame, None)) == 2
        assert passes == expected
