"""Window labels of STG-NF's supervised setting (UBnormal, 79.2 AUC): which windows of the anomalous training videos
show an anomalous person.

The rule is STG-NF's ``utils/pose_utils.get_ab_labels``: a window whose first frame t (its metadata frame) lies in an
anomalous object's interval ``start <= t < end`` (STG-NF iterates ``range(start, end)``, leaving the tracks' last
frame out) is labelled -1 when more than half of its person's 18 keypoints at t, floored to whole pixels and clipped
to the mask, fall on a pixel of an object anomalous at t. Every other window, and every window of a normal video,
keeps label 1.

Which persons are tested at frame t (``flow.train.label_persons``): STG-NF picks them from rows of its dataset-wide
metadata array at the positions of the clip's own windows starting at t (it indexes the global array with clip-local
indices), so from the second anomalous clip on (in file-name order) it tests persons chosen by position rather than
those present at t, and labels fewer windows -1. ``stgnf`` (the default) reproduces that selection
(:func:`stgnf_person_selection`); ``all`` tests every window starting at t, as the code means to. On the first clip
the two agree. The label tables written per video hold the ``all`` rule's labels; the selection, which needs every
anomalous training video's windows in STG-NF's order, is applied when the flow trains.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mgenet.io.annotations import ObjectAnnotations
from mgenet.io.common import atomic_path

LABEL_COLUMNS = ["row", "person_id", "start_frame", "label"]
LABEL_PERSONS = ("stgnf", "all")
ALPHAPOSE_NAME = "{}_alphapose_tracked_person.json"  # STG-NF orders its clips by these file names


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


def stgnf_person_selection(videos: list[str], person_id: list[np.ndarray], start_frame: list[np.ndarray],
                           labels: list[np.ndarray]) -> list[np.ndarray]:
    """STG-NF's labels from the ``all`` rule's: a window stays -1 only if its person is among those STG-NF tests at
    its first frame t, the person ids of its dataset-wide rows at the positions of the clip's windows starting at t.

    Args:
        videos: the anomalous training videos (pose/abnormal_train), each with its windows' person ids, first frames
            and ``all``-rule labels, in any order (STG-NF's order, by pose file name, is rebuilt here).
    Returns:
        The labels, in the order given.
    """
    order = sorted(range(len(videos)), key=lambda i: ALPHAPOSE_NAME.format(videos[i]))
    global_pid = np.concatenate([person_id[i] for i in order]) if videos else np.zeros(0, int)
    out = [lab.copy() for lab in labels]
    for i in order:
        for t in np.unique(start_frame[i][labels[i] == -1]):
            local = np.flatnonzero(start_frame[i] == t)  # STG-NF's ab_metadata_inds: positions within the clip
            tested = set(global_pid[local].tolist())  # ... used to index the dataset-wide array
            drop = (start_frame[i] == t) & (labels[i] == -1) & ~np.isin(person_id[i], list(tested))
            out[i][drop] = 1
    return out


def read_labels(path: str | os.PathLike, n_rows: int) -> np.ndarray:
    """The labels (n_rows,) of a label table written by :func:`label_video`, checked against its segments file's
    row count."""
    import io

    from mgenet.io.common import MgenetError, UnreadableFileError, first_line
    from mgenet.io.tables import csv_text

    text = csv_text(path, "window label table", otherwise="rule label_windows (`mgenet label-windows`) makes it.")
    try:
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise UnreadableFileError(path, "window label table", f"not a CSV table: {first_line(e)[:120]}",
                                  "delete it and rerun (rule label_windows remakes it)") from e
    if list(df.columns) != LABEL_COLUMNS or len(df) != n_rows or not df["label"].isin([1, -1]).all():
        raise MgenetError(f"{path}: window label table does not match its segments file ({len(df)} rows, "
                          f"{n_rows} windows); delete it and rerun (rule label_windows remakes it).")
    return df["label"].to_numpy(np.int8)
