"""Bad input through the command line: one clear error naming the file, and no artifact left behind."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from helpers import make_stgnf_dataset, standing_pose

from mgenet.cli import main
from mgenet.io import MANIFEST_COLUMNS


def _manifest(tmp_path, pose_path, frames=40):
    df = pd.DataFrame([{"video": "01_0001", "split": "test", "scene": "01", "frames": frames, "fps": 25.0,
                        "height": 120, "width": 160, "video_path": "", "pose_path": str(pose_path),
                        "gt_path": ""}])[MANIFEST_COLUMNS]
    path = tmp_path / "manifest.csv"
    df.to_csv(path, index=False)
    return path


def test_import_pose_nan_is_one_error_and_no_output(tmp_path, capsys):
    kp = standing_pose(10, 50).reshape(-1).tolist()
    kp[0] = float("nan")
    src = tmp_path / "p.json"
    src.write_text(json.dumps({"1": {"0003": {"keypoints": kp, "scores": 0.9}}}))
    out = tmp_path / "out" / "01_0001.json"
    rc = main(["import-pose", "--manifest", str(_manifest(tmp_path, src)), "--video", "01_0001", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and str(src) in err and "NaN" in err
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())  # no temporary file either


def test_import_pose_frame_beyond_video(tmp_path, capsys):
    src = tmp_path / "p.json"
    src.write_text(json.dumps({"1": {"0050": {"keypoints": standing_pose(10, 50).reshape(-1).tolist()}}}))
    out = tmp_path / "o.json"
    rc = main(["import-pose", "--manifest", str(_manifest(tmp_path, src, frames=40)), "--video", "01_0001",
               "--out", str(out)])
    assert rc == 1 and "frame 50" in capsys.readouterr().err and not out.exists()


def test_missing_pose_file_names_it(tmp_path, capsys):
    src = tmp_path / "gone.json"
    rc = main(["import-pose", "--manifest", str(_manifest(tmp_path, src)), "--video", "01_0001",
               "--out", str(tmp_path / "o.json")])
    assert rc == 1 and str(src) in capsys.readouterr().err


def test_video_with_no_person_gives_empty_segments(tmp_path):
    src = tmp_path / "p.json"
    src.write_text("{}")
    man = _manifest(tmp_path, src)
    assert main(["import-pose", "--manifest", str(man), "--video", "01_0001", "--out", str(tmp_path / "o.json")]) == 0
    seg = tmp_path / "s.h5"
    assert main(["segments", "--manifest", str(man), "--video", "01_0001", "--pose", str(tmp_path / "o.json"),
                 "--params", json.dumps({"seg_len": 8}), "--out", str(seg)]) == 0
    import h5py

    with h5py.File(seg) as f:
        assert f["pose"].shape == (0, 2, 8, 18) and f.attrs["video"] == "01_0001"
        assert f["pose"].dims[3].label == "joint"


def test_index_unknown_layout(tmp_path, capsys):
    root = make_stgnf_dataset(tmp_path / "d")
    out = tmp_path / "m.csv"
    rc = main(["index", "--params", json.dumps({"root": str(root), "layout": "avenue"}), "--out", str(out)])
    assert rc == 1 and "avenue" in capsys.readouterr().err and not out.exists()


def test_inspect_prints_layout(tmp_path, capsys):
    src = tmp_path / "p.json"
    src.write_text(json.dumps({"1": {f"{f:04d}": {"keypoints": standing_pose(10 + f, 50).reshape(-1).tolist()}
                                     for f in range(20)}}))
    man = _manifest(tmp_path, src)
    seg = tmp_path / "s.h5"
    assert main(["segments", "--manifest", str(man), "--video", "01_0001", "--pose", str(src),
                 "--params", json.dumps({"seg_len": 8}), "--out", str(seg)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(seg), "--clip", "0"]) == 0
    out = capsys.readouterr().out
    assert "pose: shape (12, 2, 8, 18) [clip, coord, time, joint] float32" in out
    assert "@seg_len = " in out and "clip 0: min" in out


# ------------------------------------------------------------------------------- missing inputs and devices


def _error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_a_missing_input_names_the_rule_that_makes_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Snakemake's targets are relative to the working directory
    cpu = json.dumps({"device": "cpu"})
    r = "results/demo"
    cases = [
        (["fuse", "--scores", f"{r}/scores/segments.parquet", "--manifest", f"{r}/manifest.csv", "--out", "f.pq"],
         f"{r}/scores/segments.parquet", "score table", "score_components"),
        (["evaluate", "--frames", f"{r}/scores/frames.parquet", "--out", "m.json"],
         f"{r}/scores/frames.parquet", "score table", "fuse_scores"),
        (["segments", "--manifest", f"{r}/manifest.csv", "--video", "01_0001", "--pose", f"{r}/pose/01_0001.json",
          "--out", "s.h5"], f"{r}/manifest.csv", "manifest", "index_dataset"),
        (["train-flow", "--segments", f"{r}/segments/01_001.h5", "--params",
          json.dumps({"seg_len": 24, "device": "cpu"}), "--out", "flow.pt"],
         f"{r}/segments/01_001.h5", "segments file", "build_segments"),
        (["encode-flow", "--model", f"{r}/models/flow.pt", "--segments", f"{r}/segments/01_001.h5", "--params", cpu,
          "--out", "f.h5"], f"{r}/models/flow.pt", "flow checkpoint", "train_flow"),
        (["score", "--flow", f"{r}/flow/test.h5", "--out", "s.pq"], f"{r}/flow/test.h5", "flow scores",
         "encode_flow"),
        (["train-stage2", "--features", f"{r}/features/01_001.h5", "--flow", f"{r}/flow/train.h5", "--params", cpu,
          "--out", "s2.pt"], f"{r}/features/01_001.h5", "features file", "extract_features"),
        (["ablation-table", "--metrics", f"no_app={r}/runs/abl_no_app/eval/metrics.json", "--out", "t.csv"],
         f"{r}/runs/abl_no_app/eval/metrics.json", "metrics of ablation variant 'no_app'", "evaluate_run"),
        (["inspect", f"{r}/runs/abl_no_lsta/models/stage2.pt"], f"{r}/runs/abl_no_lsta/models/stage2.pt", "file",
         "train_stage2"),
    ]
    for argv, path, what, rule in cases:
        err = _error(capsys, *argv)
        assert f"error: {path}: {what} not found; it is made by rule {rule} (`snakemake {path}`)." in err, err
    assert not (tmp_path / "results").exists()


def test_a_missing_file_outside_results_names_the_rule_or_the_fix(tmp_path, capsys):
    err = _error(capsys, "encode-flow", "--model", str(tmp_path / "models" / "flow.pt"), "--segments", "s.h5",
                 "--params", json.dumps({"device": "cpu"}), "--out", str(tmp_path / "f.h5"))
    assert f"{tmp_path / 'models' / 'flow.pt'}: flow checkpoint not found; it is made by rule train_flow." in err
    err = _error(capsys, "inspect", str(tmp_path / "mine.h5"))
    assert f"{tmp_path / 'mine.h5'}: file not found." in err


def test_made_by_names_rules_of_the_workflow():
    from pathlib import Path

    from mgenet.cli.rules import MADE_BY, RUN_MADE_BY, made_by

    text = "\n".join(p.read_text() for p in (Path(__file__).parents[2] / "workflow" / "rules").rglob("*.smk"))
    rules = set(re.findall(r"^\s*(?:rule|checkpoint) (\w+):", text, re.M))
    named = {n for r in [*MADE_BY.values(), *RUN_MADE_BY.values()] for n in re.findall(r"\b[a-z]+(?:_[a-z0-9]+)+\b", r)}
    assert len(named) >= 13 and named <= rules, named - rules
    # a variant run's artifacts (results/<ds>/runs/<run>/) are made by the main run's rules, but two
    assert made_by("results/ds/runs/seed3/flow/test.h5") == ("encode_flow", True)
    assert made_by("results/ds/runs/abl_full/scores/frames.parquet") == ("fuse_scores", True)
    assert made_by("results/ds/runs/abl_full/models/stage2.pt") == ("train_stage2", True)
    assert made_by("results/ds/runs/mseed4/models/stage2.pt") == ("rewrite_matching", True)
    assert made_by("results/ds/runs/seed1_mseed4/models/stage2.pt") == ("rewrite_matching", True)
    assert made_by("results/ds/runs/seed1/eval/metrics.json") == ("evaluate_run", True)
    assert made_by("results/ds/eval/metrics.json") == ("evaluate", True)
    assert made_by("results/ds/scores/segments_train.parquet") == ("score_components", True)
    assert made_by("results/ds/runs/seed1/eval/val_metrics.json") == ("evaluate_val", True)
    assert made_by("results/ds/runs/seed1/scores/frames_val.parquet") == ("fuse_scores", True)
    assert made_by("runs/seed1/models/flow.pt") == ("train_flow", False)
    assert made_by("results/ub/labels/abnormal_scene_1_scenario_2.csv") == ("label_windows", True)
    assert made_by("elsewhere/stage2.pt") is None


def test_explicit_cuda_without_a_gpu_is_one_error_naming_the_setting(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cuda = json.dumps({"device": "cuda"})  # encode_flow's params; train_flow's add seg_len
    train = json.dumps({"device": "cuda", "seg_len": 24})
    for argv in (["encode-flow", "--model", "flow.pt", "--segments", "s.h5", "--params", cuda, "--out", "f.h5"],
                 ["train-flow", "--segments", "s.h5", "--params", train, "--out", str(tmp_path / "flow.pt")]):
        err = _error(capsys, *argv)
        assert "device: cuda asks for a CUDA GPU" in err and "set device: auto" in err and "device: cpu" in err
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert "no GPU visible" in _error(capsys, "encode-flow", "--model", "flow.pt", "--segments", "s.h5",
                                      "--params", cuda, "--out", "f.h5")
    assert not list(tmp_path.iterdir())


def test_auto_without_a_gpu_is_the_cpu_said_once(monkeypatch, caplog):
    import logging

    import torch

    from mgenet.runtime import _say_auto_is_cpu, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _say_auto_is_cpu.cache_clear()
    with caplog.at_level(logging.INFO, logger="mgenet"):
        assert resolve_device("auto") == resolve_device("auto") == torch.device("cpu")
    said = [r for r in caplog.records if "device: auto -> cpu" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO


def test_workflow_and_package_agree_on_the_demo_generator_version(tmp_path, capsys):
    from helpers import REPO

    from mgenet.datasets.demo import GENERATOR_VERSION

    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert re.search(r'^DEMO_GENERATOR_VERSION = "(\w+)"$', common, re.M).group(1) == GENERATOR_VERSION
    # a workflow from another checkout than the installed package is one error, and no dataset is written
    params = json.dumps({"frames": 24, "generator_version": "0"})
    assert main(["make-demo", "--params", params, "--out", str(tmp_path / "ds")]) != 0
    assert "demo generator version 0" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


# ------------------------------------------------------------------------------------ fusion normalisation (#17)


def _segment_scores(path, video, mids, mo, app):
    from mgenet.io import write_parquet

    n = len(mids)
    write_parquet(pd.DataFrame({"video": [video] * n, "person_id": [0] * n, "start_frame": [m - 1 for m in mids],
                                "mid_frame": mids, "nf": [0.0] * n, "mo": mo, "app": app}), path)
    return str(path)


def test_fuse_with_train_normalisation_reads_the_training_scores(tmp_path, capsys):
    from mgenet.io import read_parquet

    manifest = _manifest(tmp_path, "", frames=6)
    test = _segment_scores(tmp_path / "test.parquet", "01_0001", [1, 2, 3], [50.0, 99.0, 148.0], [0.0, 1.0, 2.0])
    train = _segment_scores(tmp_path / "train.parquet", "01_0000", list(range(1, 102)),
                            [float(x) for x in range(101)], [x / 10 for x in range(101)])
    p = json.dumps({"weights": {"mo": 1.0}, "normalise": "train", "smoothing_sigmas": []})
    base = ["fuse", "--scores", test, "--manifest", str(manifest), "--params", p, "--out", str(tmp_path / "f.pq")]
    err = _error(capsys, *base)
    assert "fusion.normalise train" in err and "--train-scores" in err and not (tmp_path / "f.pq").exists()
    err = _error(capsys, *base, "--train-scores", str(tmp_path / "nope.parquet"))
    assert "nope.parquet: training segment scores not found" in err
    assert main([*base, "--train-scores", train]) == 0
    fr = read_parquet(tmp_path / "f.pq")
    # mo (50, 99, 148) -> (0, 1, 2) by the training median 50 and 0.99 quantile 99; frames 0, 4, 5 have no person:
    # the lowest training frame score, (0 - 50) / 49
    fill = -50 / 49
    np.testing.assert_allclose(fr["fused"], [fill, 0.0, 1.0, 2.0, fill, fill])
    # test_minmax ignores the training table (and says so)
    p = json.dumps({"weights": {"mo": 1.0}, "smoothing_sigmas": []})
    assert main(["fuse", "--scores", test, "--manifest", str(manifest), "--params", p, "--out",
                 str(tmp_path / "g.pq"), "--train-scores", train]) == 0
    np.testing.assert_allclose(read_parquet(tmp_path / "g.pq")["fused"], [0.0, 0.0, 0.5, 1.0, 0.0, 0.0])
