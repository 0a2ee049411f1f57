"""Bad input through the command line: one clear error naming the file, and no artifact left behind."""

from __future__ import annotations

import json

import pandas as pd
from helpers import make_stgnf_dataset, standing_pose

from mgenet.cli import main
from mgenet.io import MANIFEST_COLUMNS


def _manifest(tmp_path, pose_path, frames=40):
    df = pd.DataFrame([{"video": "01_0001", "split": "test", "scene": "01", "frames": frames, "fps": 25.0,
                        "height": 120, "width": 160, "video_path": "", "pose_path": str(pose_path),
                        "gt_path": ""}])[MANIFEST_COLUMNS]
    path = tmp_path / "manifest.csv"
    df.to_csv(path, index=False)
    return path


def test_import_pose_nan_is_one_error_and_no_output(tmp_path, capsys):
    kp = standing_pose(10, 50).reshape(-1).tolist()
    kp[0] = float("nan")
    src = tmp_path / "p.json"
    src.write_text(json.dumps({"1": {"0003": {"keypoints": kp, "scores": 0.9}}}))
    out = tmp_path / "out" / "01_0001.json"
    rc = main(["import-pose", "--manifest", str(_manifest(tmp_path, src)), "--video", "01_0001", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and str(src) in err and "NaN" in err
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())  # no temporary file either


def test_import_pose_frame_beyond_video(tmp_path, capsys):
    src = tmp_path / "p.json"
    src.write_text(json.dumps({"1": {"0050": {"keypoints": standing_pose(10, 50).reshape(-1).tolist()}}}))
    out = tmp_path / "o.json"
    rc = main(["import-pose", "--manifest", str(_manifest(tmp_path, src, frames=40)), "--video", "01_0001",
               "--out", str(out)])
    assert rc == 1 and "frame 50" in capsys.readouterr().err and not out.exists()


def test_missing_pose_file_names_it(tmp_path, capsys):
    src = tmp_path / "gone.json"
    rc = main(["import-pose", "--manifest", str(_manifest(tmp_path, src)), "--video", "01_0001",
               "--out", str(tmp_path / "o.json")])
    assert rc == 1 and str(src) in capsys.readouterr().err


def test_video_with_no_person_gives_empty_segments(tmp_path):
    src = tmp_path / "p.json"
    src.write_text("{}")
    man = _manifest(tmp_path, src)
    assert main(["import-pose", "--manifest", str(man), "--video", "01_0001", "--out", str(tmp_path / "o.json")]) == 0
    seg = tmp_path / "s.h5"
    assert main(["segments", "--manifest", str(man), "--video", "01_0001", "--pose", str(tmp_path / "o.json"),
                 "--params", json.dumps({"seg_len": 8}), "--out", str(seg)]) == 0
    import h5py

    with h5py.File(seg) as f:
        assert f["pose"].shape == (0, 2, 8, 18) and f.attrs["video"] == "01_0001"
        assert f["pose"].dims[3].label == "joint"


def test_index_unknown_layout(tmp_path, capsys):
    root = make_stgnf_dataset(tmp_path / "d")
    out = tmp_path / "m.csv"
    rc = main(["index", "--params", json.dumps({"root": str(root), "layout": "avenue"}), "--out", str(out)])
    assert rc == 1 and "avenue" in capsys.readouterr().err and not out.exists()


def test_inspect_prints_layout(tmp_path, capsys):
    src = tmp_path / "p.json"
    src.write_text(json.dumps({"1": {f"{f:04d}": {"keypoints": standing_pose(10 + f, 50).reshape(-1).tolist()}
                                     for f in range(20)}}))
    man = _manifest(tmp_path, src)
    seg = tmp_path / "s.h5"
    assert main(["segments", "--manifest", str(man), "--video", "01_0001", "--pose", str(src),
                 "--params", json.dumps({"seg_len": 8}), "--out", str(seg)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(seg), "--clip", "0"]) == 0
    out = capsys.readouterr().out
    assert "pose: shape (12, 2, 8, 18) [clip, coord, time, joint] float32" in out
    assert "@seg_len = " in out and "clip 0: min" in out
