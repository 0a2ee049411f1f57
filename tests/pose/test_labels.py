"""Window labels of STG-NF's supervised setting (mgenet.pose.labels), from masks in UBnormal's own layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import write_ubnormal_annotations

from mgenet import MgenetError
from mgenet.io import write_segments
from mgenet.io.annotations import ObjectAnnotations
from mgenet.pose.labels import label_video, read_labels, stgnf_person_selection, window_labels

VIDEO = "abnormal_scene_2_scenario_7"
T = 4


def folder(tmp_path: Path, n_frames: int = 8) -> Path:
    ms = []
    for _ in range(n_frames):
        m = np.zeros((40, 60), np.uint8)
        m[10:30, 10:30] = 3  # the anomalous object (id 3)
        m[10:30, 40:55] = 5  # another object, never anomalous
        ms.append(m)
    return write_ubnormal_annotations(tmp_path, VIDEO, ms, "3,2,5\n")  # frames 2..5, end included in the file


def windows(inside: list[int], starts: list[int], x_in: float = 15.7, x_out: float = 35.0) -> np.ndarray:
    """Keypoints (N, T, 18, 2): window i has inside[i] of its 18 joints on the object at its first frame."""
    kp = np.full((len(starts), T, 18, 2), [x_out, 20.0], np.float32)
    for i, k in enumerate(inside):
        kp[i, 0, :k] = [x_in, 20.0]
    kp[:, 1:] = [x_in, 20.0]  # later frames never count: STG-NF tests the window's first frame only
    return kp


def test_more_than_half_the_joints_on_an_anomalous_object_at_the_first_frame(tmp_path: Path) -> None:
    ann = ObjectAnnotations(folder(tmp_path))
    starts = np.array([3, 3, 3, 1, 5, 2])
    got = window_labels(windows([10, 9, 18, 18, 18, 18], list(starts)), starts, ann)
    # 10 of 18 > 9 -> -1; exactly half -> 1; frame 1 before the track; frame 5 is the file's end, which STG-NF's
    # range(start, end) leaves out
    assert got.tolist() == [-1, 1, -1, 1, 1, -1]


def test_keypoints_are_floored_and_clipped_to_the_mask(tmp_path: Path) -> None:
    ann = ObjectAnnotations(folder(tmp_path))
    kp = windows([18, 18, 18], [2, 2, 2])
    kp[0, 0, :, 0] = 9.99  # floors to 9, left of the object (cols 10..29)
    kp[1, 0, :, 0] = 10.0
    kp[2, 0] = [-50.0, 1e4]  # clipped to (0, 39): outside
    assert window_labels(kp, np.array([2, 2, 2]), ann).tolist() == [1, -1, 1]


def test_objects_not_in_the_tracks_never_make_a_window_anomalous(tmp_path: Path) -> None:
    ann = ObjectAnnotations(folder(tmp_path))
    assert window_labels(windows([18], [3], x_in=45.0), np.array([3]), ann).tolist() == [1]


def write_video_segments(path: Path, kp: np.ndarray, pids: list[int], starts: list[int]) -> Path:
    n = len(kp)
    write_segments(path, {"pose": np.zeros((n, 2, T, 18)), "confidence": np.ones((n, T, 18)), "keypoints": kp,
                          "boxes": np.zeros((n, T, 4)), "frames": np.array(starts)[:, None] + np.arange(T),
                          "person_id": pids, "start_frame": starts, "mid_frame": np.array(starts) + T // 2},
                   {"video": VIDEO, "split": "abnormal_train", "seg_len": T})
    return path


def test_label_table_per_video_and_normal_videos_keep_label_1(tmp_path: Path) -> None:
    seg = write_video_segments(tmp_path / "s.h5", windows([18, 2], [3, 3]), [0, 1], [3, 3])
    df = label_video(seg, folder(tmp_path), tmp_path / "l.csv")
    assert df["label"].tolist() == [-1, 1]
    assert read_labels(tmp_path / "l.csv", 2).tolist() == [-1, 1]
    assert label_video(seg, None, tmp_path / "n.csv")["label"].tolist() == [1, 1]
    with pytest.raises(MgenetError, match="does not match its segments file"):
        read_labels(tmp_path / "l.csv", 3)


def test_stgnf_person_selection_indexes_the_global_table_with_clip_positions() -> None:
    # STG-NF's order is by pose file name: clip "a" first, then "b". In clip b, the windows starting at t=7 sit at
    # positions 1 and 2 of the clip, so STG-NF tests the persons of global rows 1 and 2 (clip a's persons 4 and 5),
    # not b's own persons 4 and 6: person 6's window loses its -1, person 4's keeps it.
    videos = ["b", "a"]
    pid = [np.array([9, 4, 6]), np.array([3, 4, 5])]
    start = [np.array([0, 7, 7]), np.array([7, 7, 0])]
    labels = [np.array([1, -1, -1], np.int8), np.array([-1, 1, 1], np.int8)]
    out = stgnf_person_selection(videos, pid, start, labels)
    assert out[0].tolist() == [1, -1, 1]
    assert out[1].tolist() == [-1, 1, 1]  # the first clip: the selection is right there


def test_a_label_table_missing_empty_cut_short_or_foreign_is_one_error_naming_it(tmp_path: Path) -> None:
    seg = write_video_segments(tmp_path / "s.h5", windows([18, 2], [3, 3]), [0, 1], [3, 3])
    good = label_video(seg, folder(tmp_path), tmp_path / "l.csv")
    path = tmp_path / "bad.csv"
    with pytest.raises(MgenetError, match="bad.csv: window label table not found; rule label_windows"):
        read_labels(path, len(good))
    text = (tmp_path / "l.csv").read_bytes()
    for content, why in ((b"", "empty"), (text[:-5], "cut short"), (b"\x89PNG\r\n\x1a\n\x00\x82\n", "not a CSV table"),
                         (b'a,"b\n1\n', "not a CSV table")):
        path.write_bytes(content)
        with pytest.raises(MgenetError, match=f"bad.csv: window label table is unreadable \\({why}"):
            read_labels(path, len(good))
