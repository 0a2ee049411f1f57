"""The weakly supervised split (dataset.weak_split): the demo generator's, and its checks against the dataset."""

from __future__ import annotations

import json

import pytest
from helpers import make_stgnf_dataset

from mgenet import MgenetError
from mgenet.cli import main
from mgenet.datasets.adapters import check_weak_split, index_dataset
from mgenet.datasets.demo import frame_mask, weak_split
from mgenet.datasets.demo_plan import DemoConfig, plan_dataset

GOOD = "video,split,label\n01_001,train,0\n02_001,train,0\n01_0014,train,1\n02_0003,test,1\n"


def test_demo_weak_split_takes_half_of_each_types_anomalous_test_videos():
    plan = plan_dataset(DemoConfig())
    w = weak_split(plan).set_index("video")
    videos = {v.name: v for v in plan.videos}
    assert set(w.index) == {n for n, v in videos.items() if v.split != "val"}  # the validation split stays out
    train = [v for v in videos.values() if v.split == "train"]
    assert all(w.loc[v.name, "split"] == "train" and w.loc[v.name, "label"] == 0 for v in train)
    for v in videos.values():  # labels are the ground truth's
        if v.split == "test":
            assert w.loc[v.name, "label"] == int(frame_mask(v, plan.cfg.frames).any())
    tests = [v for v in videos.values() if v.split == "test"]
    assert all(w.loc[v.name, "split"] == "test" for v in tests if not v.events)  # normal test videos: testing
    anomalous = [v for v in tests if v.events]
    in_train = [v for v in anomalous if w.loc[v.name, "split"] == "train"]
    assert len(anomalous) // 2 - 1 <= len(in_train) <= len(anomalous) // 2 + 1
    for t in ("motion", "appearance", "scene"):  # every type on both sides
        sides = {w.loc[v.name, "split"] for v in anomalous if t in {e.type for e in v.events}}
        assert sides == {"train", "test"}, t
    assert weak_split(plan).equals(weak_split(plan_dataset(DemoConfig())))  # seeded


def _dataset(tmp_path, text=GOOD):
    root = make_stgnf_dataset(tmp_path / "sh", n_frames=60)
    (root / "weak.csv").write_text(text)
    return root, index_dataset(root, "stgnf", resolution=[856, 480])


def test_a_good_weak_split_is_read(tmp_path):
    root, df = _dataset(tmp_path)
    w = check_weak_split(root / "weak.csv", df)
    assert w["split"].tolist() == ["train", "train", "train", "test"] and w["label"].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("text, match", [
    (GOOD + "03_0001,test,1\n", "'03_0001' is not in the dataset"),
    (GOOD.replace("02_0003,test,1", "02_0003,test,0"), "'02_0003' is labelled 0 but has anomalous frames"),
    (GOOD.replace("02_001,train,0", "02_001,train,1"), "'02_001' is labelled 1 but is a training video"),
    (GOOD.replace("01_001,train,0", "01_001,test,0"), "'01_001' is in the weak split's test part but is a train"),
])
def test_a_bad_weak_split_is_one_error_naming_the_file(tmp_path, text, match):
    root, df = _dataset(tmp_path, text)
    with pytest.raises(MgenetError, match=match) as e:
        check_weak_split(root / "weak.csv", df)
    assert str(root / "weak.csv") in str(e.value)


def test_index_refuses_a_bad_weak_split_and_writes_no_manifest(tmp_path, capsys):
    root, _ = _dataset(tmp_path, GOOD + "03_0001,test,1\n")
    out = tmp_path / "manifest.csv"
    params = {"root": str(root), "layout": "stgnf", "resolution": [856, 480], "weak_split": "weak.csv"}
    assert main(["index", "--params", json.dumps(params), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weak.csv" in err[0] and "03_0001" in err[0]
    assert not out.exists()
    (root / "weak.csv").write_text(GOOD)
    assert main(["index", "--params", json.dumps(params), "--out", str(out)]) == 0 and out.exists()
