"""What `mgenet score-video` writes for a user to read and watch (persons, events, overlay video, page), and that it
all works from an imported STG-NF checkpoint alone."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import REPO, official_stgnf_state, save_official_stgnf

from mgenet.apps.video_outputs import (
    EVENT_COLUMNS,
    PERSON_COLUMNS,
    VideoSink,
    find_events,
    person_table,
    self_threshold,
    write_overlay,
)
from mgenet.cli import main
from mgenet.datasets.demo import generate_demo
from mgenet.datasets.demo_plan import DemoConfig
from mgenet.io import read_alphapose

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEMO = DemoConfig(seed=3, n_scenes=1, train_videos_per_scene=1, test_videos_per_scene=1, val_videos_per_scene=0,
                  frames=48, width=160, height=120)


def _pose(x: float) -> np.ndarray:
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = x + np.linspace(0, 10, 17)
    kp[:, 1] = np.linspace(20, 80, 17)
    kp[:, 2] = 0.9
    return kp


def test_person_table_gives_each_frame_the_window_centred_there() -> None:
    poses = {3: {f: _pose(10 + f) for f in (0, 1, 2, 4, 5)}, 5: {f: _pose(60) for f in range(2, 4)}}
    seg = pd.DataFrame({"person_id": [3, 3], "start_frame": [0, 1], "mid_frame": [2, 3], "nf": [0.5, 0.7],
                        "fused": [0.1, 0.9]})
    df = person_table(poses, seg)
    assert list(df.columns) == PERSON_COLUMNS and len(df) == 8
    row = df[(df["track"] == 3) & (df["frame"] == 2)].iloc[0]
    assert row["fused"] == 0.1 and row["window_start"] == 0 and row["nf"] == 0.5
    assert (row["x1"], row["y1"], row["x2"], row["y2"]) == (12, 20, 22, 80)
    # frame 3: person 3 missed there, but a window centres on it: scored, with the nearest frame's box
    gap = df[(df["track"] == 3) & (df["frame"] == 3)].iloc[0]
    assert gap["fused"] == 0.9 and gap["window_start"] == 1 and gap["x1"] in (12, 14)
    assert df[df["track"] == 5]["fused"].isna().all()  # no window of that person lands there
    assert df[(df["track"] == 3) & df["frame"].isin([0, 1, 4, 5])]["fused"].isna().all()
    assert df[["mo", "app", "mm"]].isna().all().all()  # components that did not run


def test_events_are_runs_above_the_threshold_with_the_person_at_the_peak() -> None:
    curve = np.array([0, 0.2, 0.6, 0.9, 0.7, 0.1, 0, 0.8, 0.3])
    persons = pd.DataFrame({"track": [1, 2, 1], "frame": [3, 3, 7], "x1": [0, 5, 0], "y1": [0, 5, 0],
                            "x2": [9, 15, 9], "y2": [9, 15, 9], "fused": [0.4, 0.95, 0.8]})
    ev = find_events(curve, 0.5, persons, fps=10.0)
    assert list(ev.columns) == EVENT_COLUMNS
    assert ev["event"].tolist() == [0, 0, 1]
    first = ev.iloc[0]
    assert (first["start"], first["end"], first["peak_frame"], first["track"]) == (2, 4, 3, 2)  # the higher first
    assert first["start_s"] == 0.2 and first["end_s"] == 0.5 and first["peak_score"] == 0.9
    assert ev.iloc[2]["start"] == ev.iloc[2]["end"] == 7 and ev.iloc[2]["track"] == 1
    assert len(find_events(curve, 0.95, persons, 10.0)) == 0
    no_person = find_events(curve, 0.5, persons[:0], 10.0)
    assert len(no_person) == 2 and no_person["track"].isna().all()


def test_without_a_reference_the_threshold_is_the_videos_own_outliers() -> None:
    rng = np.random.default_rng(0)
    curve = rng.normal(0.3, 0.01, 500)
    curve[200:210] = 0.9
    t = self_threshold(curve)
    assert 0.31 < t.value < 0.4 and "median + 3" in t.rule
    assert self_threshold(np.full(10, 0.5)).value == np.inf


def test_overlay_has_the_inputs_frames_and_fps_in_a_codec_browsers_play(tmp_path: Path) -> None:
    frames = [np.full((50, 70, 3), 30 * i % 255, np.uint8) for i in range(9)]
    poses = {4: {f: _pose(5 + f) for f in range(9)}}
    seg = pd.DataFrame({"person_id": [4], "start_frame": [2], "mid_frame": [4], "nf": [1.0], "fused": [1.0]})
    persons = person_table(poses, seg)
    curve = np.linspace(0, 1, 9)
    events = find_events(curve, 0.6, persons, 12.5)
    path, codec, written = write_overlay(iter(enumerate(frames)), tmp_path / "overlay", 12.5, 70, 50, 9, poses,
                                         persons, curve, curve, 0.6, events)
    assert path == tmp_path / "overlay.mp4" and codec.startswith("H.264") and written == 9
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.mp4"]  # no temporary file left
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        h, w = frame.shape[:2]
    assert n == 9 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5)
    assert w == 70 and h >= 50 + 64 and h % 2 == 0  # the frame, then the score strip under it


def test_overlay_falls_back_to_webm_without_pyav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_av(name, *a, **k):
        if name == "av":
            raise ImportError("no PyAV here")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_av)
    sink = VideoSink(tmp_path / "overlay", 25.0, 64, 48)
    for i in range(5):
        sink.write(np.full((48, 64, 3), 40 * i, np.uint8))
    sink.close(ok=True)
    assert sink.path.suffix == ".webm" and sink.codec.startswith("VP")
    cap = cv2.VideoCapture(str(sink.path))
    assert sum(1 for _ in iter(lambda: cap.read()[0], False)) == 5


@pytest.fixture(scope="module")
def checkpoint_only(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A demo video scored with nothing but a checkpoint of the official STG-NF code, imported as a user would."""
    root = tmp_path_factory.mktemp("ck")
    generate_demo(root / "demo", DEMO)
    video = min((root / "demo").rglob("test/*.mp4"))
    pose = next((root / "demo").rglob(f"{video.stem}_alphapose_tracked_person.json"))
    save_official_stgnf(root / "stgnf.tar", official_stgnf_state(K=2, T=8))
    assert main(["import-stgnf", str(root / "stgnf.tar"), "--out", str(root / "models" / "flow.pt")]) == 0
    out = root / "out"
    assert main(["--threads", "1", "score-video", str(video), "--models", str(root / "models"), "--pose", str(pose),
                 "--out", str(out)]) == 0
    return {"root": root, "video": video, "pose": pose, "out": out}


def test_an_imported_stgnf_checkpoint_is_enough(checkpoint_only: dict) -> None:
    out, video = checkpoint_only["out"], checkpoint_only["video"]
    assert sorted(p.name for p in out.iterdir()) == ["events.csv", "frames.csv", "index.html", "overlay.mp4",
                                                     "persons.csv", "provenance.json", "scores.png"]
    frames, persons = pd.read_csv(out / "frames.csv"), pd.read_csv(out / "persons.csv")
    n = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert len(frames) == n and persons["fused"].notna().any()
    assert len(persons) >= sum(len(t) for t in read_alphapose(checkpoint_only["pose"]).values())
    prov = json.loads((out / "provenance.json").read_text())
    assert "median + 3" in prov["events"]["threshold_rule"]  # no reference: the rule is stated
    assert prov["overlay"]["codec"].startswith("H.264") and prov["overlay"]["frames"] == n
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS))
    page = (out / "index.html").read_text()
    assert 'src="overlay.mp4"' in page and "<svg" in page and 'id="events"' in page and "currentTime" in page
    # nothing but its sibling video: no other file, no network
    assert "http" not in page.replace("http://www.w3.org", "") and page.count("src=") == 1


def test_threshold_and_no_video_options(checkpoint_only: dict, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mgenet"):
        assert main(["--threads", "1", "score-video", str(checkpoint_only["video"]), "--models",
                     str(checkpoint_only["root"] / "models"), "--pose", str(checkpoint_only["pose"]), "--out",
                     str(tmp_path), "--no-video", "--threshold", "-1"]) == 0
    assert not list(tmp_path.glob("overlay.*")) and "No overlay video" in (tmp_path / "index.html").read_text()
    events = pd.read_csv(tmp_path / "events.csv")
    assert events["start"].min() == 0 and events["end"].max() == len(pd.read_csv(tmp_path / "frames.csv")) - 1
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["events"]["threshold"] == -1 and prov["events"]["threshold_rule"] == "given with --threshold"
    assert "frames/s per stage" in caplog.text and "event threshold -1" in caplog.text


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on PATH (apt-get install chromium)")
def test_page_renders_in_headless_chromium(checkpoint_only: dict, tmp_path: Path) -> None:
    """The page shows the video, the curve and the event table: a screenshot that is neither blank nor white."""
    out = tmp_path / "page"
    shutil.copytree(checkpoint_only["out"], out)
    # an event to list: every frame above the threshold
    assert main(["--threads", "1", "score-video", str(checkpoint_only["video"]), "--models",
                 str(checkpoint_only["root"] / "models"), "--pose", str(checkpoint_only["pose"]), "--out", str(out),
                 "--threshold", "-1"]) == 0
    png = tmp_path / "page.png"
    subprocess.run([str(REPO / "scripts" / "screenshot_report.sh"), str(out / "index.html"), str(png), "1000",
                    "1000"], check=True, capture_output=True, timeout=180)
    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (1000, 1000)
    dark = (img.max(axis=2) < 60).mean()  # the video's frame and the black bar under it
    assert dark > 0.02 and (img.min(axis=2) > 240).mean() > 0.2  # ... on a white page with the curve and table
