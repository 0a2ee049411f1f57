"""Where the anomaly is: the region- and track-based detection criteria RBDC and TBDC (Ramachandra & Jones, "Street
Scene: a new dataset and evaluation protocol for video anomaly detection", WACV 2020).

A frame-level AUC rewards a high score on an anomalous frame even when it comes from the wrong person. These criteria
score regions instead. Detections are the test segments' person boxes at their middle frame (the frame a segment's
score goes to), each with that segment's score; at a threshold θ the detected regions are those scoring >= θ.

- A ground-truth region (one anomalous object in one frame) is detected when some detected region in its frame
  overlaps it with IoU >= β (0.1 in the paper).
- A detected region is a false positive when it overlaps no ground-truth region of its frame with IoU >= β.
- RBDR(θ) = detected ground-truth regions / all ground-truth regions.
- A ground-truth track (the regions of one anomalous object) is detected when at least a fraction α (0.1 in the
  paper) of its regions is detected; TBDR(θ) = detected tracks / all tracks.
- The x axis is false positives per frame, over all test frames. RBDC and TBDC are the areas under RBDR and TBDR
  against it for rates 0 to ``max_fp`` (1 in the paper), divided by ``max_fp`` so that they lie in [0, 1]. Points
  of consecutive thresholds are joined by straight lines (as the ROC joins tied scores); past the lowest threshold
  no more region can be detected, so the curve stays flat up to ``max_fp``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mgenet import MgenetError
from mgenet.io import read_segments

IOU = 0.1             # β, the paper's default
TRACK_FRACTION = 0.1  # α, the paper's default
MAX_FP_PER_FRAME = 1.0
BOX = ["x1", "y1", "x2", "y2"]


def rowwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of the boxes ``a[i]`` and ``b[i]`` (x1, y1, x2, y2), row by row; 0 where the union is empty."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def segment_boxes(segment_files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Each test segment's person box at its middle frame, from the segments files (``{video}.h5``).

    Returns:
        Columns video, person_id, start_frame, mid_frame, x1, y1, x2, y2. The box is the one of the window step whose
        frame is ``mid_frame``, or of the step nearest to it (the earlier on a tie) when tracking missed that frame.
    """
    parts = []
    for path in segment_files:
        arrays, _ = read_segments(path, fields=("boxes", "frames", "person_id", "start_frame", "mid_frame"))
        mid = arrays["mid_frame"].astype(np.int64)
        if not len(mid):
            continue
        step = np.abs(arrays["frames"].astype(np.int64) - mid[:, None]).argmin(axis=1)
        box = arrays["boxes"][np.arange(len(mid)), step].astype(np.float64)  # (N, 4)
        parts.append(pd.DataFrame({"video": Path(path).stem, "person_id": arrays["person_id"].astype(np.int64),
                                   "start_frame": arrays["start_frame"].astype(np.int64), "mid_frame": mid,
                                   **{c: box[:, i] for i, c in enumerate(BOX)}}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "video" else np.float64)
                             for c in ["video", "person_id", "start_frame", "mid_frame", *BOX]})
    return pd.concat(parts, ignore_index=True)


def detections(seg: pd.DataFrame, boxes: pd.DataFrame) -> pd.DataFrame:
    """The segment score table with each segment's box (``segment_boxes``) and its frame (= mid_frame).

    Raises:
        MgenetError: a scored segment without a box (the scores and the segments files are from different runs).
    """
    keys = ["video", "person_id", "start_frame"]
    if boxes.duplicated(keys).any():
        raise MgenetError("the segments files hold a segment twice; rebuild them (rule build_segments).")
    out = seg.assign(video=seg["video"].astype(str)).merge(boxes.drop(columns="mid_frame"), on=keys, how="left")
    lost = out[BOX[0]].isna()
    if lost.any():
        r = out.loc[lost].iloc[0]
        raise MgenetError(f"{int(lost.sum())} scored segment(s) have no box in the segments files, e.g. video "
                          f"{r.video!r} person {r.person_id} start {r.start_frame}: the segment scores come from "
                          f"other segments files; rerun rule score_components.")
    return out.assign(frame=out["mid_frame"].astype(np.int64))


def _overlaps(det: pd.DataFrame, gt: pd.DataFrame, iou: float) -> pd.DataFrame:
    """Pairs (detection row, region row) in the same frame with IoU >= ``iou``: columns det, region."""
    d = det[["video", "frame", *BOX]].assign(det=np.arange(len(det)))
    g = gt[["video", "frame", *BOX]].assign(region=np.arange(len(gt)))
    pairs = d.merge(g, on=["video", "frame"], suffixes=("_d", "_g"))
    ok = rowwise_iou(pairs[[f"{c}_d" for c in BOX]].to_numpy(), pairs[[f"{c}_g" for c in BOX]].to_numpy()) >= iou
    return pairs.loc[ok, ["det", "region"]]


def _area(fp_rate: np.ndarray, rate: np.ndarray, max_fp: float) -> float:
    """Area under the polyline (0, 0), (fp_rate[i], rate[i])... up to x = max_fp (flat past the last point), / max_fp."""
    x = np.concatenate([[0.0], fp_rate])
    y = np.concatenate([[0.0], rate])
    past = np.flatnonzero(x > max_fp)
    if past.size:
        i = int(past[0])
        y_cut = y[i - 1] + (y[i] - y[i - 1]) * (max_fp - x[i - 1]) / (x[i] - x[i - 1])
        x, y = np.append(x[:i], max_fp), np.append(y[:i], y_cut)
    else:
        x, y = np.append(x, max_fp), np.append(y, y[-1])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2) / max_fp)


def _count_at_least(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    s = np.sort(values)
    return len(s) - np.searchsorted(s, thresholds, side="left")


def rbdc_tbdc(det: pd.DataFrame, gt: pd.DataFrame, n_frames: int, score: str, iou: float = IOU,
              track_fraction: float = TRACK_FRACTION, max_fp: float = MAX_FP_PER_FRAME,
              pairs: pd.DataFrame | None = None) -> tuple[float, float]:
    """RBDC and TBDC of one score column of the detections.

    Args:
        det: detections, columns video, frame, x1..y2 and ``score``.
        gt: ground-truth regions (``mgenet.io.ANOMALY_BOX_COLUMNS``) of the same videos; at least one.
        n_frames: test frames in all (the false positives per frame divide by it).
        score: the column of ``det`` to threshold.
        iou: β, the IoU at which a detection covers a region.
        track_fraction: α, the share of a track's regions that must be detected.
        max_fp: the false positives per frame up to which the curves are integrated.
        pairs: ``_overlaps(det, gt, iou)`` when already computed (it does not depend on the score).

    Returns:
        ``(rbdc, tbdc)``, each in [0, 1].
    """
    if not len(gt):
        raise ValueError("RBDC and TBDC need at least one ground-truth region")
    if pairs is None:
        pairs = _overlaps(det, gt, iou)
    s = det[score].to_numpy(np.float64)
    # A region is detected from the threshold of its best-scoring overlapping detection down.
    best = np.full(len(gt), -np.inf)
    np.maximum.at(best, pairs["region"].to_numpy(np.int64), s[pairs["det"].to_numpy(np.int64)])
    fp = np.ones(len(det), bool)
    fp[pairs["det"].to_numpy(np.int64)] = False
    # A track is detected once ceil(α n) of its n regions are: from its ceil(α n)-th best region's threshold down.
    track_best = []
    keys = gt["video"].astype(str) + "\x00" + gt["track"].astype(str)
    for _, idx in keys.groupby(keys, sort=True).indices.items():
        need = max(1, math.ceil(track_fraction * len(idx) - 1e-9))
        track_best.append(np.sort(best[idx])[::-1][need - 1])
    thresholds = np.unique(s)[::-1]  # descending
    fp_rate = _count_at_least(s[fp], thresholds) / n_frames
    rbdr = _count_at_least(best, thresholds) / len(gt)
    tbdr = _count_at_least(np.asarray(track_best), thresholds) / len(track_best)
    return _area(fp_rate, rbdr, max_fp), _area(fp_rate, tbdr, max_fp)


def localization_metrics(det: pd.DataFrame, gt: pd.DataFrame, n_frames: int, videos: Sequence[str],
                         cols: Sequence[str], iou: float = IOU, track_fraction: float = TRACK_FRACTION,
                         max_fp: float = MAX_FP_PER_FRAME) -> dict | None:
    """RBDC and TBDC of every score column, and what they were computed on; None without a region in ``videos``.

    Returns:
        ``{"settings": {...}, "scores": {NAME: {"rbdc": x, "tbdc": y}}}``; settings hold ``iou``,
        ``track_fraction``, ``max_fp_per_frame``, ``n_regions``, ``n_tracks``, ``n_detections``, ``n_frames``.
    """
    videos = {str(v) for v in videos}
    gt = gt[gt["video"].astype(str).isin(videos)].reset_index(drop=True)
    if not len(gt):
        return None
    det = det[det["video"].astype(str).isin(videos)].reset_index(drop=True)
    pairs = _overlaps(det, gt, iou)
    scores = {}
    for c in cols:
        rbdc, tbdc = rbdc_tbdc(det, gt, n_frames, c, iou, track_fraction, max_fp, pairs)
        scores[c] = {"rbdc": rbdc, "tbdc": tbdc}
    n_tracks = int(gt[["video", "track"]].astype(str).drop_duplicates().shape[0])
    return {"settings": {"iou": float(iou), "track_fraction": float(track_fraction),
                         "max_fp_per_frame": float(max_fp), "n_regions": int(len(gt)), "n_tracks": n_tracks,
                         "n_detections": int(len(det)), "n_frames": int(n_frames)},
            "scores": scores}


def add_localization(metrics: dict, loc: Mapping | None) -> dict:
    """``metrics`` (``mgenet.evaluation.metrics.compute_metrics``) with ``rbdc`` and ``tbdc`` in each score it has and
    the settings under ``localization``; unchanged when ``loc`` is None (no boxes: the figures are absent, not 0)."""
    if loc is None:
        return metrics
    for name, figures in loc["scores"].items():
        if name in metrics["scores"]:
            metrics["scores"][name].update({k: float(v) for k, v in figures.items()})
    metrics["localization"] = dict(loc["settings"])
    return metrics


def localization(frames: pd.DataFrame, seg: pd.DataFrame, segment_files: list[str], boxes: str,
                 iou: float = IOU, track_fraction: float = TRACK_FRACTION,
                 max_fp: float = MAX_FP_PER_FRAME) -> dict | None:
    """RBDC and TBDC of every score column of ``frames`` that the fused segment scores ``seg`` also have, with the
    boxes of the test videos' ``segment_files`` as detections and the anomalous objects' ``boxes`` file as truth;
    None when the file holds no anomalous region of these videos."""
    from mgenet.io import read_anomaly_boxes
    from mgenet.scoring.fusion import score_columns

    det = detections(seg, segment_boxes(segment_files))
    cols = [c for c in score_columns(frames) if c in det.columns]
    return localization_metrics(det, read_anomaly_boxes(boxes), len(frames), frames["video"].unique(), cols,
                                iou=iou, track_fraction=track_fraction, max_fp=max_fp)
