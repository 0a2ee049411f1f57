"""Probing videos and frame folders: a frame folder's images are its frames by number, without a gap."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mgenet import MgenetError
from mgenet.features.decode import open_frames
from mgenet.io.video import frame_files, probe


def frame_folder(folder: Path, numbers: list[int], name: str = "{:06d}.jpg") -> Path:
    folder.mkdir(parents=True)
    for i in numbers:
        cv2.imwrite(str(folder / name.format(i)), np.full((24, 32, 3), i * 10 % 256, np.uint8))
    return folder


def test_frames_come_in_number_order_not_name_order(tmp_path):
    folder = frame_folder(tmp_path / "v", [8, 9, 10, 11], name="frame_{}.png")  # "frame_10" sorts before "frame_8"
    assert [p.name for p in frame_files(folder)] == ["frame_8.png", "frame_9.png", "frame_10.png", "frame_11.png"]
    assert probe(folder).frames == 4


def test_a_missing_frame_is_an_error_naming_the_folder_and_the_number_on_every_path(tmp_path):
    folder = frame_folder(tmp_path / "01_0014", [0, 1, 2, 4, 5])
    expected = rf"^{folder}: frame 3 is missing \(frames 0\.\.5, next after 2 is 4\)"
    with pytest.raises(MgenetError, match=expected):
        probe(folder)  # index_dataset
    with pytest.raises(MgenetError, match=expected):
        open_frames(folder)  # extract_features
    cv2.imwrite(str(folder / "000003.jpg"), np.zeros((24, 32, 3), np.uint8))  # restored: it reads again
    assert probe(folder).frames == 6


def test_a_frame_number_given_twice_or_a_name_without_number_is_refused(tmp_path):
    folder = frame_folder(tmp_path / "v", [0, 1])
    cv2.imwrite(str(folder / "1.png"), np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(MgenetError, match="frame number 1 appears twice"):
        frame_files(folder)
    (folder / "1.png").unlink()
    cv2.imwrite(str(folder / "cover.jpg"), np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(MgenetError, match="cover.jpg: frame file name has no frame number"):
        frame_files(folder)
