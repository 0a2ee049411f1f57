"""Turn a generated demo dataset into a small dataset in UBnormal's layout, with object annotations, for STG-NF's
supervised setting (pose/abnormal_train, Scene<N>/<video>_annotations/) and UBnormal's RBDC / TBDC.

    mgenet make-demo --params '{"test_videos_per_scene": 8, "val_videos_per_scene": 0}' --out /tmp/demo
    python scripts/make_ubnormal_toy.py /tmp/demo /tmp/ubnormal_toy

Layout written (as STG-NF ships its UBnormal pose data, beside UBnormal's own annotation folders)::

    pose/train/normal_scene_{s}_scenario_{k}_alphapose_tracked_person.json      the demo's training videos
    pose/abnormal_train/abnormal_scene_{s}_scenario_{k}_...json                  every other anomalous test video
    pose/test/{abnormal|normal}_scene_{s}_scenario_{k}_...json                   the other test videos
    gt/{video}_tracks.txt              test videos: NumPy per-frame labels, 1 = normal (STG-NF's test files);
                                       anomalous training videos: UBnormal's text tracks id,start,end
    Scene{s}/{video}_annotations/{video}_{frame:04d}_gt.png   object masks: the anomalous person's drawn box filled
                                                              with its object id (1, 2, ...), 0 elsewhere
    Scene{s}/{video}_annotations/{video}_tracks.txt           id,start,end (end included, as UBnormal's)

With ``--shape-bug`` the last ten masks of the first anomalous training video are one row and one column larger, as
in the few UBnormal videos whose masks change size (STG-NF crops them to the smallest).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SUFFIX = "_alphapose_tracked_person.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="a generated demo dataset (mgenet make-demo)")
    ap.add_argument("out", type=Path, help="the UBnormal-layout dataset to write (must not exist)")
    ap.add_argument("--width", type=int, default=None, help="mask width (default: the demo's frame width)")
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--shape-bug", action="store_true")
    args = ap.parse_args()
    demo, out = args.demo, args.out
    if out.exists():
        raise SystemExit(f"error: {out} exists; remove it or pick another folder.")
    boxes = pd.read_csv(demo / "gt" / "anomaly_boxes.csv", dtype={"video": str, "track": str})
    probe = next((demo / "videos" / "test").glob("*.mp4"), None) if (demo / "videos").is_dir() else None
    width, height = args.width, args.height
    if (width is None or height is None) and probe is not None:
        import cv2

        cap = cv2.VideoCapture(str(probe))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        cap.release()
    if width is None or height is None:
        raise SystemExit("error: the demo has no video to read the frame size from; pass --width and --height.")
    for sub in ("pose/train", "pose/abnormal_train", "pose/test", "gt"):
        (out / sub).mkdir(parents=True)
    counters: dict[tuple[str, int], int] = {}
    abnormal_seen: dict[int, int] = {}
    first_abnormal_train = True

    def new_name(kind: str, scene: int) -> str:
        counters[(kind, scene)] = counters.get((kind, scene), 0) + 1
        return f"{kind}_scene_{scene}_scenario_{counters[(kind, scene)]}"

    for pose in sorted((demo / "pose" / "train").glob(f"*{SUFFIX}")):
        video = pose.name[: -len(SUFFIX)]
        name = new_name("normal", int(video.split("_")[0]))
        shutil.copy(pose, out / "pose" / "train" / f"{name}{SUFFIX}")
    for pose in sorted((demo / "pose" / "test").glob(f"*{SUFFIX}")):
        video = pose.name[: -len(SUFFIX)]
        scene = int(video.split("_")[0])
        mask = np.load(demo / "gt" / "test_frame_mask" / f"{video}.npy")
        vb = boxes[boxes["video"] == video]
        if not mask.any() or vb.empty:
            name = new_name("normal", scene)
            shutil.copy(pose, out / "pose" / "test" / f"{name}{SUFFIX}")
            with open(out / "gt" / f"{name}_tracks.txt", "wb") as f:  # STG-NF's test files: .npy under .txt
                np.save(f, np.ones(len(mask)))
            continue
        name = new_name("abnormal", scene)
        abnormal_seen[scene] = abnormal_seen.get(scene, 0) + 1
        to_train = abnormal_seen[scene] % 2 == 1  # every other anomalous video of a scene trains
        folder = out / f"Scene{scene}" / f"{name}_annotations"
        folder.mkdir(parents=True)
        ids = {t: i + 1 for i, t in enumerate(sorted(vb["track"].unique()))}
        tracks = [f"{ids[t]},{int(g['frame'].min())},{int(g['frame'].max())}" for t, g in vb.groupby("track")]
        (folder / f"{name}_tracks.txt").write_text("\n".join(tracks) + "\n")
        bigger = args.shape_bug and to_train and first_abnormal_train
        for frame in range(len(mask)):
            h, w = (height + 1, width + 1) if bigger and frame >= len(mask) - 10 else (height, width)
            m = np.zeros((h, w), np.uint8)
            for r in vb[vb["frame"] == frame].itertuples():
                x1, y1 = max(int(r.x1), 0), max(int(r.y1), 0)
                m[y1:max(int(r.y2), y1), x1:max(int(r.x2), x1)] = ids[r.track]
            Image.fromarray(m, mode="L").save(folder / f"{name}_{frame:04d}_gt.png")
        if to_train:
            first_abnormal_train = False
            shutil.copy(pose, out / "pose" / "abnormal_train" / f"{name}{SUFFIX}")
            shutil.copy(folder / f"{name}_tracks.txt", out / "gt" / f"{name}_tracks.txt")  # as STG-NF's gt/ has them
        else:
            shutil.copy(pose, out / "pose" / "test" / f"{name}{SUFFIX}")
            with open(out / "gt" / f"{name}_tracks.txt", "wb") as f:
                np.save(f, 1.0 - mask.astype(np.float64))  # 1 = normal
    n = {s: len(list((out / "pose" / s).glob(f"*{SUFFIX}"))) for s in ("train", "abnormal_train", "test")}
    print(f"{out}: {n['train']} normal training, {n['abnormal_train']} anomalous training, {n['test']} test videos; "
          f"masks {width}x{height}")


if __name__ == "__main__":
    main()
