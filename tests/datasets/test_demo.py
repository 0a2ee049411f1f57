"""The synthetic demo dataset: layout, lengths, determinism, anomaly schedule, atomicity."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mgenet.datasets import demo, demo_plan
from mgenet.datasets import demo_render as R
from mgenet.datasets.demo import generate_demo
from mgenet.datasets.demo_plan import SUBTYPES, DemoConfig, plan_dataset, plan_schedule
from mgenet.io import ALPHAPOSE_SUFFIX, read_alphapose, read_anomaly_boxes

TINY = DemoConfig(seed=3, n_scenes=3, train_videos_per_scene=1, test_videos_per_scene=2, val_videos_per_scene=1,
                  frames=72, width=160, height=120)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "ds"
    generate_demo(root, TINY)
    return root


def _decode(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def _files(root: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob(pattern))}


# ----------------------------------------------------------------------------------------------------- config


def test_from_dict_rejects_unknown_keys_by_name() -> None:
    with pytest.raises(ValueError, match="n_scene"):
        DemoConfig.from_dict({"seed": 1, "n_scene": 3})
    assert DemoConfig.from_dict({"seed": 5, "frames": 96}) == DemoConfig(seed=5, frames=96)


@pytest.mark.parametrize("bad", [{"people_min": 5, "people_max": 3}, {"frames": 10}, {"width": 8}, {"seed": 1.5}])
def test_invalid_values_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        DemoConfig.from_dict(bad)


# ----------------------------------------------------------------------------------------------------- layout


def test_layout_names_and_tables(tiny: Path) -> None:
    scenes = pd.read_csv(tiny / "scenes.csv", dtype=str)
    assert list(scenes.columns) == ["video", "split", "scene"]
    assert len(scenes) == TINY.n_scenes * (TINY.train_videos_per_scene + TINY.test_videos_per_scene
                                           + TINY.val_videos_per_scene)
    assert (scenes["split"] == "val").sum() == TINY.n_scenes * TINY.val_videos_per_scene
    for r in scenes.itertuples():
        name = {"train": r"\d\d_\d{3}", "test": r"\d\d_\d{4}", "val": r"\d\d_v\d{3}"}[r.split]
        assert re.fullmatch(name, r.video)
        assert r.video.startswith(r.scene + "_")
        assert (tiny / "videos" / r.split / f"{r.video}.mp4").exists()
        assert (tiny / "pose" / r.split / f"{r.video}{ALPHAPOSE_SUFFIX}").exists()
        assert (tiny / "gt" / "joints" / f"{r.video}.npz").exists()
        assert (tiny / "gt" / "test_frame_mask" / f"{r.video}.npy").exists() == (r.split != "train")
    meta = json.loads((tiny / "dataset.json").read_text())
    assert meta["generator"] == demo.GENERATOR and meta["version"] == demo.GENERATOR_VERSION
    assert meta["config"] == dataclasses.asdict(TINY)
    assert meta["exercise_normal_scene"] == f"{TINY.n_scenes:02d}"
    assert not list(tiny.parent.glob(".ds.*")), "temporary directories left behind"


def test_video_lengths_match_ground_truth(tiny: Path) -> None:
    scenes = pd.read_csv(tiny / "scenes.csv", dtype=str)
    for r in scenes.itertuples():
        path = tiny / "videos" / r.split / f"{r.video}.mp4"
        frames = _decode(path)
        assert len(frames) == TINY.frames
        assert frames[0].shape == (TINY.height, TINY.width, 3)
        cap = cv2.VideoCapture(str(path))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == TINY.frames
        cap.release()
        if r.split != "train":
            gt = np.load(tiny / "gt" / "test_frame_mask" / f"{r.video}.npy")
            assert gt.dtype == np.uint8 and gt.shape == (TINY.frames,) and set(np.unique(gt)) <= {0, 1}


def test_pose_json_is_noisy_ground_truth(tiny: Path) -> None:
    scenes = pd.read_csv(tiny / "scenes.csv", dtype=str)
    errors, n_missing, n_dets = [], 0, 0
    for r in scenes.itertuples():
        poses = read_alphapose(tiny / "pose" / r.split / f"{r.video}{ALPHAPOSE_SUFFIX}")
        gt = np.load(tiny / "gt" / "joints" / f"{r.video}.npz")
        ids, joints = gt["person_ids"], gt["joints"]
        assert joints.dtype == np.float32 and joints.shape == (len(ids), TINY.frames, 17, 2)
        assert set(poses) <= set(ids.tolist())
        for i, pid in enumerate(ids.tolist()):
            present = ~np.isnan(joints[i, :, 0, 0])
            assert np.isnan(joints[i, ~present]).all() and not np.isnan(joints[i, present]).any()
            frames = poses.get(pid, {})
            assert set(frames) <= set(np.flatnonzero(present).tolist())
            missing = np.array([f not in frames for f in np.flatnonzero(present)])
            assert not (missing[1:] & missing[:-1]).any(), "a missed detection lasts a single frame"
            n_missing, n_dets = n_missing + missing.sum(), n_dets + present.sum()
            for f, kp in frames.items():
                assert kp.shape == (17, 3)
                assert (kp[:, 0] >= 0).all() and (kp[:, 0] <= TINY.width - 1).all()
                assert (kp[:, 1] >= 0).all() and (kp[:, 1] <= TINY.height - 1).all()
                assert ((kp[:, 2] > 0) & (kp[:, 2] < 1)).all()
                good = kp[:, 2] >= 0.5
                errors.extend(np.linalg.norm(kp[good, :2] - joints[i, f][good], axis=1))
    assert 0 < n_missing / n_dets < 0.06
    assert 0.2 < np.median(errors) < 3.0  # pixels: about 1.5 % of a 30-45 px tall person, times sqrt(2)


def test_anomalies_table_matches_masks(tiny: Path) -> None:
    iv = pd.read_csv(tiny / "anomalies.csv", dtype={"video": str, "type": str, "subtype": str})
    assert list(iv.columns) == ["video", "start", "end", "type", "subtype", "person_id"]
    assert (iv["type"] == iv["subtype"].map(SUBTYPES)).all()
    assert len(iv) > 0
    for video in pd.read_csv(tiny / "scenes.csv", dtype=str).query("split == 'test'")["video"]:
        gt = np.load(tiny / "gt" / "test_frame_mask" / f"{video}.npy")
        union = np.zeros_like(gt)
        poses = read_alphapose(tiny / "pose" / "test" / f"{video}{ALPHAPOSE_SUFFIX}")
        for r in iv[iv["video"] == video].itertuples():
            assert 0 <= r.start <= r.end < TINY.frames
            union[r.start:r.end + 1] = 1
            seen = [f for f in poses[r.person_id] if r.start <= f <= r.end]  # the actor is in view throughout
            assert len(seen) >= 0.9 * (r.end - r.start + 1)
        np.testing.assert_array_equal(union, gt)
    assert not iv["video"].str.fullmatch(r"\d\d_\d{3}").any(), "anomalies only in test videos"


def test_anomaly_boxes_cover_each_anomalous_person_in_its_event(tiny: Path) -> None:
    boxes = read_anomaly_boxes(tiny / "gt" / "anomaly_boxes.csv")
    iv = pd.read_csv(tiny / "anomalies.csv", dtype={"video": str})
    # one track per anomalous person, boxes only inside its event, inside the frame
    assert set(zip(boxes["video"], boxes["track"].astype(int))) == set(zip(iv["video"], iv["person_id"]))
    for r in iv.itertuples():
        own = boxes[(boxes["video"] == r.video) & (boxes["track"] == str(r.person_id))]
        assert own["frame"].between(r.start, r.end).all()
        assert len(own) >= 0.9 * (r.end - r.start + 1)  # in view throughout (as the pose test above finds)
        joints = np.load(tiny / "gt" / "joints" / f"{r.video}.npz")
        xy = joints["joints"][list(joints["person_ids"]).index(r.person_id)]  # (frames, 17, 2)
        for b in own.itertuples():
            j = xy[b.frame][~np.isnan(xy[b.frame]).any(axis=1)]
            inside = ((j[:, 0] >= b.x1 - 1) & (j[:, 0] <= b.x2) & (j[:, 1] >= b.y1 - 1) & (j[:, 1] <= b.y2)) | \
                     (j[:, 0] < 0) | (j[:, 0] >= TINY.width) | (j[:, 1] < 0) | (j[:, 1] >= TINY.height)
            assert inside.all(), (r.video, r.person_id, b.frame)  # the drawn body holds its joints
    assert (boxes[["x1", "y1"]] >= 0).all().all()
    assert (boxes["x2"] <= TINY.width).all() and (boxes["y2"] <= TINY.height).all()


def test_exercise_is_normal_in_the_last_scene_only() -> None:
    plan = plan_dataset(TINY)
    last = TINY.n_scenes - 1
    jacks = {(v.scene, v.split) for v in plan.videos for a in v.actors
             if (a.track.action[a.track.present] == R.JACKS).any() and not any(a in e.actors for e in v.events)}
    assert (last, "train") in jacks
    assert all(s == last for s, _ in jacks)
    assert all(v.scene != last for v in plan.videos for e in v.events if e.subtype == "exercise")


def test_person_crops_show_the_same_pavement_in_every_scene() -> None:
    """Scenes differ above the horizon only: every widened person crop lies below it, on the shared pavement."""
    from mgenet.features.crops import widen_boxes

    plan = plan_dataset(TINY)
    W, H = TINY.width, TINY.height
    for v in plan.videos:
        for a in v.actors:
            p = a.track.points[a.track.present][:, :17]
            boxes = widen_boxes(np.concatenate([p.min(1), p.max(1)], 1), W, H)
            assert boxes[:, 1].min() >= R.HORIZON * H, f"{v.name} person {a.pid}: crop reaches the far side"
    verge_end = int(R.HORIZON * H) + int(0.04 * H) + 2
    below = [s.background[verge_end:].reshape(-1, 3).mean(0) for s in plan.scenes]
    above = [s.background[:int(R.HORIZON * H)].reshape(-1, 3).mean(0) for s in plan.scenes]
    for i in range(1, TINY.n_scenes):
        assert np.abs(below[i] - below[0]).max() < 6, "the pavement differs between scenes"
        assert np.abs(above[i] - above[0]).max() > 20, "the scenes' far sides look alike"


# --------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_differs(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_demo(again, TINY, workers=2)  # videos rendered in two processes: the same files as one
    for pattern in ("*.json", "*.npy", "*.npz", "*.csv"):
        assert _files(tiny, pattern) == _files(again, pattern), pattern
    video = next(iter(sorted((tiny / "videos" / "test").glob("*.mp4")))).relative_to(tiny)
    for a, b in zip(_decode(tiny / video), _decode(again / video), strict=True):
        np.testing.assert_array_equal(a, b)

    other = tmp_path / "other"
    generate_demo(other, dataclasses.replace(TINY, seed=TINY.seed + 1))
    pose = f"pose/train/01_001{ALPHAPOSE_SUFFIX}"
    assert (other / pose).read_bytes() != (tiny / pose).read_bytes()


# --------------------------------------------------------------------------------------------- the schedule


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_default_schedule_has_every_subtype_twice(seed: int) -> None:
    cfg = DemoConfig(seed=seed)
    schedule = plan_schedule(cfg)
    counts = Counter(s for subs in schedule.values() for s in subs)
    assert set(counts) == set(SUBTYPES) and min(counts.values()) >= 2
    assert set(Counter(SUBTYPES[s] for s in counts)) == {"motion", "appearance", "scene"}
    assert any(not subs for subs in schedule.values()), "some test videos stay fully normal"
    assert all(len(subs) <= 2 for subs in schedule.values())
    last = f"{cfg.n_scenes:02d}_"
    assert not any("exercise" in subs for v, subs in schedule.items() if v.startswith(last))


@pytest.mark.parametrize("seed", [0, 1])
def test_default_validation_schedule_has_every_subtype_and_its_own_draws(seed: int) -> None:
    cfg = DemoConfig(seed=seed)
    val = plan_schedule(cfg, "val")
    assert len(val) == cfg.n_scenes * cfg.val_videos_per_scene and all("_v" in v for v in val)
    counts = Counter(s for subs in val.values() for s in subs)
    assert set(counts) == set(SUBTYPES), "every anomaly type is in the validation split"
    assert not any("exercise" in subs for v, subs in val.items() if v.startswith(f"{cfg.n_scenes:02d}_"))
    # the validation videos are drawn apart from the test videos, and adding them changes no test video
    without = dataclasses.replace(cfg, val_videos_per_scene=0)
    assert plan_schedule(without) == plan_schedule(cfg)
    tests = {v.name: v for v in plan_dataset(cfg).videos}
    for v in plan_dataset(without).videos:
        assert [(e.start, e.end, e.subtype) for e in v.events] == \
            [(e.start, e.end, e.subtype) for e in tests[v.name].events]
        assert np.array_equal(v.actors[0].track.points, tests[v.name].actors[0].track.points)
    vals = [v for v in tests.values() if v.split == "val"]
    assert {v.name for v in vals} == set(val) and all(v.events or not val[v.name] for v in vals)


def test_default_plan_realises_the_schedule() -> None:
    cfg = DemoConfig()
    plan = plan_dataset(cfg)
    schedule = {**plan_schedule(cfg), **plan_schedule(cfg, "val")}
    for v in plan.videos:
        assert [e.subtype for e in v.events] == schedule.get(v.name, [])
        count = sum(a.track.present.astype(int) for a in v.actors)
        assert count.max() <= cfg.people_max
        spans = sorted((e.start, e.end) for e in v.events)
        for (s, e), (s2, _) in zip(spans, spans[1:]):
            assert e < s2, f"{v.name}: events overlap"
        for e in v.events:
            assert demo_plan.EVENT_MIN <= e.end - e.start + 1 <= demo_plan.EVENT_MAX, (v.name, e.subtype, e.start, e.end)
            assert len(e.actors) == (2 if e.subtype == "fighting" else 1)
            for a in e.actors:
                assert a.track.present[e.start:e.end + 1].all()


# --------------------------------------------------------------------------------------------- atomicity


def test_failure_leaves_no_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "write_alphapose", boom)
    root = tmp_path / "ds"
    for workers in (1, 2):  # a worker process's error reaches the caller the same way
        with pytest.raises(RuntimeError, match="disk full"):
            generate_demo(root, dataclasses.replace(TINY, n_scenes=1, test_videos_per_scene=1, frames=48),
                          workers=workers)
        assert list(tmp_path.iterdir()) == []


def test_existing_root_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "stale.txt").write_text("old")
    generate_demo(root, dataclasses.replace(TINY, n_scenes=1, test_videos_per_scene=1, frames=48))
    assert not (root / "stale.txt").exists() and (root / "dataset.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
