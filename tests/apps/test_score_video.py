"""`mgenet score-video`: one new video scored end to end with trained models, against the DAG's scores of it."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mgenet.cli import main
from mgenet.datasets.demo import generate_demo
from mgenet.datasets.demo_plan import DemoConfig
from mgenet.io import read_alphapose, read_manifest
from mgenet.pose.backends import FramePoses, PoseBackend
from mgenet.scoring.frames import DEFAULT_SIGMAS, smooth

DEMO = DemoConfig(seed=2, n_scenes=1, train_videos_per_scene=2, test_videos_per_scene=2, val_videos_per_scene=0, frames=64, width=160,
                  height=120)
SEG = {"seg_len": 8, "train_stride": 3, "test_stride": 1, "max_missing": 2, "keep_last_window": False}
FLOW = {"model": {"n_flows": 2, "temporal_kernel": 3}, "train": {"epochs": 1, "batch_size": 64}, "seg_len": 8,
        "seed": 0, "device": "cpu"}
FEATURES = {"weights": "random", "crop": [32, 16], "batch_size": 64, "scene_size": [32, 32], "scene_frames": 4,
            "seed": 0, "device": "cpu"}
STAGE2 = {"model": {"dim": 16, "depth": 1, "heads": 2, "c_app": 8, "n_behaviour": 8, "n_scene": 4, "n_matching": 6,
                    "top_k": 2, "lsta_blocks": 1, "lka_kernel": 5, "lka_dilation": 2},
          "train": {"level1_epochs": 1, "level2_epochs": 1, "matching_epochs": 1, "batch_size": 64},
          "seed": 0, "device": "cpu"}
STAGE2_COLUMNS = ["mo", "app", "mm"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ok(*args: str) -> None:
    assert main(["--threads", "1", *args]) == 0, args


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny demo run through the DAG's commands: trained models, and the test set's segment and frame scores."""
    root = tmp_path_factory.mktemp("sv")
    data, r = root / "demo", root / "results" / "tiny"
    generate_demo(data, DEMO)
    ok("index", "--params", json.dumps({"root": str(data), "layout": "stgnf", "intervals": "anomalies.csv"}),
       "--out", str(r / "manifest.csv"))
    man = read_manifest(r / "manifest.csv")
    for v in man["video"]:
        ok("import-pose", "--manifest", str(r / "manifest.csv"), "--video", v, "--out", str(r / "pose" / f"{v}.json"))
        ok("segments", "--manifest", str(r / "manifest.csv"), "--video", v, "--pose", str(r / "pose" / f"{v}.json"),
           "--params", json.dumps(SEG), "--out", str(r / "segments" / f"{v}.h5"))
        ok("features", "--manifest", str(r / "manifest.csv"), "--video", v, "--segments",
           str(r / "segments" / f"{v}.h5"), "--params", json.dumps(FEATURES), "--out", str(r / "features" / f"{v}.h5"))
    split = {s: sorted(man.loc[man["split"] == s, "video"]) for s in ("train", "test")}
    segs = {s: [str(r / "segments" / f"{v}.h5") for v in vs] for s, vs in split.items()}
    feats = {s: [str(r / "features" / f"{v}.h5") for v in vs] for s, vs in split.items()}
    ok("train-flow", "--segments", *segs["train"], "--params", json.dumps(FLOW), "--out", str(r / "models" / "flow.pt"))
    for s in ("train", "test"):
        ok("encode-flow", "--model", str(r / "models" / "flow.pt"), "--segments", *segs[s], "--params",
           json.dumps({"device": "cpu"}), "--out", str(r / "flow" / f"{s}.h5"))
    ok("train-stage2", "--features", *feats["train"], "--flow", str(r / "flow" / "train.h5"), "--params",
       json.dumps(STAGE2), "--out", str(r / "models" / "stage2.pt"))
    ok("score", "--flow", str(r / "flow" / "test.h5"), "--stage2", str(r / "models" / "stage2.pt"), "--features",
       *feats["test"], "--params", json.dumps({"device": "cpu"}), "--out", str(r / "scores" / "segments.parquet"))
    for name, sigmas in (("frames", DEFAULT_SIGMAS), ("frames_raw", [])):
        ok("fuse", "--scores", str(r / "scores" / "segments.parquet"), "--manifest", str(r / "manifest.csv"),
           "--params", json.dumps({"weights": {"mo": 1.0, "app": 0.1, "mm": 0.1}, "smoothing_sigmas": sigmas}),
           "--out", str(r / "scores" / f"{name}.parquet"))
    video = split["test"][0]
    row = man[man["video"] == video].iloc[0]
    return {"root": root, "r": r, "video": video, "source": Path(row["video_path"]), "frames": int(row["frames"]),
            "pose": r / "pose" / f"{video}.json",
            "dag": {name: (lambda df: df[df["video"] == video].reset_index(drop=True))(
                pd.read_parquet(r / "scores" / f"{name}.parquet")) for name in ("frames", "frames_raw")}}


@pytest.fixture(scope="module")
def scored(run: dict) -> Path:
    out = run["root"] / "out"
    ok("score-video", str(run["source"]), "--models", str(run["r"] / "models"), "--pose", str(run["pose"]),
       "--out", str(out), "--progress")
    return out


def frames_of(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "frames.csv")


def test_checkpoints_record_how_their_training_data_were_made(run: dict) -> None:
    flow = torch.load(run["r"] / "models" / "flow.pt", weights_only=True)
    assert flow["segments"] == {"seg_len": 8, "max_missing": 2, "keep_last_window": False, "train_stride": 3,
                                "norm_size": "stgnf"}
    feats = torch.load(run["r"] / "models" / "stage2.pt", weights_only=True)["provenance"]["features"]
    assert feats["checkpoint_sha256"] == "random:0" and feats["weights"] == "random"
    assert feats["crop"] == [32, 16] and feats["scene_size"] == [32, 32] and feats["seg_len"] == 8


def test_scores_every_frame_as_the_dag_does(run: dict, scored: Path) -> None:
    df = frames_of(scored)
    assert list(df.columns) == ["frame", "nf", "mo", "app", "mm", "fused", "smoothed"]
    assert len(df) == run["frames"] and (df["frame"] == np.arange(run["frames"])).all()
    assert np.isfinite(df.drop(columns="frame").to_numpy()).all()
    # scaled with the test set's ranges and filled with its lowest score (the default reference, beside the models),
    # a test video gets exactly the DAG's frame scores: unsmoothed, and smoothed as the DAG smooths every column
    raw, dag = run["dag"]["frames_raw"], run["dag"]["frames"]
    for c in ["nf", *STAGE2_COLUMNS, "fused"]:
        np.testing.assert_allclose(df[c], raw[c], rtol=1e-6, atol=1e-9, err_msg=c)
    np.testing.assert_allclose(smooth(df["nf"].to_numpy(), DEFAULT_SIGMAS), dag["nf"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(df["smoothed"], dag["fused"], rtol=1e-6, atol=1e-9)
    assert df["nf"].std() > 0 and df["mo"].std() > 0
    prov = json.loads((scored / "provenance.json").read_text())
    assert prov["sources"]["segments"] == "the flow checkpoint"
    assert prov["sources"]["features"] == "the stage-2 checkpoint"
    assert prov["normalisation"]["path"].endswith("segments.parquet") and prov["segments"] > 0
    png = (scored / "scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert sorted(p.name for p in scored.iterdir()) == ["events.csv", "frames.csv", "index.html", "overlay.mp4",
                                                        "persons.csv", "provenance.json", "scores.png"]


def test_persons_and_events_of_a_trained_run(run: dict, scored: Path) -> None:
    """persons.csv holds every tracked person-frame with the scores of the window centred there, so the frame table's
    per-frame max is its max over persons; events are the runs above the threshold fitted on the test set's
    segments (the reference here), each naming the person scored highest at its peak."""
    frames, persons = frames_of(scored), pd.read_csv(scored / "persons.csv")
    poses = read_alphapose(run["pose"])
    pairs = {(t, f) for t, track in poses.items() for f in track}
    rows = set(zip(persons["track"], persons["frame"]))
    assert pairs <= rows and set(persons["track"]) == set(poses) and persons[["x1", "y2"]].notna().all().all()
    for t, f in rows - pairs:  # a window's middle frame its person was missed in (max_missing): scored all the same
        assert not np.isnan(persons.loc[(persons["track"] == t) & (persons["frame"] == f), "fused"]).any()
    scored_rows = persons.dropna(subset=["fused"])
    assert len(scored_rows) == json.loads((scored / "provenance.json").read_text())["segments"]
    for c in ["nf", *STAGE2_COLUMNS, "fused"]:
        per_frame = scored_rows.groupby("frame")[c].max()
        np.testing.assert_allclose(frames.loc[per_frame.index, c], per_frame, rtol=1e-5, err_msg=c)
    prov = json.loads((scored / "provenance.json").read_text())
    thr = prov["events"]["threshold"]
    assert "0.99 quantile" in prov["events"]["threshold_rule"] and "segments.parquet" in prov["events"][
        "threshold_rule"]
    above = frames["smoothed"].to_numpy() > thr
    events = pd.read_csv(scored / "events.csv")
    covered = np.zeros(len(frames), bool)
    for e in events.drop_duplicates("event").itertuples():
        covered[e.start:e.end + 1] = True
        assert e.peak_score == pytest.approx(frames["smoothed"].iloc[e.start:e.end + 1].max(), rel=1e-5)
    assert (covered == above).all()
    assert prov["frames_per_second"]["total"] > 0 and "overlay" in prov["frames_per_second"]


def test_old_checkpoints_take_settings_from_the_runs_provenance(run: dict, scored: Path) -> None:
    """Checkpoints from before they recorded their data settings: the files beside the models folder tell."""
    old = run["r"] / "models_old"
    old.mkdir()
    flow = torch.load(run["r"] / "models" / "flow.pt", weights_only=True)
    del flow["segments"]
    torch.save(flow, old / "flow.pt")
    stage2 = torch.load(run["r"] / "models" / "stage2.pt", weights_only=True)
    del stage2["provenance"]["features"]
    torch.save(stage2, old / "stage2.pt")
    out = run["root"] / "out_old"
    ok("score-video", str(run["source"]), "--models", str(old), "--pose", str(run["pose"]), "--out", str(out))
    pd.testing.assert_frame_equal(frames_of(out), frames_of(scored))
    sources = json.loads((out / "provenance.json").read_text())["sources"]
    assert "training segments files" in sources["segments"] and "training features files" in sources["features"]


def test_train_normalisation_needs_no_test_set_file(run: dict, tmp_path: Path) -> None:
    """fusion.normalise train (and a one-sided S_mm): scaled and filled from the training segments' scores alone,
    beside a models folder without the test set's segments.parquet, a test video gets the DAG's frame scores."""
    r = run["r"]
    man = read_manifest(r / "manifest.csv")
    feats = {s: [str(r / "features" / f"{v}.h5") for v in sorted(man.loc[man["split"] == s, "video"])]
             for s in ("train", "test")}
    models, scores = tmp_path / "run" / "models", tmp_path / "run" / "scores"
    models.mkdir(parents=True)
    for name in ("flow.pt", "stage2.pt"):
        shutil.copy(r / "models" / name, models / name)
    params = json.dumps({"device": "cpu", "mm_form": "one_sided"})
    for split, out in (("train", scores / "segments_train.parquet"), ("test", tmp_path / "test_segments.parquet")):
        ok("score", "--flow", str(r / "flow" / f"{split}.h5"), "--stage2", str(models / "stage2.pt"), "--features",
           *feats[split], "--params", params, "--out", str(out))
    fusion = {"weights": {"mo": 1.0, "app": 0.1, "mm": 0.1}, "normalise": "train"}
    ok("fuse", "--scores", str(tmp_path / "test_segments.parquet"), "--manifest", str(r / "manifest.csv"),
       "--train-scores", str(scores / "segments_train.parquet"), "--params",
       json.dumps({**fusion, "smoothing_sigmas": []}), "--out", str(tmp_path / "frames_raw.parquet"))
    dag = pd.read_parquet(tmp_path / "frames_raw.parquet")
    dag = dag[dag["video"] == run["video"]].reset_index(drop=True)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"device": "cpu", "fusion": fusion, "stage2": {"mm_form": "one_sided"}}))
    out = tmp_path / "out"
    ok("score-video", str(run["source"]), "--models", str(models), "--pose", str(run["pose"]), "--config",
       str(config), "--out", str(out))
    df = frames_of(out)
    for c in ["nf", *STAGE2_COLUMNS, "fused"]:
        np.testing.assert_allclose(df[c], dag[c], rtol=1e-6, atol=1e-9, err_msg=c)
    assert not np.allclose(df["mm"], run["dag"]["frames_raw"]["mm"])  # one-sided, not the two-sided default
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["normalisation"]["path"].endswith("segments_train.parquet") and prov["mm_form"] == "one_sided"
    assert prov["normalisation"]["normalise"] == "train" and set(prov["normalisation"]["scaling"]) == {"mo", "app",
                                                                                                     "mm"}


class ReplayBackend(PoseBackend):
    """Replays the demo's poses frame by frame, as a pose estimator that sees them perfectly would find them."""

    name = "replay"
    poses: dict[int, np.ndarray] = {}

    def __init__(self, cfg, threads: int = 1) -> None:
        super().__init__(cfg, threads)
        self.frame = 0

    def __call__(self, frame_bgr, hints=None) -> FramePoses:
        kp = self.poses.get(self.frame, np.zeros((0, 17, 3), np.float32))
        self.frame += 1
        return FramePoses(kp, np.ones(len(kp), np.float32))


def test_flow_alone_extracting_poses_and_scaling_over_the_video(run: dict, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """No stage2.pt: S_nf alone; poses from a (replaying) backend of the config; no reference: the video alone."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(run["r"] / "models" / "flow.pt", models / "flow.pt")
    by_frame: dict[int, list[np.ndarray]] = {}
    for track in read_alphapose(run["pose"]).values():
        for f, kp in track.items():
            by_frame.setdefault(f, []).append(kp)
    ReplayBackend.poses = {f: np.stack(kps) for f, kps in by_frame.items()}
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"device": "cpu", "pose": {"backend": f"{__name__}:ReplayBackend"},
                                  "score": {"smoothing_sigmas": [2]}}))
    with caplog.at_level(logging.WARNING, logger="mgenet"):
        ok("score-video", str(run["source"]), "--models", str(models), "--config", str(config), "--out",
           str(tmp_path / "out"))
    assert "this video alone" in caplog.text
    df = frames_of(tmp_path / "out")
    assert len(df) == run["frames"] and df[STAGE2_COLUMNS].isna().all().all()
    assert np.isfinite(df[["nf", "fused", "smoothed"]].to_numpy()).all()
    # nf alone, min-max over this video's segments: the most anomalous window's frame reaches 1
    assert df["fused"].min() >= 0 and df["fused"].max() == pytest.approx(1.0)
    np.testing.assert_allclose(df["smoothed"], smooth(df["fused"].to_numpy(), [2]))


def test_video_with_no_person_gets_the_most_normal_score(run: dict, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "nobody.json"
    empty.write_text("{}")
    with caplog.at_level(logging.WARNING, logger="mgenet"):
        ok("score-video", str(run["source"]), "--models", str(run["r"] / "models"), "--pose", str(empty),
           "--out", str(tmp_path / "out"))
    assert "no person found" in caplog.text
    df = frames_of(tmp_path / "out")
    assert len(df) == run["frames"]
    uncovered = run["dag"]["frames_raw"].iloc[0]  # frame 0 is no window's middle: the DAG gives it the fill
    for c in ["nf", *STAGE2_COLUMNS, "fused"]:  # the test set's lowest frame score, everywhere
        np.testing.assert_allclose(df[c], uncovered[c], rtol=1e-9, err_msg=c)


def error_of(capsys: pytest.CaptureFixture, *args: str) -> str:
    assert main(["score-video", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_error_line_naming_the_file(run: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    models, out = str(run["r"] / "models"), str(tmp_path / "out")
    err = error_of(capsys, str(tmp_path / "gone.mp4"), "--models", models, "--out", out)
    assert "gone.mp4: video not found" in err
    err = error_of(capsys, str(run["source"]), "--models", str(tmp_path / "nomodels"), "--out", out)
    assert "nomodels: models folder not found" in err
    (tmp_path / "empty").mkdir()
    err = error_of(capsys, str(run["source"]), "--models", str(tmp_path / "empty"), "--out", out)
    assert "flow.pt: flow checkpoint not found" in err
    err = error_of(capsys, str(run["source"]), "--models", models, "--pose", str(tmp_path / "p.json"), "--out", out)
    assert "p.json: pose file not found" in err and "--pose" in err
    err = error_of(capsys, str(run["source"]), "--models", models, "--pose", str(run["pose"]), "--reference",
                   str(tmp_path / "ref.parquet"), "--out", out)
    assert "ref.parquet: reference scores not found" in err
    other = run["r"] / "pose" / f"{run['video']}.json"
    late = json.loads(other.read_text())
    pid = next(iter(late))
    late[pid]["9999"] = next(iter(late[pid].values()))
    (tmp_path / "late.json").write_text(json.dumps(late))
    err = error_of(capsys, str(run["source"]), "--models", models, "--pose", str(tmp_path / "late.json"), "--out", out)
    assert "late.json" in err and "frame 9999" in err
    # stage 2 trained on features of a backbone file that is gone, or that is not the one given now
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(run["r"] / "models" / "flow.pt", moved / "flow.pt")
    ck = torch.load(run["r"] / "models" / "stage2.pt", weights_only=True)
    ck["provenance"]["features"].update(weights=str(tmp_path / "swin.pth"), checkpoint_sha256="ab" * 32)
    torch.save(ck, moved / "stage2.pt")
    err = error_of(capsys, str(run["source"]), "--models", str(moved), "--pose", str(run["pose"]), "--out", out)
    assert "swin.pth: the Video Swin checkpoint" in err and "--features-weights" in err
    err = error_of(capsys, str(run["source"]), "--models", str(moved), "--pose", str(run["pose"]), "--out", out,
                   "--features-weights", "random")
    assert "random: backbone random:0 is not the one" in err
    assert not Path(out).exists()  # nothing written on error


def test_config_goes_through_the_dags_schema_and_settings(run: dict, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    import yaml

    models, out = str(run["r"] / "models"), str(tmp_path / "out")
    cases = {"negative.yaml": ({"fusion": {"weights": {"nf": -1.0}}}, "fusion.weights.nf: -1.0 is less than"),
             "bogus.yaml": ({"bogus": 1}, "'bogus' was unexpected"),
             "typo.yaml": ({"evaluation": {"bootstrp": 10}},
                           "evaluation: Additional properties are not allowed ('bootstrp' was unexpected)")}
    for name, (cfg, expected) in cases.items():
        (tmp_path / name).write_text(yaml.safe_dump(cfg))
        err = error_of(capsys, str(run["source"]), "--models", models, "--pose", str(run["pose"]), "--config",
                       str(tmp_path / name), "--out", out)
        assert err.startswith(f"error: {tmp_path / name}: ") and expected in err, err
    assert not Path(out).exists()
    # the settings class refuses what the schema cannot see (a weight given through --params)
    from mgenet.config import SettingsError
    from mgenet.scoring.fusion import FusionSettings

    with pytest.raises(SettingsError, match="must be a number >= 0"):
        FusionSettings.from_dict({"weights": {"nf": -1.0}})


def test_a_reference_of_the_wrong_table_or_kind_is_one_error(run: dict, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    models, out = str(run["r"] / "models"), str(tmp_path / "out")
    frames = run["r"] / "scores" / "frames.parquet"
    err = error_of(capsys, str(run["source"]), "--models", models, "--pose", str(run["pose"]), "--reference",
                   str(frames), "--out", out)
    assert f"{frames}: a frame score table" in err and "scores/segments.parquet" in err
    arnet = tmp_path / "arnet.parquet"  # a baseline's per-frame scores (baselines/arnet.parquet)
    pd.DataFrame({"video": ["v"], "frame": [0], "arnet": [0.5]}).to_parquet(arnet)
    err = error_of(capsys, str(run["source"]), "--models", models, "--pose", str(run["pose"]), "--reference",
                   str(arnet), "--out", out)
    assert f"{arnet}: a frame score table" in err
    nf_only = tmp_path / "nf_only.parquet"  # segment scores of another run, without stage 2's components
    pd.read_parquet(run["r"] / "scores" / "segments.parquet").drop(columns=STAGE2_COLUMNS).to_parquet(nf_only)
    err = error_of(capsys, str(run["source"]), "--models", models, "--pose", str(run["pose"]), "--reference",
                   str(nf_only), "--out", out)
    assert f"{nf_only}: reference scores lack the weighted component(s)" in err
    assert not Path(out).exists()


def test_poses_of_a_video_of_another_size_name_the_pose_file(run: dict, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    from mgenet.io import write_alphapose

    poses = read_alphapose(run["pose"])
    for track in poses.values():
        for kp in track.values():
            kp[:, :2] *= 4  # the same people filmed at 4x the resolution
    big = tmp_path / "big.json"
    write_alphapose(poses, big)
    err = error_of(capsys, str(run["source"]), "--models", str(run["r"] / "models"), "--pose", str(big), "--out",
                   str(tmp_path / "out"))
    assert err.startswith(f"error: {big}: person ") and "beyond the 160x120 frames of" in err
