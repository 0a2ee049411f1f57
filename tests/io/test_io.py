import json
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import standing_pose

from mgenet import MgenetError
from mgenet.cli.rules import explain
from mgenet.io import (atomic_path, load_gt_mask, load_torch, open_h5, read_alphapose, read_anomaly_boxes, read_features,
                       read_parquet, read_segments, write_alphapose)


def test_alphapose_round_trip(tmp_path):
    poses = {3: {0: standing_pose(10, 50), 7: standing_pose(12, 50)}, 1: {2: standing_pose(40, 60)}}
    path = tmp_path / "p.json"
    write_alphapose(poses, path)
    raw = json.loads(path.read_text())
    assert list(raw) == ["1", "3"] and list(raw["3"]) == ["0000", "0007"]
    assert len(raw["3"]["0007"]["keypoints"]) == 51
    back = read_alphapose(path)
    assert sorted(back) == [1, 3] and sorted(back[3]) == [0, 7]
    np.testing.assert_allclose(back[3][7], poses[3][7], atol=1e-3)


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("[1, 2]", "expected an object"),
    ('{"x": {}}', "not an integer"),
    ('{"1": {"0": {"keypoints": [1, 2, 3]}}}', "must hold 51"),
    ('{"1": {"0": {"scores": 1}}}', "no 'keypoints'"),
    ('{"1": {"zero": {"keypoints": []}}}', "frame key"),
    ("{not json", "not valid JSON"),
    ('{"1": {"0": {"keypoints": ["12.5"' + ', 1' * 50 + ']}}}', "non-numeric"),  # a number as a string, too
    ('{"1": {"0": {"keypoints": [null' + ', 1' * 50 + ']}}}', "non-numeric"),
    ('{"1": {"0": {"keypoints": [[1, 2]' + ', 1' * 50 + ']}}}', "non-numeric"),
    ('{"02": {"0": {"keypoints": [' + ', '.join(['1'] * 51) + ']}}, "2": {}}',
     "person ids '02' and '2' are the same person 2"),
])
def test_alphapose_bad_input_names_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(MgenetError, match=message) as e:
        read_alphapose(path)
    assert str(path) in str(e.value)


def test_alphapose_nan_names_person_and_frame(tmp_path):
    kp = standing_pose(10, 50).reshape(-1).tolist()
    kp[4] = float("nan")
    path = tmp_path / "nan.json"
    path.write_text(json.dumps({"5": {"0012": {"keypoints": kp, "scores": 1.0}}}).replace("NaN", "NaN"))
    with pytest.raises(MgenetError, match=r"person 5, frame 0012: keypoints contain NaN"):
        read_alphapose(path)


def test_missing_pose_file(tmp_path):
    with pytest.raises(MgenetError, match="pose file not found"):
        read_alphapose(tmp_path / "nope.json")


def test_empty_object_means_no_person(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("{}")
    assert read_alphapose(path) == {}


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_removes_leftovers_of_a_killed_writer(tmp_path):
    target = tmp_path / "v[1].h5"
    (tmp_path / ".v[1].h5.tmp4242").write_text("half, from a job killed with SIGKILL")
    (tmp_path / ".other.h5.tmp4242").write_text("another target's, untouched")
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.h5.tmp4242", "v[1].h5"]


def test_sigterm_unwinds_and_removes_the_temporary_file(tmp_path):
    code = (
        "import argparse, os, signal, sys, time\n"
        "from mgenet import cli\n"
        "from mgenet.io import atomic_path\n"
        "def fn(args):\n"
        "    with atomic_path(args.out) as tmp:\n"
        "        tmp.write_text('half')\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(30)\n"
        "def parser():\n"
        "    ap = argparse.ArgumentParser()\n"
        "    ap.add_argument('out')\n"
        "    ap.set_defaults(fn=fn, verbose=False, threads=0)\n"
        "    return ap\n"
        "cli.build_parser = parser\n"
        "sys.exit(cli.main([sys.argv[1]]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.h5")], capture_output=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_gt_mask_formats_and_length_check(tmp_path):
    np.save(tmp_path / "v.npy", np.array([0, 1, 1, 0], np.uint8))
    assert load_gt_mask(tmp_path / "v.npy", 4).tolist() == [0, 1, 1, 0]
    with pytest.raises(MgenetError, match="has 4 frames but the video has 5"):
        load_gt_mask(tmp_path / "v.npy", 5)
    (tmp_path / "t_tracks.txt").write_text("0,1,2\n\n4,5,5\n")
    assert load_gt_mask(tmp_path / "t_tracks.txt", 7).tolist() == [0, 1, 1, 0, 0, 1, 0]
    with pytest.raises(MgenetError, match="outside the video"):
        load_gt_mask(tmp_path / "t_tracks.txt", 5)
    assert load_gt_mask("", 3).tolist() == [0, 0, 0]


def test_anomaly_boxes_are_checked(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("video,track,frame,x1,y1,x2,y2\n01_0001,3,10,1,2,5,9\n01_0001,3,11,1,2,5,9\n")
    df = read_anomaly_boxes(path)
    assert df["video"].tolist() == ["01_0001"] * 2 and df["track"].tolist() == ["3", "3"]
    assert df["frame"].tolist() == [10, 11]
    for text, message in [("video,track,frame,x1,y1,x2\n", "lacks columns"),
                          ("video,track,frame,x1,y1,x2,y2\nv,1,0,5,2,5,9\n", "row 2 is not a box"),
                          ("video,track,frame,x1,y1,x2,y2\nv,1,-1,1,2,5,9\n", "row 2 is not a box"),
                          ("video,track,frame,x1,y1,x2,y2\nv,1,0,1,2,5,9\nv,1,0,1,2,6,9\n", "two boxes in frame 0"),
                          ("video,track,frame,x1,y1,x2,y2\nv,1,0,a,2,5,9\n", "must be numbers")]:
        path.write_text(text)
        with pytest.raises(MgenetError, match=message):
            read_anomaly_boxes(path)
    with pytest.raises(MgenetError, match="anomaly boxes"):
        read_anomaly_boxes(tmp_path / "none.csv")


def cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("rel, reader, rule", [
    ("features/v.h5", read_features, "extract_features"),
    ("segments/v.h5", read_segments, "build_segments"),
])
def test_a_truncated_hdf5_file_is_one_error_naming_it_and_the_rule_that_remakes_it(tmp_path, rel, reader, rule):
    import h5py

    path = tmp_path / "results" / "demo" / rel
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(20000.0))
    cut_in_half(path)
    with pytest.raises(MgenetError) as e:
        reader(path)
    msg = explain(e.value)  # the CLI's error line names the rule that remakes an artifact
    assert msg.startswith(f"{path}: ") and "is unreadable (" in msg and "truncated" in msg and "\n" not in msg
    assert msg.endswith(f"delete it and run snakemake again (rule {rule} remakes it).")
    assert str(e.value).endswith("replace it with a good copy.")  # the library's own message: no rule names
    with pytest.raises(MgenetError) as e:
        with open_h5(tmp_path / "results" / "demo" / "flow" / "test.h5", "flow latents"):
            pass
    assert "not found; it is made by rule encode_flow" in explain(e.value)


def test_a_truncated_score_table_names_the_rule(tmp_path):
    import pandas as pd

    path = tmp_path / "results" / "demo" / "scores" / "segments.parquet"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"a": np.arange(1000)}).to_parquet(path)
    cut_in_half(path)
    with pytest.raises(MgenetError) as e:
        read_parquet(path)
    assert re.search(r"segments\.parquet: score table is unreadable .*rule score_components", explain(e.value))


class Exploit:
    """Pickles into a call of os.system, as a tampered checkpoint would."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.target}",)


def test_a_tampered_or_foreign_checkpoint_is_refused_without_running_it(tmp_path):
    import pickle

    import torch

    path = tmp_path / "results" / "demo" / "models" / "flow.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model_config": {}, "state_dict": {}, "hook": Exploit(tmp_path / "PWNED")}, path)
    with pytest.raises(MgenetError) as e:
        load_torch(path, "flow checkpoint", keys=("model_config", "state_dict"))
    assert not (tmp_path / "PWNED").exists()
    msg = explain(e.value)
    assert msg.startswith(f"{path}: flow checkpoint is unreadable (it pickles objects other than tensors")
    assert "posix.system" in msg or "os.system" in msg
    assert msg.endswith("(rule train_flow remakes it).") and "\n" not in msg
    path.write_bytes(pickle.dumps({"a": 1})[:-3])  # cut short
    with pytest.raises(MgenetError) as e:
        load_torch(path, "flow checkpoint")
    assert re.search(r"flow\.pt: flow checkpoint is unreadable \(.*rule train_flow", explain(e.value))
    path.write_text("not a checkpoint at all")
    with pytest.raises(MgenetError, match=r"flow checkpoint is unreadable \(not a PyTorch checkpoint"):
        load_torch(path, "flow checkpoint")
    torch.save({"state_dict": {}}, path)  # readable, but not ours
    with pytest.raises(MgenetError, match="not an mgenet flow checkpoint: no model_config"):
        load_torch(path, "flow checkpoint", keys=("model_config", "state_dict"))
    partial = tmp_path / "stage2.pt.partial"
    partial.write_text("garbage")
    with pytest.raises(MgenetError, match="delete it to start training from the first epoch"):
        load_torch(partial, "partial stage-2 checkpoint", fix="delete it to start training from the first epoch")


def test_a_command_reading_a_truncated_file_prints_one_error_line_and_writes_nothing(tmp_path, capsys):
    import h5py

    from mgenet.cli import main

    flow = tmp_path / "results" / "demo" / "flow" / "test.h5"
    flow.parent.mkdir(parents=True)
    with h5py.File(flow, "w") as f:
        f.create_dataset("v/nll", data=np.arange(20000.0))
    cut_in_half(flow)
    out = tmp_path / "results" / "demo" / "scores" / "segments.parquet"
    assert main(["score", "--flow", str(flow), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flow}: flow scores is unreadable (")
    assert err[0].endswith("(rule encode_flow remakes it).")
    assert not out.exists() and not list(out.parent.glob(".*tmp*"))


def test_manifest_row_reads_the_row_read_manifest_reads(tmp_path):
    import pandas as pd

    from mgenet.io import MANIFEST_COLUMNS, manifest_row, read_manifest, write_manifest

    path = tmp_path / "manifest.csv"
    write_manifest(pd.DataFrame([
        {"video": "01_0014", "split": "test", "scene": "01", "frames": 265, "fps": 25.0, "height": 480,
         "width": 856, "video_path": "", "pose_path": "p/01_0014.json", "gt_path": "gt/01_0014.npy"},
        {"video": "007", "split": "train", "scene": "12", "frames": 30, "fps": 24.5, "height": 240, "width": 320,
         "video_path": "v/007.mp4", "pose_path": "", "gt_path": ""}])[MANIFEST_COLUMNS], path)
    df = read_manifest(path)
    for video in ("01_0014", "007"):
        row, expected = manifest_row(path, video), df[df["video"] == video].iloc[0].to_dict()
        assert row == expected
        assert [type(v) for v in row.values()] == [type(getattr(v, "item", lambda v=v: v)()) for v in expected.values()]
    with pytest.raises(MgenetError, match="'01_0001' is not in the manifest"):
        manifest_row(path, "01_0001")


def test_the_per_video_jobs_modules_do_not_import_pandas():
    # import_pose and build_segments run once per video (874 processes on ShanghaiTech): pandas alone doubled each
    # one's CPU time, for one manifest row
    code = ("import sys, mgenet.cli, mgenet.io, mgenet.pose.imported, mgenet.pose.segments; "
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
