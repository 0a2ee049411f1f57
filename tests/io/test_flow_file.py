"""The flow file: writer and readers round-trip a split's latents, NLLs and keys, with the layout's dtypes, chunks
and dimension labels; and the segments reader that encoding reads through."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from mgenet import MgenetError
from mgenet.io import FLOW_DIMS, flow_writer, open_flow, open_segments, read_attrs, write_segments

T = 6


def keys(n: int) -> dict[str, np.ndarray]:
    return {"person_id": np.arange(n) % 2, "start_frame": np.arange(n) * 3, "mid_frame": np.arange(n) * 3 + T // 2}


def test_flow_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(5, 2, T, 18)).astype(np.float32)
    nll = rng.normal(size=5).astype(np.float32)
    out = tmp_path / "test.h5"
    with flow_writer(out, {"stage": "encode_flow"}) as w:
        g = w.add_video("b", (2, T, 18), keys(5), "segments/b.h5")
        g.write(0, latent[:3], nll[:3])  # batches of rows, as encode_flow writes them
        g.write(3, latent[3:], nll[3:])
        w.add_video("a", (2, T, 18), keys(0), "segments/a.h5")  # a video without segments
    with h5py.File(out) as f:  # the layout, read with plain h5py
        assert f.attrs["stage"] == "encode_flow" and f["b"].attrs["segments_file"] == "segments/b.h5"
        for name, labels in FLOW_DIMS.items():
            assert [d.label for d in f["b"][name].dims] == list(labels)
        assert f["b/latent"].dtype == np.float32 and f["b/person_id"].dtype == np.int32
        assert f["b/latent"].chunks == (5, 2, T, 18) and f["a/latent"].shape == (0, 2, T, 18)
    with open_flow(out) as f:
        assert f.videos() == ["a", "b"] and "b" in f and "c" not in f
        assert f.latent_shape("b") == (5, 2, T, 18)
        np.testing.assert_array_equal(f.latents("b"), latent)
        np.testing.assert_array_equal(f.latents("b", slice(1, 3)), latent[1:3])
        np.testing.assert_array_equal(f.nll("b"), nll)
        for k, v in f.keys("b").items():
            np.testing.assert_array_equal(v, keys(5)[k])
        assert len(f.nll("a")) == 0


@pytest.mark.parametrize("second", ["a", "a/b"])
def test_flow_writer_refuses_repeated_or_nested_names_and_leaves_no_file(tmp_path: Path, second: str) -> None:
    out = tmp_path / "test.h5"
    with pytest.raises(MgenetError, match="repeated or contains '/'"):
        with flow_writer(out, {}) as w:
            w.add_video("a", (2, T, 18), keys(1), "a.h5")
            w.add_video(second, (2, T, 18), keys(1), "b.h5")
    assert not out.exists()


def test_missing_flow_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(MgenetError, match="flow latents not found"):
        with open_flow(tmp_path / "nope.h5"):
            pass


def test_segments_reader_gives_poses_keys_and_the_video_name(tmp_path: Path) -> None:
    n = 4
    pose = np.random.default_rng(1).normal(size=(n, 2, T, 18)).astype(np.float32)
    arrays = {"pose": pose, "confidence": np.ones((n, T, 18)), "keypoints": np.zeros((n, T, 18, 2)),
              "boxes": np.zeros((n, T, 4)), "frames": np.arange(T)[None].repeat(n, 0), **keys(n)}
    write_segments(tmp_path / "named.h5", arrays, {"video": "v1"})
    write_segments(tmp_path / "stem.h5", arrays, {})
    with open_segments(tmp_path / "named.h5") as f:
        assert f.video == "v1" and f.pose_shape == (n, 2, T, 18)
        np.testing.assert_array_equal(f.pose(slice(1, 3)), pose[1:3])
        np.testing.assert_array_equal(f.keys()["start_frame"], keys(n)["start_frame"])
    with open_segments(tmp_path / "stem.h5") as f:
        assert f.video == "stem"  # files without the attr are named by their stem
    assert read_attrs(tmp_path / "named.h5", "segments file") == {"video": "v1"}
    with pytest.raises(MgenetError, match="segments file not found"):
        with open_segments(tmp_path / "nope.h5"):
            pass
