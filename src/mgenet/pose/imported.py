"""A dataset's own AlphaPose tracked-person JSON, checked against its video and written in mgenet's form."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mgenet import MgenetError
from mgenet.io import PoseDict, pose_summary, read_alphapose, write_alphapose

log = logging.getLogger("mgenet")


def import_pose(row: dict[str, Any], out: str | Path) -> PoseDict:
    """Read the pose file of a manifest ``row``, check its frames lie inside the video, and write it to ``out``.

    Raises:
        MgenetError: the file is unreadable, or a frame index lies beyond the video's frames.
    """
    src = row["pose_path"]
    poses = read_alphapose(src)
    n = int(row["frames"])
    for pid, track in poses.items():
        late = [f for f in track if f >= n]
        if late:
            raise MgenetError(f"{src}: person {pid}, frame {min(late)}: frame index beyond the video's {n} frames "
                              f"(frames are 0-based indices into the video / ground-truth mask).")
    write_alphapose(poses, out)
    s = pose_summary(poses)
    if s["tracks"] == 0:
        log.warning("%s: no person in this video; all its frames will get the most normal score", src)
    log.info("%s: %d frames, %d tracks, %d detections (%.2f persons per posed frame), mean keypoint score %.3f",
             row["video"], n, s["tracks"], s["detections"], s["detections"] / max(s["frames_with_person"], 1),
             s["mean_keypoint_score"])
    return poses
