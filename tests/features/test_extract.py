"""extract_features end to end: file layout, row alignment, streaming, bad input, storage estimate."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from synthetic_video import render_video, write_case

from mgenet.cli import main
from mgenet.features.crops import crop_resize, widen_boxes
from mgenet.features.decode import even_frames, open_frames
from mgenet.features.estimate import clip_bytes
from mgenet.features.extract import ClipStream, CropSlab, FeatureConfig, run_backbone
from mgenet.features.plan import plan_crops
from mgenet.io import FEATURE_DIMS, FEATURE_DTYPES, read_features, read_segments, write_features, write_segments

REPO = Path(__file__).resolve().parents[2]
# the window layout's file: a clip per row of `tokens` (the track layout's own file is tests/features/test_track_layout.py)
PARAMS = {"weights": "random", "crop": [32, 16], "batch_size": 8, "scene_size": [32, 32], "scene_frames": 8,
          "seed": 0, "device": "cpu", "layout": "window"}


def run(case: dict, out: Path, source: Path | None = None, **params) -> int:
    args = ["features", "--manifest", str(case["manifest"]), "--video", "vid", "--segments", str(case["segments"]),
            "--params", json.dumps({**PARAMS, **params}), "--out", str(out)]
    if source is not None:
        args += ["--source", str(source)]
    return main(args)


def assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp*")), "temporary file left behind"


def test_features_file_layout_and_alignment(case, tmp_path):
    out = tmp_path / "features" / "vid.h5"
    assert run(case, out, compression="lzf") == 0
    seg, _ = read_segments(case["segments"])
    n, T = seg["frames"].shape
    with h5py.File(out) as f:  # plain h5py, nothing from mgenet
        assert set(f) == set(FEATURE_DTYPES)
        assert f["tokens"].shape == (n, T // 2, 4, 2, 192) and f["tokens"].dtype == np.float16
        assert f["tokens"].chunks == (1, T // 2, 4, 2, 192) and f["tokens"].compression == "lzf"
        assert f["crop_boxes"].shape == (n, T, 4) and f["scene"].shape == (192,)
        assert f["scene_map"].shape == (4, 4, 192) and f["scene_map"].dtype == np.float32
        for name, dims in FEATURE_DIMS.items():
            assert tuple(d.label for d in f[name].dims) == dims, name
            assert f[name].dtype == FEATURE_DTYPES[name]
        for key in ("person_id", "start_frame", "mid_frame"):
            np.testing.assert_array_equal(f[key][()], seg[key])
        a = dict(f.attrs)
        assert a["checkpoint_sha256"] == "random:0" and list(a["crop"]) == [32, 16] and a["seg_len"] == T
        assert a["stride"] == 1 and a["video"] == "vid" and a["split"] == "test" and a["scene"] == "01"
        assert "Swin" in a["backbone"] and a["mgenet_version"] and len(a["config_hash"]) == 16
        tokens = f["tokens"][()]
    assert np.isfinite(tokens).all() and tokens.std() > 0.1
    assert not np.allclose(tokens[0], tokens[-1])  # different persons, different tokens


def test_tokens_are_the_backbone_of_each_rows_own_crops(tmp_path, swin):
    """From exact (PNG) frames, recompute chosen rows' crops by hand: the stored tokens must be theirs."""
    case = write_case(tmp_path / "c", suffix="")
    out = tmp_path / "f.h5"
    assert run(case, out) == 0
    frames, _ = render_video(24)
    seg, _ = read_segments(case["segments"])
    feats, _ = read_features(out)
    rows = [0, 5, len(seg["frames"]) - 1]  # first person's first windows, second person's last one
    assert seg["person_id"][rows[0]] != seg["person_id"][rows[-1]]
    boxes = widen_boxes(seg["boxes"][rows], 160, 120)
    np.testing.assert_array_equal(feats["crop_boxes"][rows], boxes)
    clips = np.stack([np.stack([crop_resize(frames[f], b, (32, 16)) for f, b in zip(seg["frames"][r], bx)])
                      for r, bx in zip(rows, boxes)])
    expected = run_backbone(swin, clips, torch.device("cpu")).numpy()
    np.testing.assert_allclose(feats["tokens"][rows].astype(np.float32), expected.astype(np.float32), atol=2e-3)


def test_streaming_order_does_not_change_the_result(case, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert run(case, a, batch_size=32, decode_chunk=64) == 0
    assert run(case, b, batch_size=3, decode_chunk=5, prefetch=True) == 0  # and decoding in its own thread
    ta, tb = read_features(a)[0]["tokens"], read_features(b)[0]["tokens"]
    np.testing.assert_allclose(ta.astype(np.float32), tb.astype(np.float32), atol=2e-3)


def test_crops_held_do_not_grow_with_the_video(tmp_path):
    """Stream a video and one 8x as long through the decode/crop stage: the crops held at once stay the same."""
    peaks = []
    for n_frames in (40, 400):
        c = write_case(tmp_path / f"v{n_frames}", n_frames=n_frames, seg_len=8)
        seg, _ = read_segments(c["segments"])
        reader = open_frames(c["video"])
        cfg = FeatureConfig.from_dict({"crop": [32, 16], "batch_size": 8, "decode_chunk": 16})
        plan = plan_crops(seg["frames"], widen_boxes(seg["boxes"], reader.width, reader.height))
        stream = ClipStream(reader, plan, cfg, even_frames(reader.n_frames, 4))
        items = list(stream)
        assert items[0][0] == "scene"
        assert sum(len(rows) for rows, _ in items[1:]) == len(seg["frames"])
        peaks.append(stream.peak_crops)
    assert peaks[1] <= peaks[0] * 1.2, peaks  # 10x the frames, not 10x the crops


def test_crop_slab_reuses_and_grows():
    slab = CropSlab(n_keys=10, size=(2, 1), capacity=2)
    for k in (0, 1, 2):  # the third crop doubles the slab
        slab.new(k)[...] = k
    assert len(slab) == 3 and len(slab.data) == 4
    slab.free(1)
    slab.new(5)[...] = 5  # takes the freed slot
    assert len(slab.data) == 4
    np.testing.assert_array_equal(slab.gather(np.array([[2, 0], [5, 2]]))[..., 0, 0, 0], [[2, 0], [5, 2]])


def test_frame_folder_and_avi_sources(tmp_path):
    for suffix in ("", ".avi"):
        case = write_case(tmp_path / f"c{suffix or 'dir'}", suffix=suffix, n_frames=20)
        out = tmp_path / f"f{suffix}.h5"
        assert run(case, out) == 0
        assert read_features(out, ("tokens",))[0]["tokens"].shape[1:] == (4, 4, 2, 192)


def test_video_without_persons(tmp_path):
    case = write_case(tmp_path / "c", n_frames=20)
    seg, attrs = read_segments(case["segments"])
    write_segments(case["segments"], {k: v[:0] for k, v in seg.items()}, attrs)
    out = tmp_path / "f.h5"
    assert run(case, out) == 0
    feats, _ = read_features(out)
    assert feats["tokens"].shape == (0, 4, 4, 2, 192) and feats["scene"].shape == (192,)


def test_feature_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"tokens": rng.normal(size=(5, 2, 4, 2, 192)).astype(np.float16),
              "crop_boxes": rng.uniform(0, 100, (5, 4, 4)).astype(np.float32),
              "person_id": np.array([1, 1, 2, 2, 3]), "start_frame": np.arange(5), "mid_frame": np.arange(5) + 2,
              "scene": rng.normal(size=192), "scene_map": rng.normal(size=(3, 3, 192))}
    attrs = {"backbone": "b", "checkpoint_sha256": "random:0", "crop": [32, 16], "seg_len": 4, "stride": 1,
             "mgenet_version": "x", "config_hash": "h", "video": "v", "split": "test", "scene": "01"}
    path = tmp_path / "f.h5"
    write_features(path, arrays, attrs, compression="gzip")
    back, battrs = read_features(path)
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], np.asarray(v, FEATURE_DTYPES[k]))
        assert back[k].dtype == FEATURE_DTYPES[k]
    assert battrs["video"] == "v" and list(battrs["crop"]) == [32, 16]
    part, _ = read_features(path, ("tokens", "scene"), rows=slice(1, 3))
    assert part["tokens"].shape[0] == 2 and part["scene"].shape == (192,)
    with pytest.raises(ValueError, match="attrs lack"):
        write_features(tmp_path / "g.h5", arrays, {"video": "v"})
    assert not (tmp_path / "g.h5").exists()


# ------------------------------------------------------------------------------------------------- bad input


def test_video_shorter_than_the_pose_file_claims(tmp_path, capsys):
    case = write_case(tmp_path / "c", n_frames=40, suffix=".avi")
    short = tmp_path / "short.avi"
    frames, _ = render_video(25)
    from synthetic_video import write_video

    write_video(frames, short)
    out = tmp_path / "f.h5"
    assert run(case, out, source=short) == 1
    err = capsys.readouterr().err
    last = int(read_segments(case["segments"], ("frames",))[0]["frames"].max())
    assert last >= 25
    assert err.startswith("error: ") and str(short) in err and "has 25 frames" in err and f"needs frame {last}" in err
    assert_nothing_left(out)


def test_truncated_video_file(case, tmp_path, capsys):
    cut = tmp_path / "cut.mp4"
    data = case["video"].read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    out = tmp_path / "f.h5"
    assert run(case, out, source=cut) == 1
    err = capsys.readouterr().err
    assert str(cut) in err and "truncated" in err
    assert_nothing_left(out)


@pytest.mark.parametrize("box, what", [([50, 40, 50, 80], "zero width"), ([500, 400, 540, 480], "outside"),
                                       ([np.nan, 40, 60, 80], "nan")])
def test_uncroppable_box_names_person_and_frame(case, tmp_path, capsys, box, what):
    seg, attrs = read_segments(case["segments"])
    seg["boxes"][3, 2] = box
    write_segments(case["segments"], seg, attrs)
    out = tmp_path / "f.h5"
    assert run(case, out) == 1
    err = capsys.readouterr().err
    pid, frame = int(seg["person_id"][3]), int(seg["frames"][3, 2])
    assert str(case["segments"]) in err and f"person {pid}, frame {frame}" in err, (what, err)
    assert_nothing_left(out)


def test_missing_weights(case, tmp_path, capsys):
    out = tmp_path / "f.h5"
    weights = tmp_path / "resources" / "weights" / "swin_tiny_patch244_window877_kinetics400_1k.pth"
    assert run(case, out, weights=str(weights)) == 1
    err = capsys.readouterr().err
    assert str(weights) in err and "releases/download" in err
    assert_nothing_left(out)


def test_checkpoint_with_wrong_keys(case, tmp_path, capsys, swin):
    state = {f"backbone.{k}": v for k, v in swin.state_dict().items() if "layers.1.blocks.1" not in k}
    state["backbone.layers.0.blocks.0.attn.qkv_extra.weight"] = torch.zeros(3)
    weights = tmp_path / "wrong.pth"
    torch.save({"meta": {}, "state_dict": state}, weights)
    out = tmp_path / "f.h5"
    assert run(case, out, weights=str(weights)) == 1
    err = capsys.readouterr().err
    assert str(weights) in err and "layers.1.blocks.1.mlp.fc1.weight" in err
    assert "unexpected keys (1): layers.0.blocks.0.attn.qkv_extra.weight" in err
    assert_nothing_left(out)


def test_real_checkpoint_path_loads(case, tmp_path, swin):
    """A (random) checkpoint in the recognizer format runs through the CLI and is recorded by its sha256."""
    from mgenet.io import sha256_file

    weights = tmp_path / "swin.pth"
    state = {f"backbone.{k}": v for k, v in swin.state_dict().items()}
    state["cls_head.fc_cls.weight"] = torch.zeros(400, 768)
    torch.save({"meta": {"epoch": 30}, "state_dict": state}, weights)
    out = tmp_path / "f.h5"
    assert run(case, out, weights=str(weights), seed=5) == 0
    ref = tmp_path / "ref.h5"
    assert run(case, ref) == 0  # random weights of seed 0 = the saved ones
    a, attrs = read_features(out, ("tokens",))
    np.testing.assert_array_equal(a["tokens"], read_features(ref, ("tokens",))[0]["tokens"])
    assert attrs["checkpoint_sha256"] == sha256_file(weights)


# ------------------------------------------------------------------------------------------ config, estimate


def test_schema_defaults_match_feature_config():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]["features"]["properties"]
    assert schema["properties"]["features"]["additionalProperties"] is False
    cfg = FeatureConfig().to_dict()
    for key, spec in props.items():
        default = spec["default"]
        assert (list(cfg[key]) if isinstance(cfg[key], tuple) else cfg[key]) == default, key
        assert spec.get("description"), key
    assert set(props) == set(cfg) - {"seed", "device"}


def test_bad_feature_settings():
    from mgenet import MgenetError

    with pytest.raises(MgenetError, match="multiples of 8"):
        FeatureConfig.from_dict({"crop": [30, 16]})
    with pytest.raises(MgenetError, match="compression"):
        FeatureConfig.from_dict({"compression": "zstd"})


def test_estimate_counts_every_clip(case, tmp_path, capsys):
    out = tmp_path / "f.h5"
    assert run(case, out) == 0
    capsys.readouterr()
    seg_dir = tmp_path / "segs"
    seg_dir.mkdir()
    (seg_dir / "vid.h5").write_bytes(case["segments"].read_bytes())
    assert main(["features", "--estimate", "--manifest", str(case["manifest"]), "--segments-dir", str(seg_dir),
                 "--params", json.dumps({**PARAMS, "segments": {"seg_len": 8}})]) == 0
    text = capsys.readouterr().out
    n = len(read_segments(case["segments"], ("person_id",))[0]["person_id"])
    per_clip = clip_bytes(FeatureConfig.from_dict(PARAMS), 8)
    with h5py.File(out) as f:
        assert per_clip == f["tokens"][0].nbytes + f["crop_boxes"][0].nbytes + 12
    assert f"{per_clip / 1e6:.3f} MB per clip" in text
    row = [ln.split() for ln in text.splitlines() if ln.startswith("test")][0]
    assert row[:3] == ["test", "1", str(n)]
    # 2 persons of 24 frames, T = 8, stride 1: 16 windows each (8 frames through the backbone per window); layout
    # track: frames 0..22 of each person in two phases of 11 rows (22 frames) each
    assert n == 32 and row[5:7] == ["256", "44"] and row[9] == "88"
    assert f"{256 / 88:.1f}x" in row[-1]


def test_layout_counts_of_pose_windows_match_the_segments():
    from mgenet.features.estimate import layout_counts, pose_windows
    from mgenet.pose.segments import SegmentConfig

    track = {f: None for f in range(30) if f != 12}  # one gap, bridged by the windows (max_missing 2)
    frames, pids = pose_windows({7: track, 9: {f: None for f in range(5)}}, SegmentConfig(seg_len=8), "test")
    assert frames.shape == (21, 8) and set(pids.tolist()) == {7}  # ceil((29 - 8) / 1); person 9 is too short
    c = layout_counts(frames, pids, FeatureConfig())
    # 28 frames used (0..28 without 12): phase 0 rows 0..13 (frames up to 28), phase 1 rows up to frame 27
    assert c == {"clips": 21, "window_frames": 168, "track_rows": 14 + 13, "track_frames": 54}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("amp", ["bf16", "fp16", "off"])
def test_gpu_extraction_matches_cpu(case, tmp_path, amp):
    """The GPU path (uint8 upload, autocast, decoder thread) gives the CPU's tokens up to half precision."""
    cpu, gpu = tmp_path / "cpu.h5", tmp_path / "gpu.h5"
    assert run(case, cpu) == 0
    assert run(case, gpu, device="cuda", amp=amp) == 0
    a, b = read_features(cpu)[0], read_features(gpu)[0]
    assert read_features(gpu)[1]["device"].startswith("cuda")
    err = np.abs(a["tokens"].astype(np.float32) - b["tokens"].astype(np.float32))
    assert err.max() < (0.01 if amp == "off" else 0.15) and err.mean() < 0.02
    np.testing.assert_allclose(a["scene"], b["scene"], atol=0.05)
