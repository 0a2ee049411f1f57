"""Window labels of STG-NF's supervised setting (UBnormal, 79.2 AUC): which windows of the anomalous training videos
show an anomalous person.

The rule is STG-NF's ``utils/pose_utils.get_ab_labels``: a window whose first frame t (its metadata frame) lies in an
anomalous object's interval ``start <= t < end`` (STG-NF iterates ``range(start, end)``, leaving the tracks' last
frame out) is labelled -1 when more than half of its person's 18 keypoints at t, floored to whole pixels and clipped
to the mask, fall on a pixel of an object anomalous at t. Every other window, and every window of a normal video,
keeps label 1.

Known departure: STG-NF picks the persons to test at frame t from rows of its dataset-wide metadata array at the
positions of the clip's own matches (it indexes the global array with clip-local indices), so from the second
anomalous clip on it tests persons chosen by position rather than those present at t. Here every window starting at t
is tested, which is what the code means to do; on one clip (or the first) the two agree.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mgenet.io.annotations import ObjectAnnotations
from mgenet.io.common import atomic_path

LABEL_COLUMNS = ["row", "person_id", "start_frame", "label"]


def window_labels(keypoints: np.ndarray, start_frame: np.ndarray, ann: ObjectAnnotations) -> np.ndarray:
    """Labels (N,) int8, 1 normal / -1 anomalous, of one video's windows.

    Args:
        keypoints: pixel keypoints (N, T, 18, 2) x, y of the segments file.
        start_frame: each window's first frame (N,).
        ann: the video's annotation folder.
    """
    labels = np.ones(len(start_frame), np.int8)
    active: dict[int, list[int]] = {}  # frame -> ids of the objects anomalous in it
    for track in ann.tracks:
        for t in range(track.start, track.end):  # STG-NF: range(start, end)
            active.setdefault(t, []).append(track.object_id)
    h, w = ann.shape
    for t in sorted(set(np.unique(start_frame).tolist()) & set(active)):
        mask = ann.mask(t)
        if mask is None:
            continue
        anomalous = np.isin(mask, active[t])  # (H, W)
        if not anomalous.any():
            continue
        for i in np.flatnonzero(start_frame == t):
            xy = np.floor(keypoints[i, 0]).astype(np.int64)  # (18, 2) at the window's first frame
            inside = anomalous[np.clip(xy[:, 1], 0, h - 1), np.clip(xy[:, 0], 0, w - 1)].sum()
            if inside > xy.shape[0] / 2:
                labels[i] = -1
    return labels


def label_video(segments_path: str | os.PathLike, annotation_dir: str | os.PathLike | None,
                out: str | os.PathLike, video: str | None = None) -> pd.DataFrame:
    """Label one training video's windows and write the table (``LABEL_COLUMNS``, one row per window in the segments
    file's order) to ``out``. Without ``annotation_dir`` (a normal video among STG-NF's anomalous training poses,
    which its ``get_ab_labels`` skips) every window keeps label 1."""
    from mgenet.io import read_segments

    arrays, attrs = read_segments(segments_path, ("keypoints", "person_id", "start_frame"))
    if annotation_dir:
        ann = ObjectAnnotations(annotation_dir, video or attrs.get("video"))
        labels = window_labels(arrays["keypoints"], arrays["start_frame"], ann)
    else:
        labels = np.ones(len(arrays["start_frame"]), np.int8)
    df = pd.DataFrame({"row": np.arange(len(labels)), "person_id": arrays["person_id"],
                       "start_frame": arrays["start_frame"], "label": labels})
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    return df


def read_labels(path: str | os.PathLike, n_rows: int) -> np.ndarray:
    """The labels (n_rows,) of a label table written by :func:`label_video`, checked against its segments file's
    row count."""
    from mgenet.io.common import MgenetError, MissingFileError

    if not os.path.exists(path):
        raise MissingFileError(path, "window label table", otherwise="rule label_windows (`mgenet label-windows`) "
                                                                     "makes it.")
    df = pd.read_csv(path)
    if list(df.columns) != LABEL_COLUMNS or len(df) != n_rows or not df["label"].isin([1, -1]).all():
        raise MgenetError(f"{path}: window label table does not match its segments file ({len(df)} rows, "
                          f"{n_rows} windows); delete it and rerun (rule label_windows remakes it).")
    return df["label"].to_numpy(np.int8)
