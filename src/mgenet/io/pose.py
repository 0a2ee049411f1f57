"""AlphaPose tracked-person JSON: the pose files of STG-NF's layout and of `mgenet pose`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mgenet import MgenetError
from mgenet.io.common import atomic_path, MissingFileError

N_COCO = 17
ALPHAPOSE_SUFFIX = "_alphapose_tracked_person.json"

# ------------------------------------------------------------------------------------------------- AlphaPose JSON
# Tracked-person format (AlphaPose --pose_track, as STG-NF consumes it):
#   {"<person id>": {"<frame index, zero-padded>": {"keypoints": [x, y, score] * 17, "scores": float}}}
# Frame keys index the frames of the video (and the ground-truth mask).

PoseDict = dict[int, dict[int, np.ndarray]]  # person id -> frame -> (17, 3) float32 [x, y, score]


def read_alphapose(path: str | os.PathLike) -> PoseDict:
    """Read and validate an AlphaPose tracked-person JSON file.

    Raises:
        MgenetError: naming the file (and the person and frame) for every structural problem.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, "pose file", otherwise="is dataset.root in config.yaml right?")
    text = path.read_text()
    if not text.strip():
        raise MgenetError(f"{path}: pose file is empty. Re-export it; a video with no person is written as {{}}.")
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MgenetError(f"{path}: not valid JSON ({e}). Re-export the pose file.") from e
    if not isinstance(raw, dict):
        raise MgenetError(f"{path}: expected an object {{person id: {{frame: {{keypoints, scores}}}}}}, "
                          f"got {type(raw).__name__}.")
    poses: PoseDict = {}
    pid_keys: dict[int, str] = {}
    for pid_key, frames in raw.items():
        try:
            pid = int(pid_key)
        except ValueError:
            raise MgenetError(f"{path}: person id {pid_key!r} is not an integer.") from None
        if pid in pid_keys:  # "02" and "2": one track would silently overwrite the other
            raise MgenetError(f"{path}: person ids {pid_keys[pid]!r} and {pid_key!r} are the same person {pid}; give "
                              f"each track its own id.")
        pid_keys[pid] = pid_key
        if not isinstance(frames, dict):
            raise MgenetError(f"{path}: person {pid_key}: expected an object of frames.")
        person: dict[int, np.ndarray] = {}
        for frame_key, entry in frames.items():
            where = f"{path}: person {pid_key}, frame {frame_key}"
            try:
                frame = int(frame_key)
            except ValueError:
                raise MgenetError(f"{where}: frame key is not an integer index.") from None
            if frame < 0:
                raise MgenetError(f"{where}: negative frame index.")
            if not isinstance(entry, dict) or "keypoints" not in entry:
                raise MgenetError(f"{where}: entry has no 'keypoints'.")
            kp = entry["keypoints"]
            if not isinstance(kp, list) or len(kp) != 3 * N_COCO:
                n = len(kp) if isinstance(kp, list) else type(kp).__name__
                raise MgenetError(f"{where}: 'keypoints' must hold {3 * N_COCO} numbers "
                                  f"(17 COCO joints × x, y, score), got {n}.")
            try:
                raw_kp = np.asarray(kp)  # strings ("12.5" too), lists, null give a non-number dtype
            except ValueError:
                raw_kp = np.asarray([], dtype=object)
            if raw_kp.dtype.kind not in "iuf" or raw_kp.shape != (3 * N_COCO,):
                raise MgenetError(f"{where}: 'keypoints' holds non-numeric values (strings, null or lists); write "
                                  f"plain numbers.")
            arr = raw_kp.astype(np.float32).reshape(N_COCO, 3)
            if not np.isfinite(arr).all():
                raise MgenetError(f"{where}: keypoints contain NaN or infinite values. "
                                  f"Drop the detection or mark missing joints with score 0 instead.")
            person[frame] = arr
        if person:
            poses[pid] = person
    return poses


def write_alphapose(poses: PoseDict, path: str | os.PathLike) -> None:
    """Write poses in the tracked-person format, persons and frames sorted, frame keys zero-padded."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for pid in sorted(poses):
        frames = poses[pid]
        out[str(pid)] = {
            f"{f:04d}": {
                "keypoints": [round(float(v), 3) for v in np.asarray(frames[f], dtype=np.float64).reshape(-1)],
                "scores": round(float(np.asarray(frames[f])[:, 2].mean()), 4),
            }
            for f in sorted(frames)
        }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, separators=(",", ":")))


def pose_summary(poses: PoseDict) -> dict[str, Any]:
    frames = {f for person in poses.values() for f in person}
    n_dets = sum(len(p) for p in poses.values())
    mean_score = (float(np.mean([kp[:, 2].mean() for p in poses.values() for kp in p.values()]))
                  if n_dets else math.nan)
    return {"tracks": len(poses), "detections": n_dets, "frames_with_person": len(frames),
            "mean_keypoint_score": mean_score}


