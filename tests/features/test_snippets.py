"""extract_snippets: file layout and provenance, the padded last snippet, batching, snippet_to_frames, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_video import write_case

from mgenet import MgenetError
from mgenet.cli.rules import explain
from mgenet.baselines.snippets import SnippetConfig, pooled_backbone, snippet_to_frames
from mgenet.cli import main
from mgenet.features.decode import open_frames
from mgenet.io import read_snippets

PARAMS = {"weights": "random", "size": [32, 32], "batch_size": 8, "seed": 0, "device": "cpu"}
N_FRAMES = 21  # not a multiple of the snippet length: the last snippet is padded


@pytest.fixture(scope="module")
def clip_case(tmp_path_factory):
    return write_case(tmp_path_factory.mktemp("snip"), n_frames=N_FRAMES)


def run(case: dict, out: Path, snippet_len: int = 8, source: Path | None = None, **params) -> int:
    args = ["snippets", "--manifest", str(case["manifest"]), "--video", "vid", "--snippet-len", str(snippet_len),
            "--params", json.dumps({**PARAMS, **params}), "--out", str(out)]
    return main(args + (["--source", str(source)] if source is not None else []))


def assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp*")), "temporary file left behind"


def test_snippets_file_layout_and_provenance(clip_case, tmp_path):
    out = tmp_path / "len8" / "vid.h5"
    assert run(clip_case, out) == 0
    with h5py.File(out) as f:  # plain h5py
        assert set(f) == {"features", "start_frame"}
        assert f["features"].shape == (3, 192) and f["features"].dtype == np.float32
        np.testing.assert_array_equal(f["start_frame"][()], [0, 8, 16])
        assert f["start_frame"].dtype == np.int64
        assert [d.label for d in f["features"].dims] == ["snippet", "channel"]
        a = dict(f.attrs)
        assert a["snippet_len"] == 8 and a["frames"] == N_FRAMES and list(a["size"]) == [32, 32]
        assert a["checkpoint_sha256"] == "random:0" and "Swin" in a["backbone"] and a["video"] == "vid"
        assert a["split"] == "test" and a["mgenet_version"] and len(a["config_hash"]) == 16
    s = read_snippets(out)
    assert s.snippet_len == 8 and s.frames == N_FRAMES and s.features.shape == (3, 192)
    assert np.isfinite(s.features).all() and s.features.std() > 0.01
    # different snippets of a moving scene give different vectors
    assert not np.allclose(s.features[0], s.features[1])


def test_last_snippet_repeats_the_last_frame_and_batching_changes_nothing(clip_case, tmp_path, swin):
    out1, out8 = tmp_path / "b1.h5", tmp_path / "b8.h5"
    assert run(clip_case, out1, batch_size=1) == 0 and run(clip_case, out8, batch_size=8) == 0
    a, b = read_snippets(out1), read_snippets(out8)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-5)
    # the padded last snippet by hand: frames 16..20, then frame 20 three more times
    reader = open_frames(clip_case["video"])
    frames = reader.get(np.arange(16, N_FRAMES))
    reader.close()
    small = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in frames])
    clip = np.concatenate([small, np.repeat(small[-1:], 8 - len(small), axis=0)])[None]  # (1, 8, 32, 32, 3)
    want = pooled_backbone(swin, clip, torch.device("cpu"))[0]
    np.testing.assert_allclose(a.features[2], want, rtol=1e-4, atol=1e-5)


def test_snippet_to_frames():
    scores = np.array([0.1, 0.5, 0.9])
    out = snippet_to_frames(scores, np.array([0, 4, 8]), 4, 10)
    np.testing.assert_array_equal(out, [0.1] * 4 + [0.5] * 4 + [0.9] * 2)
    assert snippet_to_frames(scores, np.array([0, 4, 8]), 4, 12).shape == (12,)
    with pytest.raises(ValueError, match="do not tile"):
        snippet_to_frames(scores, np.array([0, 4, 8]), 4, 13)  # a fourth snippet is missing
    with pytest.raises(ValueError, match="do not tile"):
        snippet_to_frames(scores, np.array([0, 5, 8]), 4, 10)


def test_truncated_video_gives_one_error_and_no_file(clip_case, tmp_path, capsys):
    cut = tmp_path / "cut.mp4"
    data = clip_case["video"].read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    out = tmp_path / "s.h5"
    assert run(clip_case, out, source=cut) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(cut) in err[0], err
    assert_nothing_left(out)


def test_frame_count_other_than_the_manifest_is_refused(clip_case, tmp_path, capsys):
    manifest = tmp_path / "manifest.csv"
    df = pd.read_csv(clip_case["manifest"], dtype={"video": str, "scene": str}, keep_default_na=False)
    df["frames"] = N_FRAMES + 5
    df.to_csv(manifest, index=False)
    out = tmp_path / "s.h5"
    assert run({**clip_case, "manifest": manifest}, out) == 1
    err = capsys.readouterr().err
    assert f"has {N_FRAMES} frames but the manifest says {N_FRAMES + 5}" in err and "index_dataset" in err
    assert_nothing_left(out)


def test_bad_settings_and_files(tmp_path):
    with pytest.raises(MgenetError, match="multiples of 8"):
        SnippetConfig.from_dict({"size": [30, 32]})
    with pytest.raises(MgenetError, match="snippet_len 7"):
        SnippetConfig.from_dict({"snippet_len": 7})
    with pytest.raises(MgenetError) as e:
        read_snippets(tmp_path / "results" / "demo" / "snippets" / "len16" / "v.h5")
    assert "not found; it is made by rule extract_snippets" in explain(e.value)  # the CLI's error line
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["features"] = np.zeros((2, 192), np.float32)
        f["start_frame"] = np.array([0, 16])
        f.attrs.update(snippet_len=16, frames=40)  # 40 frames need three snippets
    with pytest.raises(MgenetError, match="do not tile"):
        read_snippets(bad)
