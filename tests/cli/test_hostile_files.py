"""The sweep: every `mgenet` verb, given a missing, empty, truncated or foreign input file, answers with one `error:`
line naming the problem (never a traceback), and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mgenet.cli import build_parser, main

KINDS = ("missing", "empty", "truncated", "foreign")

# Each verb as the workflow's rule calls it, with every input file a slot: {csv} a manifest (or weak split, seeds
# table), {json} a pose file or metrics, {h5} a segments / features / flow / snippets file, {pt} a checkpoint,
# {parquet} a score table, {video} a video, {root} a dataset folder, {models} a models folder. Outputs go to {out}.
VERBS: dict[str, list[str]] = {
    "index": ["--params", json.dumps({"root": "{root}", "layout": "stgnf", "resolution": [320, 240]}),
              "--out", "{out}/manifest.csv"],
    "import-pose": ["--manifest", "{csv}", "--video", "v", "--out", "{out}/v.json"],
    "pose": ["{video}", "--out", "{out}/v.json"],
    "segments": ["--manifest", "{csv}", "--video", "v", "--pose", "{json}", "--out", "{out}/v.h5"],
    "features": ["--manifest", "{csv}", "--video", "v", "--source", "{video}", "--segments", "{h5}", "--params",
                 json.dumps({"weights": "random", "device": "cpu"}), "--out", "{out}/v.h5"],
    "snippets": ["--manifest", "{csv}", "--video", "v", "--source", "{video}", "--out", "{out}/v.h5"],
    "train-cr": ["--manifest", "{csv}", "--videos", "{video}", "--out", "{out}/cr.pt"],
    "score-cr": ["--model", "{pt}", "--manifest", "{csv}", "--out", "{out}/cr.parquet"],
    "train-kr": ["--snippets", "{h5}", "--out", "{out}/kr.pt"],
    "score-kr": ["--model", "{pt}", "--manifest", "{csv}", "--snippets", "{h5}", "--out", "{out}/kr.parquet"],
    "fuse-crkr": ["--cr", "{parquet}", "--kr", "{parquet}", "--manifest", "{csv}", "--out", "{out}/crkr.parquet",
                  "--paper", "{out}/paper.json"],
    "train-arnet": ["--snippets", "{h5}", "--weak-split", "{csv}", "--out", "{out}/arnet.pt"],
    "score-arnet": ["--model", "{pt}", "--snippets", "{h5}", "--manifest", "{csv}", "--out", "{out}/a.parquet"],
    "label-windows": ["--segments", "{h5}", "--annotations", "{root}", "--out", "{out}/labels.csv"],
    "train-flow": ["--segments", "{h5}", "--out", "{out}/flow.pt"],
    "import-stgnf": ["{pt}", "--out", "{out}/flow.pt"],
    "encode-flow": ["--model", "{pt}", "--segments", "{h5}", "--out", "{out}/test.h5"],
    "train-stage2": ["--features", "{h5}", "--flow", "{h5}", "--out", "{out}/stage2.pt"],
    "rewrite-matching": ["--model", "{pt}", "--features", "{h5}", "--flow", "{h5}", "--seed", "1", "--out",
                         "{out}/stage2.pt"],
    "score": ["--flow", "{h5}", "--stage2", "{pt}", "--features", "{h5}", "--out", "{out}/segments.parquet"],
    "fuse": ["--scores", "{parquet}", "--manifest", "{csv}", "--out", "{out}/frames.parquet"],
    "ubnormal-boxes": ["--manifest", "{csv}", "--root", "{root}", "--out", "{out}/boxes.csv"],
    "evaluate": ["--frames", "{parquet}", "--out", "{out}/metrics.json"],
    "tune": ["--candidates", "main={parquet}", "--manifest", "{csv}", "--out", "{out}/tuning.csv", "--tuned",
             "{out}/tuned.yaml"],
    "ablation-table": ["--metrics", "full={json}", "--out", "{out}/ablation.csv"],
    "seeds-table": ["--metrics", "0={json}", "--out", "{out}/seeds.csv"],
    "seeds-compare": ["a={csv}", "b={csv}", "--out", "{out}/compare.csv"],
    "score-video": ["{video}", "--models", "{models}", "--out", "{out}/scored"],
    "inspect": ["{h5}"],
}
NO_INPUT = {"make-demo"}  # makes its input from its params alone


def test_the_sweep_covers_every_verb():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(sub.choices) == set(VERBS) | NO_INPUT


def good_files(folder: Path) -> dict[str, Path]:
    """A well-formed file of each binary kind, whose first bytes make the truncated ones."""
    import h5py
    import pandas as pd
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "good.h5", "w") as f:
        f.create_dataset("pose", data=np.zeros((50, 2, 12, 18), np.float32))
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "model_config": {}}, folder / "good.pt")
    pd.DataFrame({"video": ["v"] * 100, "frame": range(100), "nf": np.random.rand(100)}).to_parquet(
        folder / "good.parquet")
    import cv2

    writer = cv2.VideoWriter(str(folder / "good.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for _ in range(10):
        writer.write(np.random.randint(0, 255, (48, 64, 3), np.uint8))
    writer.release()
    return {"h5": folder / "good.h5", "pt": folder / "good.pt", "parquet": folder / "good.parquet",
            "video": folder / "good.mp4"}


TEXT = {"csv": "video,split,frames,fps,height,width,scene,gt_path,pose_path,video_path\nv,test,50,25.0,24",
        "json": '{"1": {"0": {"keypoints": [1.0, 2.0, 0.9, 3.0'}
SUFFIX = {"csv": ".csv", "json": ".json", "h5": ".h5", "pt": ".pt", "parquet": ".parquet", "video": ".mp4"}


def bad_file(folder: Path, slot: str, kind: str, good: dict[str, Path]) -> Path:
    path = folder / f"bad_{slot}{SUFFIX[slot]}"
    if kind == "missing":
        return folder / f"missing_{slot}{SUFFIX[slot]}"
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":  # cut short, as by a full disk or an interrupted copy
        if slot in TEXT:
            path.write_text(TEXT[slot])
        else:
            data = good[slot].read_bytes()
            path.write_bytes(data[: len(data) // 3])
    else:  # a file of another kind under the expected name
        path.write_bytes(np.random.default_rng(0).bytes(3000) if slot in TEXT else b"hello, I am a text file\n")
    return path


def bad_root(folder: Path, kind: str, good: dict[str, Path]) -> Path:
    """A dataset folder: missing, empty, with a truncated pose file, or a file where the folder should be."""
    root = folder / "dataset"
    if kind == "missing":
        return root
    if kind == "foreign":
        root.write_text("not a folder\n")
        return root
    root.mkdir()
    if kind == "truncated":
        for split in ("train", "test"):
            pose = root / "pose" / split / "01_001_alphapose_tracked_person.json"
            pose.parent.mkdir(parents=True)
            pose.write_text(TEXT["json"])
        (root / "gt" / "test_frame_mask").mkdir(parents=True)
        np.save(root / "gt" / "test_frame_mask" / "01_001.npy", np.zeros(50, np.uint8))
    return root


def bad_models(folder: Path, kind: str, good: dict[str, Path]) -> Path:
    models = folder / "models"
    if kind == "missing":
        return models
    models.mkdir()
    if kind != "empty":
        bad_file(models, "pt", kind, good).rename(models / "flow.pt")
    return models


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    return good_files(tmp_path_factory.mktemp("good"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_bad_input_file_is_one_error_line(verb, kind, good, tmp_path, capsys):
    out = tmp_path / "out"
    slots = {slot: str(bad_file(tmp_path / "in", slot, kind, good)) for slot in SUFFIX}
    slots["root"] = str(bad_root(tmp_path, kind, good))
    slots["models"] = str(bad_models(tmp_path, kind, good))
    slots["out"] = str(out)
    args = [a.replace("{", "<<").replace("}", ">>") for a in VERBS[verb]]  # JSON braces stay as they are
    for name, value in slots.items():
        args = [a.replace(f"<<{name}>>", value) for a in args]
    args = [a.replace("<<", "{").replace(">>", "}") for a in args]
    rc = main(["--threads", "1", verb, *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 1 and len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert written == [], f"written on error: {written}"
