"""Decoding: decord on mp4/avi, OpenCV on frame folders, in batches; bad files give one clear error."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_video import render_video, write_video

from mgenet import MgenetError
from mgenet.features.decode import even_frames, iter_batches, median_image, open_frames


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ""])
def test_readers_return_rgb_frames_in_batches(tmp_path, suffix):
    frames, _ = render_video(30)
    reader = open_frames(write_video(frames, tmp_path / f"v{suffix}"), threads=2)
    assert (reader.n_frames, reader.height, reader.width) == (30, 120, 160)
    got = reader.get(np.array([0, 5, 6, 29]))
    assert got.shape == (4, 120, 160, 3) and got.dtype == np.uint8
    err = np.abs(got.astype(int) - frames[[0, 5, 6, 29]].astype(int))
    assert err.mean() < (0.5 if not suffix else 6)  # PNG frames are exact; mp4v/MJPG are lossy
    # RGB, not OpenCV's BGR: the background's red channel grows left to right
    assert got[0, 60, 150, 0] > got[0, 60, 5, 0] + 150
    idx, batches = zip(*iter_batches(reader, np.array([7, 3, 3, 20, 8]), chunk=2))
    assert [i.tolist() for i in idx] == [[3, 7], [8, 20]] and batches[1].shape[0] == 2
    reader.close()


def test_missing_and_garbage_videos(tmp_path):
    with pytest.raises(MgenetError, match="video not found"):
        open_frames(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(MgenetError, match="cannot decode the video") as e:
        open_frames(bad)
    assert str(bad) in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MgenetError, match="holds no"):
        open_frames(tmp_path / "empty")


def test_truncated_mp4(tmp_path):
    frames, _ = render_video(30)
    video = write_video(frames, tmp_path / "v.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(MgenetError, match="truncated") as e:
        open_frames(cut)
    assert str(cut) in str(e.value)


def test_unreadable_frame_image_is_named(tmp_path):
    frames, _ = render_video(5)
    folder = write_video(frames, tmp_path / "frames")
    (folder / "0003.png").write_bytes(b"not a png")
    reader = open_frames(folder)
    with pytest.raises(MgenetError, match="0003.png: unreadable frame image"):
        reader.get(np.arange(5))


def test_even_frames_and_median_background():
    assert even_frames(10, 32).tolist() == list(range(10))
    idx = even_frames(1000, 5)
    assert idx.tolist() == [0, 250, 500, 749, 999]
    frames = np.full((9, 12, 10, 3), 50, np.uint8)
    for i in range(9):  # a walker covers a different column in each frame: the median removes it
        frames[i, :, i] = 255
    bg = median_image(frames, rows=5)
    assert bg.shape == (12, 10, 3) and (bg == 50).all()


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_forward_batches_give_decords_pixels(tmp_path, suffix):
    """Batches continuing forward go through the forward PyAV decoder, others through decord's get_batch: the same
    frames either way, whatever the order of the calls."""
    frames, _ = render_video(40)
    video = write_video(frames, tmp_path / f"v{suffix}")
    reader = open_frames(video)
    ref = reader._vr.get_batch(list(range(40))).asnumpy()
    calls = [np.array([0, 20, 39]), np.arange(0, 8), np.array([9, 10, 12]), np.arange(13, 25), np.array([2, 3]),
             np.arange(30, 40), np.arange(0, 40)]
    forward = []
    for idx in calls:
        forward.append(reader._forward_fits([int(i) for i in idx]))
        np.testing.assert_array_equal(reader.get(idx), ref[idx])
    # sparse over the video: decord; then forward chunk by chunk; back to the start: forward again
    assert forward == [False, True, True, True, True, True, True]
    with pytest.raises(MgenetError, match="beyond the 40 frames"):
        reader._forward(list(range(38, 42)))
    reader.close()


def test_truncated_mp4_while_decoding_forward(tmp_path):
    frames, _ = render_video(60)
    video = write_video(frames, tmp_path / "v.mp4")
    reader = open_frames(video)
    reader.path = tmp_path / "cut.mp4"  # the file shrinks after it was opened
    reader.path.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    with pytest.raises(MgenetError, match="truncated") as e:
        for lo in range(0, 60, 10):
            reader.get(np.arange(lo, lo + 10))
    assert "cut.mp4" in str(e.value)
