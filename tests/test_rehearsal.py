"""bench/rehearsal.py's pose set: ShanghaiTech's published counts, in STG-NF's layout as mgenet indexes it."""

from __future__ import annotations

import importlib.util

import numpy as np
from helpers import REPO

from mgenet.datasets.adapters import index_dataset

_spec = importlib.util.spec_from_file_location("rehearsal", REPO / "bench" / "rehearsal.py")
rehearsal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rehearsal)


def test_frame_counts_and_names_match_shanghaitech():
    rng = np.random.default_rng(0)
    assert rehearsal.frame_counts(330, 274_515, rng).sum() == 274_515
    assert rehearsal.frame_counts(107, 40_791, rng).sum() == 40_791
    train, test = rehearsal.video_names(rng)
    assert len(set(train)) == 330 and len(set(test)) == 107 and not set(train) & set(test)
    assert set(rehearsal.HR_SKIP) <= set(test)  # ShanghaiTech-HR's left-out videos are there to be left out


def test_a_small_rehearsal_set_indexes_as_a_pose_only_stgnf_dataset(tmp_path):
    rehearsal.make(tmp_path, scale=0.01, persons=3.0, seed=0)
    df = index_dataset(tmp_path / "data", "stgnf", [856, 480])
    assert sorted(df["split"].value_counts().items()) == [("test", 2), ("train", 3)]
    assert (df["video_path"] == "").all()  # no videos: pose files and masks only
    test = df[df["split"] == "test"]
    for gt_path, frames in zip(test["gt_path"], test["frames"]):
        gt = np.load(gt_path)
        assert len(gt) == frames and 0 < gt.mean() < 1
    assert (tmp_path / "rehearsal.yaml").exists() and (tmp_path / "one_epoch.yaml").exists()
