import json
import logging

import cv2
import numpy as np
import pytest
from helpers import standing_pose
from photos import astronaut_bgr
from scripted_backend import ScriptedBackend

from mgenet import MgenetError
from mgenet.cli import main
from mgenet.io import read_alphapose
from mgenet.pose import extract as ex
from mgenet.pose.backends import PoseConfig
from mgenet.io.video import VideoInfo


def _frame_folder(path, n, size=(48, 64), start=0):
    path.mkdir(parents=True)
    for i in range(n):
        img = np.full((*size, 3), i * 10 % 256, np.uint8)
        cv2.imwrite(str(path / f"{start + i:05d}.png"), img)
    return path


def _video(path, frames, fps=10):
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        wr.write(f)
    wr.release()
    return path


def _scripted(script):
    be = ScriptedBackend(PoseConfig())
    be.script = script
    return be


@pytest.mark.parametrize("every_n, called", [(1, list(range(10))), (3, [0, 3, 6, 9]), (4, [0, 4, 8, 9])])
def test_every_n_runs_the_model_on_every_nth_frame_and_interpolates(tmp_path, every_n, called):
    folder = _frame_folder(tmp_path / "v", 10)
    truth = {f: standing_pose(10 + 1.5 * f, 60, h=50) for f in range(10)}  # a brisk walker
    be = _scripted([truth[f][None] for f in called])
    cfg = PoseConfig(every_n=every_n)
    poses, stats = ex.extract_poses(folder, cfg, backend=be)
    assert [int(c[0]) for c in be.calls] == [f * 10 for f in called]  # frames given to the model
    assert stats.processed == len(called) and stats.frames == 10
    (track,) = poses.values()
    assert sorted(track) == list(range(10))
    for f in range(10):  # linear motion is recovered exactly between the model's frames
        np.testing.assert_allclose(track[f][:, :2], truth[f][:, :2], atol=1e-4)


def test_frames_are_streamed_not_loaded(tmp_path, monkeypatch):
    n = 40
    state = {"yielded": 0, "max_ahead": 0}
    be = _scripted([])

    def frames(path):
        for i in range(n):
            state["yielded"] += 1
            state["max_ahead"] = max(state["max_ahead"], state["yielded"] - len(be.calls))
            yield i, np.full((32, 32, 3), i, np.uint8)

    monkeypatch.setattr(ex, "iter_frames", frames)
    monkeypatch.setattr(ex, "probe", lambda p: VideoInfo(n, 25.0, 32, 32))
    _, stats = ex.extract_poses(tmp_path / "clip.mp4", PoseConfig(), backend=be)
    assert stats.frames == n and len(be.calls) == n
    assert state["max_ahead"] <= 2  # one frame of look-ahead (to know the last frame), never the whole video


def test_frame_folder_with_a_missing_frame_fails_before_writing(tmp_path):
    folder = _frame_folder(tmp_path / "v", 6)
    (folder / "00003.png").unlink()
    out = tmp_path / "pose.json"
    with pytest.raises(MgenetError, match=r"frame 3 is missing"):
        ex.extract_pose_file(folder, out, {"backend": "scripted_backend:ScriptedBackend"})
    assert not out.exists()


def test_unreadable_frame_image_fails_cleanly(tmp_path):
    folder = _frame_folder(tmp_path / "v", 4)
    (folder / "00002.png").write_bytes(b"garbage")
    out = tmp_path / "pose.json"
    with pytest.raises(MgenetError, match=r"00002\.png: unreadable frame image"):
        ex.extract_pose_file(folder, out, {"backend": "scripted_backend:ScriptedBackend"})
    assert not out.exists() and list(tmp_path.iterdir()) == [folder]


def test_unreadable_video_is_a_clear_cli_error(tmp_path, capsys):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 1000)
    out = tmp_path / "pose.json"
    assert main(["pose", str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "clip.mp4" in err
    assert not out.exists()
    assert main(["pose", str(tmp_path / "missing.mp4"), "--out", str(out)]) == 1
    assert "video not found" in capsys.readouterr().err


def test_crash_mid_file_leaves_no_json(tmp_path, monkeypatch):
    folder = _frame_folder(tmp_path / "v", 8)
    be = _scripted([standing_pose(20, 40, 30)[None]] * 8)
    be.fail_at = 5
    out = tmp_path / "out" / "pose.json"
    monkeypatch.setattr(ex, "make_backend", lambda cfg, threads=1: be)
    with pytest.raises(RuntimeError, match="backend crashed"):
        ex.extract_pose_file(folder, out, {}, preview=tmp_path / "out" / "preview.mp4")
    assert not out.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []  # no temp file either


def test_video_with_no_person_gives_an_empty_pose_file(tmp_path, caplog):
    rng = np.random.default_rng(0)
    frames = [np.clip(rng.normal(120, 20, (120, 160, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    video = _video(tmp_path / "empty.mp4", frames)
    out = tmp_path / "pose.json"
    assert main(["pose", str(video), "--out", str(out), "--params", json.dumps({"detector": "both"})]) == 0
    assert json.loads(out.read_text()) == {} and read_alphapose(out) == {}
    assert "no person found" in caplog.text


def test_people_too_small_to_detect_give_the_documented_empty_result(tmp_path):
    person = cv2.resize(astronaut_bgr(), (20, 20), interpolation=cv2.INTER_AREA)  # a 20-px person
    frames = []
    for i in range(4):
        f = np.full((240, 320, 3), 128, np.uint8)
        f[100:120, 100 + i:120 + i] = person
        frames.append(f)
    video = _video(tmp_path / "tiny.mp4", frames)
    out = tmp_path / "pose.json"
    stats = ex.extract_pose_file(video, out, {"detector": "blazepose"})
    assert stats.tracks == 0 and read_alphapose(out) == {}


@pytest.fixture(scope="module")
def astronaut_video(tmp_path_factory):
    """8 frames of the astronaut photo drifting right, 2 px a frame (256x256)."""
    img = cv2.resize(astronaut_bgr(), (256, 256), interpolation=cv2.INTER_AREA)
    frames = [np.roll(img, 2 * i, axis=1) for i in range(8)]
    return _video(tmp_path_factory.mktemp("v") / "astronaut.mp4", frames)


def test_cli_pose_writes_tracked_json_and_preview(astronaut_video, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mgenet")
    out, preview = tmp_path / "pose.json", tmp_path / "preview.mp4"
    params = {"detector": "blazepose", "tracking": {"min_hits": 2}}
    assert main(["pose", str(astronaut_video), "--out", str(out), "--preview", str(preview),
                 "--params", json.dumps(params), "--no-progress"]) == 0
    poses = read_alphapose(out)  # the one loader reads what the extractor writes
    assert list(poses) == [0] and sorted(poses[0]) == list(range(8))
    nose_x = [poses[0][f][0, 0] for f in range(8)]
    assert 8 < nose_x[-1] - nose_x[0] < 20  # she drifts 14 px
    assert "8 frames" in caplog.text and "1 tracks" in caplog.text and "mean keypoint score" in caplog.text
    cap = cv2.VideoCapture(str(preview))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = cap.read()
    cap.release()
    assert n == 8 and ok
    cap = cv2.VideoCapture(str(astronaut_video))
    _, raw = cap.read()
    cap.release()
    assert np.abs(first.astype(int) - raw.astype(int)).max() > 100  # skeleton drawn
