"""The synthetic demo dataset (DESIGN §5): rendered people in a few scenes, in the ShanghaiTech / STG-NF layout.

::

    root/videos/{train,val,test}/{video}.mp4
    root/pose/{train,val,test}/{video}_alphapose_tracked_person.json    ground-truth joints + detector-like noise
    root/gt/test_frame_mask/{video}.npy     uint8 per frame, 1 = anomalous (validation and test videos)
    root/gt/joints/{video}.npz              noise-free joints: person_ids (P,), joints (P, frames, 17, 2), NaN = absent
    root/gt/anomaly_boxes.csv               video,track,frame,x1,y1,x2,y2: each anomalous person's drawn box in each
                                            frame of its event (track = person id; RBDC / TBDC)
    root/anomalies.csv                      video,start,end,type,subtype,person_id (end inclusive, one row per person)
    root/scenes.csv                         video,split,scene
    root/weak_split.csv                     video,split,label: the weakly supervised split (AR-Net, issue 18)
    root/dataset.json                       generator, version, config

Scenes (park, plaza, street) differ on their far side only, above the pavement where people walk, which is the same in
all of them (``demo_render.make_scene``): person crops look alike everywhere and the whole frame tells scenes apart.
Normal: walking and standing; in the LAST scene also jumping jacks ("exercise"), common in its training and test videos.
Anomalies (validation and test videos only, one to two people, 40-90 frames): motion (running, jumping, falling, fighting), appearance
(carrying a big box, riding a scooter; normal gait, so nearly invisible in the pose) and scene (jumping jacks in any
scene but the last). The validation split (``val``, names ``{scene}_v{k}``) is drawn like the test split from its own
random streams, so it shares no video, person or anomaly with it: settings are chosen on it, and the test split is
only read for the final figures. Everything follows from ``DemoConfig.seed``: the same seed gives byte-identical JSON, npy and csv
files and identical decoded video frames.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import multiprocessing
import os
import shutil
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mgenet import MgenetError, __version__
from mgenet.datasets import demo_render as R
from mgenet.datasets.demo_plan import (
    JITTER,
    MISSED_FRAME,
    MISSED_JOINT,
    SUBTYPES,
    Actor,
    DemoConfig,
    DemoPlan,
    VideoPlan,
    plan_dataset,
    scene_id,
)
from mgenet.io import (
    ALPHAPOSE_SUFFIX,
    ANOMALY_BOX_COLUMNS,
    INTERVAL_COLUMNS,
    PoseDict,
    write_alphapose,
    write_anomaly_boxes,
)

GENERATOR = "mgenet.datasets.demo"
GENERATOR_VERSION = "4"



# ------------------------------------------------------------------------------------------------------- writing


def noisy_poses(plan: VideoPlan, cfg: DemoConfig, rng: np.random.Generator) -> PoseDict:
    """What a good tracked pose estimator would report: jitter, per-joint scores, missed joints and frames."""
    poses: PoseDict = {}
    for a in plan.actors:
        frames = np.flatnonzero(a.track.present)
        drop = rng.random(len(frames)) < MISSED_FRAME
        for i in range(1, len(drop)):  # a missed detection lasts one frame
            drop[i] &= not drop[i - 1]
        h = a.track.height[frames][:, None, None]
        xy = a.track.points[frames, :17].astype(np.float64) + rng.normal(0, 1, (len(frames), 17, 2)) * JITTER * h
        score = rng.uniform(0.5, 0.95, (len(frames), 17))
        missed = rng.random((len(frames), 17)) < MISSED_JOINT
        xy += missed[..., None] * rng.normal(0, 1, xy.shape) * 0.08 * h
        score = np.where(missed, rng.uniform(0.01, 0.1, score.shape), score)
        outside = (xy[..., 0] < 0) | (xy[..., 0] > cfg.width - 1) | (xy[..., 1] < 0) | (xy[..., 1] > cfg.height - 1)
        score = np.where(outside, np.minimum(score, rng.uniform(0.05, 0.3, score.shape)), score)
        xy[..., 0] = np.clip(xy[..., 0], 0, cfg.width - 1)
        xy[..., 1] = np.clip(xy[..., 1], 0, cfg.height - 1)
        kp = np.concatenate([xy, score[..., None]], -1).astype(np.float32)
        poses[a.pid] = {int(f): kp[i] for i, f in enumerate(frames) if not drop[i]}
    return poses


def frame_mask(plan: VideoPlan, n: int) -> np.ndarray:
    mask = np.zeros(n, np.uint8)
    for e in plan.events:
        mask[e.start:e.end + 1] = 1
    return mask


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible: fixed member timestamps."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def _render_video(path: Path, plan: VideoPlan, scene: R.Scene, cfg: DemoConfig) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), cfg.fps, (cfg.width, cfg.height))
    if not writer.isOpened():
        raise MgenetError(f"{path}: OpenCV cannot write mp4v video here (opencv-python-headless without FFmpeg?).")
    try:
        for t in range(cfg.frames):
            img = scene.background.copy()
            here = sorted((a for a in plan.actors if a.track.present[t]), key=lambda a: a.track.feet[t, 1])
            for a in here:  # far (higher up) people first
                tr = a.track
                R.draw_person(img, tr.points[t], tr.depth[t], tr.feet[t], float(tr.height[t]), float(tr.heading[t]),
                              a.style, int(tr.action[t]), scene.shadow)
            writer.write(img)
    finally:
        writer.release()


def _write_video_files(root: Path, plan: VideoPlan, scene: R.Scene, cfg: DemoConfig, index: int) -> None:
    n = cfg.frames
    _render_video(root / "videos" / plan.split / f"{plan.name}.mp4", plan, scene, cfg)
    rng = np.random.default_rng([cfg.seed, 2, index])
    write_alphapose(noisy_poses(plan, cfg, rng), root / "pose" / plan.split / f"{plan.name}{ALPHAPOSE_SUFFIX}")
    joints = np.full((len(plan.actors), n, 17, 2), np.nan, np.float32)
    for i, a in enumerate(plan.actors):
        joints[i, a.track.present] = a.track.points[a.track.present, :17]
    _save_npz(root / "gt" / "joints" / f"{plan.name}.npz",
              person_ids=np.array([a.pid for a in plan.actors], np.int32), joints=joints)
    if plan.split != "train":
        np.save(root / "gt" / "test_frame_mask" / f"{plan.name}.npy", frame_mask(plan, n))


def drawn_box(a: Actor, t: int, cfg: DemoConfig) -> tuple[int, int, int, int] | None:
    """The pixels ``a`` covers in frame ``t`` as ``_render_video`` draws it (its box or scooter included, its shadow
    left out), as a box (x1, y1, x2, y2) with exclusive x2, y2; None when none of it is in the frame.

    The person is drawn alone on a black and on a white canvas, with the shadow in the canvas colour: a pixel belongs
    to the person when it differs from the canvas in either (a body colour can equal one canvas, not both).
    """
    tr = a.track
    covered = np.zeros((cfg.height, cfg.width), bool)
    for value in (0, 255):
        img = np.full((cfg.height, cfg.width, 3), value, np.uint8)
        R.draw_person(img, tr.points[t], tr.depth[t], tr.feet[t], float(tr.height[t]), float(tr.heading[t]), a.style,
                      int(tr.action[t]), (value, value, value))
        covered |= (img != value).any(axis=2)
    if not covered.any():
        return None
    ys, xs = np.nonzero(covered)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def anomaly_boxes(plan: DemoPlan) -> pd.DataFrame:
    """Every anomalous person's drawn box in every frame of its event where it is in view (``ANOMALY_BOX_COLUMNS``;
    track = person id), sorted by video, track, frame."""
    rows = []
    for v in plan.videos:
        for e in v.events:
            for a in e.actors:
                for t in range(e.start, e.end + 1):
                    if a.track.present[t]:
                        box = drawn_box(a, t, plan.cfg)
                        if box is not None:
                            rows.append((v.name, str(a.pid), t, *box))
    rows.sort(key=lambda r: (r[0], int(r[1]), r[2]))
    return pd.DataFrame(rows, columns=ANOMALY_BOX_COLUMNS)


def weak_split(plan: DemoPlan) -> pd.DataFrame:
    """The weakly supervised split (video, split, label), as Zhong et al. re-split ShanghaiTech: training = every
    normal training video (label 0) plus about half of the anomalous test videos of each anomaly type (label 1,
    ``n // 2`` of the type's ``n``, drawn with the seed); testing = the other test videos, normal ones included.

    A video with two types counts under its rarer one (fewest anomalous test videos, then name), so that every type
    with two or more videos has some in each part. A tiny demo with one anomalous video per type trains on one of
    them.
    """
    tests = [v for v in plan.videos if v.split == "test"]
    count: dict[str, int] = {}
    for v in tests:
        for t in {e.type for e in v.events}:
            count[t] = count.get(t, 0) + 1
    by_type: dict[str, list[str]] = {}
    for v in tests:
        if v.events:
            t = min({e.type for e in v.events}, key=lambda t: (count[t], t))
            by_type.setdefault(t, []).append(v.name)
    rng = np.random.default_rng([plan.cfg.seed, 4])
    weak_train = set()
    for t in sorted(by_type):
        names = sorted(by_type[t])
        weak_train |= {names[i] for i in rng.permutation(len(names))[:len(names) // 2]}
    anomalous = sorted(v.name for v in tests if v.events)
    if not weak_train and len(anomalous) >= 2:  # a tiny demo, one video per type: still one to learn from
        weak_train.add(anomalous[int(rng.integers(len(anomalous)))])
    rows = [(v.name, "train", 0) for v in plan.videos if v.split == "train"]
    rows += [(v.name, "train" if v.name in weak_train else "test", int(bool(v.events))) for v in tests]
    return pd.DataFrame(sorted(rows, key=lambda r: (r[1] != "train", r[0])), columns=["video", "split", "label"])


def _write_tables(root: Path, plan: DemoPlan) -> None:
    rows = [(v.name, e.start, e.end, e.type, e.subtype, a.pid)
            for v in plan.videos for e in v.events for a in e.actors]
    rows.sort(key=lambda r: (r[0], r[1], r[5]))
    pd.DataFrame(rows, columns=[*INTERVAL_COLUMNS, "person_id"]).to_csv(root / "anomalies.csv", index=False)
    pd.DataFrame([(v.name, v.split, scene_id(v.scene)) for v in plan.videos],
                 columns=["video", "split", "scene"]).to_csv(root / "scenes.csv", index=False)
    weak_split(plan).to_csv(root / "weak_split.csv", index=False)
    meta = {"generator": GENERATOR, "version": GENERATOR_VERSION, "mgenet_version": __version__,
            "config": dataclasses.asdict(plan.cfg), "exercise_normal_scene": scene_id(plan.cfg.n_scenes - 1),
            "subtypes": SUBTYPES}
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_anomaly_boxes(anomaly_boxes(plan), root / "gt" / "anomaly_boxes.csv")


def generate_demo(root: str | Path, cfg: DemoConfig, workers: int = 1) -> None:
    """Generate the demo dataset into ``root`` (replacing it), building it beside it and renaming at the end.

    ``workers`` processes render the videos side by side; every video draws from its own random streams, so the files
    are the same for any number of them.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for sub in ("videos/train", "videos/test", "videos/val", "pose/train", "pose/test", "pose/val",
                    "gt/test_frame_mask", "gt/joints"):
            (tmp / sub).mkdir(parents=True)
        plan = plan_dataset(cfg)
        jobs = [(tmp, video, plan.scenes[video.scene], cfg, i) for i, video in enumerate(plan.videos)]
        if workers > 1 and len(jobs) > 1:
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx)
            try:
                for f in [pool.submit(_write_video_files, *job) for job in jobs]:
                    f.result()  # re-raises a worker's error here
            finally:
                pool.shutdown(cancel_futures=True)  # after an error, videos not yet started are not rendered
        else:
            for job in jobs:
                _write_video_files(*job)
        _write_tables(tmp, plan)
        if root.exists():
            old = root.with_name(f".{root.name}.old{os.getpid()}")
            root.rename(old)
            tmp.rename(root)
            shutil.rmtree(old)
        else:
            tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_demo_job(out: str | Path, params: dict, workers: int = 1) -> None:
    """`mgenet make-demo`: the demo dataset of the config section ``params`` (plus the workflow's
    ``generator_version``) written to ``out`` by ``workers`` processes.

    Raises:
        MgenetError: the workflow expects another generator version than the installed package's (the two come from
            different checkouts), or a setting is unknown or out of range.
    """
    p = dict(params)
    wanted = str(p.pop("generator_version", GENERATOR_VERSION))
    if wanted != GENERATOR_VERSION:
        raise MgenetError(f"the workflow asks for demo generator version {wanted} but the installed mgenet has version "
                          f"{GENERATOR_VERSION}: the workflow and the package come from different checkouts; "
                          f"reinstall the package from this one (pip install -e .).")
    t0 = time.time()
    generate_demo(out, DemoConfig.from_dict(p), workers=workers)
    logging.getLogger("mgenet").info("demo dataset written to %s in %.1f s (%d process(es))", out, time.time() - t0,
                                     workers)
