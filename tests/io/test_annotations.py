"""UBnormal's object annotations (mgenet.io.annotations), on folders laid out exactly as UBnormal ships them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import write_ubnormal_annotations

from mgenet.io.annotations import ObjectAnnotations, anomaly_boxes, find_annotation_dirs
from mgenet.io.common import MissingFileError, UnreadableFileError

VIDEO = "abnormal_scene_4_scenario_2"


def masks(n: int = 6, h: int = 20, w: int = 30) -> list[np.ndarray]:
    out = []
    for t in range(n):
        m = np.zeros((h, w), np.uint8)
        m[2:8, 3 + t:10 + t] = 1  # object 1 moves right
        m[12:18, 20:26] = 2  # object 2 stands still
        out.append(m)
    return out


def test_reads_tracks_masks_and_frame_numbers(tmp_path: Path) -> None:
    folder = write_ubnormal_annotations(tmp_path, VIDEO, masks(), "1,1,3\r\n2.0,0.0,5.0\r\n")
    assert folder == tmp_path / "Scene4" / f"{VIDEO}_annotations"
    ann = ObjectAnnotations(folder)
    assert ann.video == VIDEO
    assert [(t.object_id, t.start, t.end) for t in ann.tracks] == [(1, 1, 3), (2, 0, 5)]
    assert sorted(ann.frame_files) == list(range(6))
    assert ann.shape == (20, 30)
    m = ann.mask(2)
    assert m.dtype == np.uint8 and m[5, 6] == 1 and m[15, 22] == 2 and m[0, 0] == 0
    assert ann.mask(99) is None


def test_masks_of_different_sizes_are_cropped_to_the_smallest(tmp_path: Path) -> None:
    ms = masks()
    ms[4] = np.pad(ms[4], ((0, 3), (0, 1)))  # one frame 23 x 31, as in the few UBnormal videos with mixed sizes
    ms[5] = ms[5][:, :28]  # another narrower
    ann = ObjectAnnotations(write_ubnormal_annotations(tmp_path, VIDEO, ms, "1,0,5\n"))
    assert ann.shape == (20, 28)
    assert ann.mask(4).shape == (20, 28) and ann.mask(0).shape == (20, 28)


def test_boxes_are_the_largest_part_of_each_objects_mask_per_frame_end_included(tmp_path: Path) -> None:
    ms = masks()
    ms[3][0, 29] = 1  # a stray pixel of object 1: a smaller part, left out as UBnormal's script does
    ms[2][ms[2] == 1] = 0  # object 1 out of view in frame 2: no box there
    root = tmp_path / "UBnormal"
    write_ubnormal_annotations(root, VIDEO, ms, "1,1,3\n2,4,5\n")
    df = anomaly_boxes([VIDEO, "normal_scene_4_scenario_1"], find_annotation_dirs(root), root)
    got = {(r.track, r.frame): (r.x1, r.y1, r.x2, r.y2) for r in df.itertuples()}
    assert got == {("1", 1): (4, 2, 11, 8), ("1", 3): (6, 2, 13, 8),  # x2, y2 exclusive
                   ("2", 4): (20, 12, 26, 18), ("2", 5): (20, 12, 26, 18)}
    assert set(df["video"]) == {VIDEO}


def test_new_tracks_file_is_read_instead_when_present(tmp_path: Path) -> None:
    folder = write_ubnormal_annotations(tmp_path, VIDEO, masks(), "1,0,5\n")
    (folder / f"{VIDEO}_new_tracks.txt").write_text("2,1,2\n")
    assert [(t.object_id, t.start, t.end) for t in ObjectAnnotations(folder).tracks] == [(2, 1, 2)]


def test_finds_folders_beside_the_videos_not_inside_pose_or_gt(tmp_path: Path) -> None:
    write_ubnormal_annotations(tmp_path / "videos", VIDEO, masks(2), "1,0,1\n")
    (tmp_path / "pose" / "x_annotations").mkdir(parents=True)
    assert find_annotation_dirs(tmp_path) == {VIDEO: tmp_path / "videos" / "Scene4" / f"{VIDEO}_annotations"}


def test_missing_folder_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=f"Scene4/{VIDEO}_annotations: UBnormal annotation folder"):
        anomaly_boxes([VIDEO], {}, tmp_path)
    with pytest.raises(MissingFileError, match="annotation folder"):
        ObjectAnnotations(tmp_path / f"{VIDEO}_annotations")


@pytest.mark.parametrize("damage", ["png", "tracks", "no_tracks", "bad_name", "empty"])
def test_unreadable_files_are_one_error_naming_them(tmp_path: Path, damage: str) -> None:
    folder = write_ubnormal_annotations(tmp_path, VIDEO, masks(3), "1,0,2\n")
    if damage == "png":
        (folder / f"{VIDEO}_0001_gt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        with pytest.raises(UnreadableFileError, match=f"{VIDEO}_0001_gt.png: UBnormal annotation mask"):
            ObjectAnnotations(folder).boxes()
        return
    if damage == "tracks":
        (folder / f"{VIDEO}_tracks.txt").write_text("1,0\n")
        match = "tracks.txt: UBnormal tracks file is unreadable .line 1"
    elif damage == "no_tracks":
        (folder / f"{VIDEO}_tracks.txt").unlink()
        match = "tracks.txt: UBnormal tracks file not found"
    elif damage == "bad_name":
        (folder / "mask.png").write_bytes((folder / f"{VIDEO}_0000_gt.png").read_bytes())
        match = "mask.png: UBnormal annotation mask is unreadable"
    else:
        for p in folder.glob("*.png"):
            p.unlink()
        match = "holds no mask PNG"
    with pytest.raises((UnreadableFileError, MissingFileError), match=match):
        ObjectAnnotations(folder)
