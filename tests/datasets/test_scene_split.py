"""dataset.scenes and dataset.move_to_train: the paper's §4.6 scene split as a manifest selection."""

from __future__ import annotations

import pandas as pd
import pytest

from mgenet import MgenetError
from mgenet.datasets.adapters import index_dataset, select_scenes
from mgenet.io import MANIFEST_COLUMNS


def manifest() -> pd.DataFrame:
    rows = [("01_001", "train", "01"), ("01_0001", "test", "01"), ("01_0002", "test", "01"),
            ("02_001", "train", "02"), ("02_0001", "test", "02"), ("03_001", "train", "03"),
            ("03_0001", "test", "03"), ("03_0002", "test", "03")]
    return pd.DataFrame([{"video": v, "split": s, "scene": sc, "frames": 50, "fps": 25.0, "height": 120,
                          "width": 160, "video_path": "", "pose_path": f"{v}.json",
                          "gt_path": f"{v}.npy" if s == "test" else ""} for v, s, sc in rows])[MANIFEST_COLUMNS]


def test_scenes_keeps_only_those_scenes_and_matches_numbers() -> None:
    out = select_scenes(manifest(), scenes=[1, "03"])
    assert sorted(set(out["scene"])) == ["01", "03"] and len(out) == 6
    assert list(out.index) == list(range(6))
    with pytest.raises(MgenetError, match=r"\['7'\]"):
        select_scenes(manifest(), scenes=["01", 7])


def test_move_to_train_moves_videos_whose_anomalies_are_all_normal_there(tmp_path) -> None:
    iv = pd.DataFrame([("01_0001", 5, 20, "motion", "running"), ("01_0001", 30, 40, "motion", "jumping"),
                       ("01_0002", 5, 20, "motion", "running"), ("01_0002", 30, 40, "appearance", "riding"),
                       ("02_0001", 5, 20, "motion", "running"), ("03_0001", 5, 20, "motion", "falling")],
                      columns=["video", "start", "end", "type", "subtype"])
    iv.to_csv(tmp_path / "anomalies.csv", index=False)
    out = select_scenes(manifest(), move_to_train={"scenes": ["01", "03"], "subtypes": ["running", "jumping"]},
                        intervals=tmp_path / "anomalies.csv").set_index("video")
    # only running/jumping, in a listed scene: moved, its ground truth dropped
    assert out.loc["01_0001", "split"] == "train" and out.loc["01_0001", "gt_path"] == ""
    assert out.loc["01_0002", "split"] == "test"  # also a riding anomaly: stays
    assert out.loc["02_0001", "split"] == "test"  # running, but scene 02 is not listed
    assert out.loc["03_0001", "split"] == "test"  # falling
    assert out.loc["03_0002", "split"] == "test"  # a normal test video stays a test video
    with pytest.raises(MgenetError, match="interval table"):
        select_scenes(manifest(), move_to_train={"scenes": ["01"], "subtypes": ["running"]},
                      intervals=tmp_path / "none.csv")


def test_index_dataset_applies_the_selection(tmp_path) -> None:
    from helpers import make_stgnf_dataset

    root = make_stgnf_dataset(tmp_path / "ds")
    assert sorted(index_dataset(root, "stgnf", resolution=[320, 240])["scene"].unique()) == ["01", "02"]
    df = index_dataset(root, "stgnf", resolution=[320, 240], scenes=["02"])
    assert sorted(df["video"]) == ["02_0003", "02_001"]
    iv = pd.DataFrame([("01_0014", 30, 44, "motion", "running")], columns=["video", "start", "end", "type", "subtype"])
    iv.to_csv(root / "anomalies.csv", index=False)
    df = index_dataset(root, "stgnf", resolution=[320, 240], intervals="anomalies.csv",
                       move_to_train={"scenes": ["01"], "subtypes": ["running"]}).set_index("video")
    assert df.loc["01_0014", "split"] == "train" and df.loc["02_0003", "split"] == "test"
    # scene 01 alone then has no test video left
    with pytest.raises(MgenetError, match="need both training and test videos"):
        index_dataset(root, "stgnf", resolution=[320, 240], scenes=["01"], intervals="anomalies.csv",
                      move_to_train={"scenes": ["01"], "subtypes": ["running"]})
