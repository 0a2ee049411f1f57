"""features.layout: track: token sequences per person, clips as slices of them, chunked passes, gaps, reading."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_video import H, W, render_video, write_case, write_video

from mgenet import MgenetError
from mgenet.cli import main
from mgenet.features.crops import crop_resize, widen_boxes
from mgenet.features.extract import FeatureConfig, run_backbone
from mgenet.features.plan import chunk_sequences, plan_tracks, track_context
from mgenet.io import (
    MANIFEST_COLUMNS,
    TRACK_DIMS,
    ClipTokens,
    provenance,
    read_clip_index,
    read_features,
    read_segments,
    track_feature_writer,
    write_segments,
)
from mgenet.pose.segments import SegmentConfig, build_segments

PARAMS = {"weights": "random", "crop": [32, 16], "batch_size": 8, "scene_size": [32, 32], "scene_frames": 8,
          "seed": 0, "device": "cpu"}


def run(case: dict, out: Path, **params) -> int:
    return main(["features", "--manifest", str(case["manifest"]), "--video", "vid", "--segments",
                 str(case["segments"]), "--params", json.dumps({**PARAMS, **params}), "--out", str(out)])


def f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32)


def gap_case(root: Path, n_frames: int, seg_len: int, drop: dict[int, list[int]], suffix: str = "") -> dict:
    """write_case with the frames ``drop[person]`` removed from each person's track (missed detections)."""
    frames, poses = render_video(n_frames)
    for pid, missing in drop.items():
        for f in missing:
            del poses[pid][f]
    video = write_video(frames, root / f"vid{suffix}")
    arrays = build_segments(poses, W, H, "test", SegmentConfig(seg_len=seg_len, test_stride=1, max_missing=2))
    seg = root / "segments.h5"
    write_segments(seg, arrays, provenance("test", video="vid", split="test", seg_len=seg_len, stride=1))
    manifest = root / "manifest.csv"
    pd.DataFrame([{"video": "vid", "split": "test", "scene": "01", "frames": n_frames, "fps": 25.0, "height": H,
                   "width": W, "video_path": str(video), "pose_path": "", "gt_path": ""}])[MANIFEST_COLUMNS] \
        .to_csv(manifest, index=False)
    return {"video": video, "segments": seg, "manifest": manifest}


# ----------------------------------------------------------------------------------------------------- planning


def test_plan_tracks_known_sequences():
    # person 1: frames 0..8, T = 4, stride 1: windows start at run positions 0..5
    # person 2: frames 20..23 and 30..33, two windows sharing no frame: two runs
    T = 4
    frames = [np.arange(s, s + T) for s in range(6)] + [np.arange(20, 24), np.arange(30, 34)]
    frames = np.asarray(frames)
    pid = np.array([1] * 6 + [2, 2])
    boxes = np.repeat(frames[..., None], 4, axis=-1).astype(np.float32)  # one box per frame
    p = plan_tracks(frames, pid, boxes)
    assert p.seq_person.tolist() == [1, 1, 2, 2] and p.seq_phase.tolist() == [0, 1, 0, 0]
    assert p.seq_tokens.tolist() == [4, 4, 2, 2] and p.seq_token_start.tolist() == [0, 4, 8, 10]
    np.testing.assert_array_equal(p.seq_frames[0], np.arange(0, 8))  # pairs (0,1) (2,3) (4,5) (6,7)
    np.testing.assert_array_equal(p.seq_frames[1], np.arange(1, 9))  # pairs (1,2) ... (7,8)
    assert p.clip_token_start.tolist() == [0, 4, 1, 5, 2, 6, 8, 10]
    tf = p.token_frames()
    t = T // 2
    for r in range(len(frames)):  # every clip is t consecutive rows holding exactly its frames
        s = p.clip_token_start[r]
        np.testing.assert_array_equal(tf[s:s + t].reshape(-1), frames[r])
    np.testing.assert_array_equal(p.seq_boxes[0][:, 0], np.arange(0, 8))


def test_plan_tracks_closes_gaps_as_the_windows_do():
    # frames 0..11 without 5: the windows (T = 4) take 3,4,6,7 etc.; a sequence holds the same frames in order
    present = [f for f in range(12) if f != 5]
    frames = np.asarray([present[s:s + 4] for s in range(len(present) - 4 + 1)])
    p = plan_tracks(frames, np.zeros(len(frames), int), np.zeros((*frames.shape, 4), np.float32))
    tf = p.token_frames()
    assert 5 not in tf
    for r, row in enumerate(frames):
        np.testing.assert_array_equal(tf[p.clip_token_start[r]:p.clip_token_start[r] + 2].reshape(-1), row)


def test_plan_tracks_refuses_odd_windows_and_two_boxes_per_frame():
    frames = np.arange(6)[None] + np.arange(2)[:, None]  # (2, 6) windows 0..5, 1..6
    boxes = np.zeros((2, 6, 4), np.float32)
    with pytest.raises(MgenetError, match="seg_len 5 is not a multiple"):
        plan_tracks(frames[:, :5], np.zeros(2, int), boxes[:, :5])
    boxes[1, 0] = 1  # frame 1: box 0 in window 0, box 1 in window 1
    with pytest.raises(MgenetError, match="person 0, frame 1 has different boxes"):
        plan_tracks(frames, np.zeros(2, int), boxes, "seg.h5")


def test_chunk_sequences_known_passes():
    assert track_context() == 16  # two temporal windows of 8 rows
    ch = chunk_sequences(np.array([10, 40]), chunk_tokens=8, context=16)
    assert ch.tolist() == [[0, 0, 10, 0, 10],  # short: one pass
                           [1, 0, 24, 0, 8], [1, 0, 32, 8, 16], [1, 0, 40, 16, 24], [1, 8, 40, 24, 32],
                           [1, 16, 40, 32, 40]]


def test_config_checks_layout_and_chunk():
    with pytest.raises(MgenetError, match="features.layout 'tracks'"):
        FeatureConfig.from_dict({"layout": "tracks"})
    with pytest.raises(MgenetError, match="multiple of 16 frames"):
        FeatureConfig.from_dict({"layout": "track", "track_chunk": 24})


# ------------------------------------------------------------------------------------------------------ reading


def test_clip_tokens_reads_slices_of_the_track(tmp_path):
    """A hand-made track file: row i of track_tokens is filled with i; each clip must come back as its rows."""
    rows, t = 20, 3
    starts = np.array([0, 1, 2, 10, 11, 17])
    path = tmp_path / "f.h5"
    attrs = provenance("x", backbone="b", checkpoint_sha256="c", crop=[8, 8], seg_len=6, stride=1, video="v",
                       split="test", scene="1")
    with track_feature_writer(path, len(starts), rows, (1, 1, 2), t, attrs) as w:
        w.write_tokens(10, np.broadcast_to(np.arange(10, 20, dtype=np.float16)[:, None, None, None], (10, 1, 1, 2)))
        w.write_tokens(0, np.broadcast_to(np.arange(10, dtype=np.float16)[:, None, None, None], (10, 1, 1, 2)))
        z = np.zeros(len(starts), np.int32)
        w.write_arrays({"crop_boxes": np.zeros((len(starts), 6, 4)), "person_id": z, "start_frame": z,
                        "mid_frame": z, "scene": np.zeros(2), "scene_map": np.zeros((1, 1, 2)),
                        "token_frames": np.arange(2 * rows).reshape(rows, 2), "clip_token_start": starts,
                        "seq_person_id": [0],
                        "seq_phase": [0], "seq_token_start": [0], "seq_tokens": [rows]})
    with h5py.File(path) as f:
        for name, dims in TRACK_DIMS.items():
            assert tuple(d.label for d in f[name].dims) == dims, name
        assert f["track_tokens"].chunks[0] == t  # one clip's worth of rows per chunk
        ct = ClipTokens(f)
        assert ct.layout == "track" and ct.shape == (6, t, 1, 1, 2) and len(ct) == 6
        expected = starts[:, None] + np.arange(t)  # (N, t) row numbers
        np.testing.assert_array_equal(ct.read(slice(None))[..., 0, 0, 0], expected)
        np.testing.assert_array_equal(ct.read(np.array([1, 4, 5]))[..., 0, 0, 0], expected[[1, 4, 5]])
        assert ct.track_rows(3) == slice(10, 13)
        np.testing.assert_array_equal(ct.token_frames(3), np.arange(20, 26))  # rows 10..12, two frames each
        reads = []
        ds = ct.ds

        class Spy:
            def __getitem__(self, key):
                reads.append((key.start, key.stop))
                return ds[key]

        ct.ds = Spy()
        np.testing.assert_array_equal(ct.read(slice(0, 5))[..., 0, 0, 0], expected[:5])
        assert reads == [(0, 5), (10, 14)]  # overlapping clips share one read; nothing else of the track is read
    assert read_features(path, ("tokens",), rows=slice(3, 5))[0]["tokens"][..., 0, 0, 0].tolist() == \
        expected[3:5].tolist()
    index, shape, file_attrs = read_clip_index(path)
    assert shape == (6, t, 1, 1, 2) and set(index) == {"person_id", "start_frame", "scene"}
    assert file_attrs["video"] == "v" and file_attrs["layout"] == "track"


# --------------------------------------------------------------------------------------------------- extraction


def test_track_file_layout_and_every_clip_is_its_frames(tmp_path):
    case = write_case(tmp_path / "c", n_frames=40, seg_len=8)
    out = tmp_path / "f.h5"
    assert run(case, out, layout="track") == 0
    seg, _ = read_segments(case["segments"])
    n, T = seg["frames"].shape
    with h5py.File(out) as f:
        assert "tokens" not in f and f.attrs["layout"] == "track" and f.attrs["clip_tokens"] == T // 2
        assert f.attrs["track_chunk"] == 256 and f.attrs["track_context"] == 16
        m = f["track_tokens"].shape[0]
        # two persons, stride 1: each person's 32 windows use frames 0..38 in two phases of 16 and 15 + 4 rows
        assert f["seq_person_id"][()].tolist() == [1, 1, 2, 2] and f["seq_phase"][()].tolist() == [0, 1, 0, 1]
        assert m == f["seq_tokens"][()].sum() == 2 * (19 + 19)
        tf, starts = f["token_frames"][()], f["clip_token_start"][()]
        for r in range(n):
            np.testing.assert_array_equal(tf[starts[r]:starts[r] + T // 2].reshape(-1), seg["frames"][r])
        for key in ("person_id", "start_frame", "mid_frame"):
            np.testing.assert_array_equal(f[key][()], seg[key])
    feats, _ = read_features(out)
    assert feats["tokens"].shape == (n, T // 2, 4, 2, 192) and np.isfinite(f32(feats["tokens"])).all()
    from mgenet.apps.inspect import describe

    text = describe(out, clip=1)  # person 1's second window: frames 1..8, phase 1's rows 19..22
    assert "clip 1 (layout track): tokens = track_tokens[19:23], frames 1..8 (8 frames)" in text
    # 4 sequences of 38 frames go through the backbone once, instead of 64 windows of 8 frames
    assert m * 192 * 8 * 2 < n * (T // 2) * 192 * 8 * 2 / 3


def test_track_tokens_are_one_backbone_pass_over_each_sequence(tmp_path, swin):
    """From exact (PNG) frames, recompute a sequence's crops by hand and run the backbone over all of it at once."""
    case = write_case(tmp_path / "c", n_frames=30, seg_len=8, suffix="")
    out = tmp_path / "f.h5"
    assert run(case, out, layout="track") == 0
    frames, _ = render_video(30)
    seg, _ = read_segments(case["segments"])
    boxes = widen_boxes(seg["boxes"], W, H)
    with h5py.File(out) as f:
        tf, s0, ns, pids = f["token_frames"][()], f["seq_token_start"][()], f["seq_tokens"][()], f["seq_person_id"][()]
        tokens = f["track_tokens"][()]
    for s in (0, 3):
        rows = slice(s0[s], s0[s] + ns[s])
        box_of = {int(fr): b for fr, b in zip(seg["frames"][seg["person_id"] == pids[s]].reshape(-1),
                                              boxes[seg["person_id"] == pids[s]].reshape(-1, 4))}
        clip = np.stack([crop_resize(frames[fr], box_of[int(fr)], (32, 16)) for fr in tf[rows].reshape(-1)])
        expected = run_backbone(swin, clip[None], torch.device("cpu")).numpy()[0]
        np.testing.assert_allclose(f32(tokens[rows]), f32(expected), atol=2e-3)


def test_chunked_passes_equal_one_pass(tmp_path):
    """Two sequences of 69 rows (one person, both phases) cut into chunks of 8 kept rows (+ 16 rows of context on
    each side) give the tokens of one pass over each whole sequence."""
    case = write_case(tmp_path / "c", n_frames=140, seg_len=8, people=1)
    whole, chunked = tmp_path / "whole.h5", tmp_path / "chunked.h5"
    assert run(case, whole, layout="track") == 0  # 256 frames per chunk: one pass
    assert run(case, chunked, layout="track", track_chunk=16, batch_size=64) == 0
    a, b = read_features(whole, ("track_tokens",))[0], read_features(chunked, ("track_tokens",))[0]
    assert len(a["track_tokens"]) == 138
    np.testing.assert_allclose(f32(a["track_tokens"]), f32(b["track_tokens"]), atol=2e-3)
    # without the context the chunks' edges differ: the context is what makes them equal
    from mgenet.features import extract

    orig = extract.track_context
    extract.track_context = lambda swin=None: 0
    try:
        assert run(case, tmp_path / "bare.h5", layout="track", track_chunk=16) == 0
    finally:
        extract.track_context = orig
    c = read_features(tmp_path / "bare.h5", ("track_tokens",))[0]["track_tokens"]
    assert np.abs(f32(a["track_tokens"]) - f32(c)).max() > 0.05


def test_a_window_that_is_its_whole_sequence_has_the_window_layouts_tokens(tmp_path):
    # seg_len 16, 17 frames: STG-NF's ceil((17 - 16) / 1) = 1 window per person, and its sequence is that window
    case = write_case(tmp_path / "c", n_frames=17, seg_len=16)
    a, b = tmp_path / "window.h5", tmp_path / "track.h5"
    assert run(case, a) == 0 and run(case, b, layout="track") == 0
    ta, tb = read_features(a)[0]["tokens"], read_features(b)[0]["tokens"]
    assert ta.shape == tb.shape == (2, 8, 4, 2, 192)
    np.testing.assert_allclose(f32(ta), f32(tb), atol=2e-3)


def test_gaps_are_closed_like_the_windows_close_them(tmp_path):
    # person 1 misses frames 10 and 11 (max_missing 2 keeps windows across them), person 2 misses frame 20
    case = gap_case(tmp_path / "c", n_frames=36, seg_len=8, drop={1: [10, 11], 2: [20]})
    out = tmp_path / "f.h5"
    assert run(case, out, layout="track") == 0
    seg, _ = read_segments(case["segments"])
    assert any(9 in r and 12 in r for r in seg["frames"][seg["person_id"] == 1].tolist())
    with h5py.File(out) as f:
        tf, starts = f["token_frames"][()], f["clip_token_start"][()]
        pids = f["seq_person_id"][()]
        seq_frames = [tf[s:s + n] for s, n in zip(f["seq_token_start"][()], f["seq_tokens"][()])]
    for r in range(len(starts)):
        np.testing.assert_array_equal(tf[starts[r]:starts[r] + 4].reshape(-1), seg["frames"][r])
    assert not {10, 11} & set(np.concatenate([s.reshape(-1) for s, p in zip(seq_frames, pids) if p == 1]).tolist())


def test_odd_seg_len_with_track_layout_is_one_error_and_no_file(tmp_path, capsys):
    case = write_case(tmp_path / "c", n_frames=20, seg_len=7)
    out = tmp_path / "f.h5"
    assert run(case, out, layout="track") != 0
    err = capsys.readouterr().err
    assert "error:" in err and "seg_len 7 is not a multiple" in err and str(case["segments"]) in err
    assert not out.exists() and not list(tmp_path.glob(".f.h5.tmp*"))


def test_crops_held_do_not_grow_with_the_track(tmp_path):
    """One person tracked over 100 and 1000 frames (stride 1), chunks of 16 frames: the crops held at once stay put
    (about the frames of one pass, 16 + 2 x 32, plus a decode batch)."""
    from mgenet.features.decode import even_frames, open_frames
    from mgenet.features.extract import ClipStream, _TrackUnits
    from mgenet.features.plan import plan_crops
    from mgenet.features.swin import SwinConfig

    peaks = []
    for n_frames in (100, 1000):
        c = write_case(tmp_path / f"v{n_frames}", n_frames=n_frames, seg_len=8, people=1)
        seg, _ = read_segments(c["segments"])
        reader = open_frames(c["video"])
        cfg = FeatureConfig.from_dict({"crop": [32, 16], "batch_size": 8, "decode_chunk": 16, "layout": "track",
                                       "track_chunk": 16})
        boxes = widen_boxes(seg["boxes"], reader.width, reader.height)
        units = _TrackUnits.build(plan_tracks(seg["frames"], seg["person_id"], boxes), cfg, SwinConfig())
        stream = ClipStream(reader, plan_crops(units.frames, units.boxes), cfg, even_frames(reader.n_frames, 4), 1)
        items = list(stream)[1:]
        assert sum(len(rows) for rows, _ in items) == len(units.chunks)
        peaks.append(stream.peak_crops)
    assert peaks[1] <= peaks[0] * 1.2 and peaks[1] < 120, peaks  # 10x the track, not 10x the crops
