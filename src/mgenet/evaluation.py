"""Frame-level AUCs of the frame score table: the ``metrics.json`` contract (DESIGN §3).

Micro AUC concatenates every test frame of every video (the STG-NF / ShanghaiTech protocol the paper reports); macro
AUC averages the per-video AUCs (the UBnormal-style figure), skipping videos with a single class since an AUC is
undefined there. Per-type AUCs rank all normal frames against the anomalous frames of one type, to show which branch
catches which kind of anomaly (the paper's §4.6).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from mgenet import MgenetError
from mgenet.scoring import score_columns


def _auc(gt: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, NaN when ``gt`` holds a single class."""
    gt = np.asarray(gt)
    if gt.size == 0 or gt.min() == gt.max():
        return math.nan
    return float(roc_auc_score(gt, score))


def _json_float(x: float) -> float | None:
    # JSON has no NaN; null tells a reader "undefined" without breaking strict parsers.
    return None if x is None or not math.isfinite(x) else float(x)


def _check_frames(frames: pd.DataFrame) -> list[str]:
    missing = [c for c in ("video", "gt") if c not in frames.columns]
    if missing:
        raise MgenetError(f"frame score table lacks column(s) {missing}; it is made by rule fuse_scores.")
    cols = score_columns(frames)
    if not cols:
        raise MgenetError("frame score table has no score column (nf, mo, app, mm, fused).")
    for c in cols:
        if not np.isfinite(frames[c].to_numpy(dtype=np.float64)).all():
            raise MgenetError(f"frame score column {c!r} holds non-finite values; rerun rule fuse_scores.")
    return cols


def micro_auc(frames: pd.DataFrame, name: str) -> float:
    """AUC over all frames of all videos concatenated (NaN if the test set has a single class)."""
    return _auc(frames["gt"].to_numpy(), frames[name].to_numpy())


def macro_auc(frames: pd.DataFrame, name: str) -> float:
    """Mean of the per-video AUCs over the videos that hold both classes (NaN if none does)."""
    aucs = [_auc(g["gt"].to_numpy(), g[name].to_numpy()) for _, g in frames.groupby("video", sort=True)]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else math.nan


def anomaly_types(frames: pd.DataFrame) -> list[str]:
    """Sorted anomaly types present on the anomalous frames of the table ("" = untyped, excluded)."""
    if "type" not in frames.columns:
        return []
    types = frames.loc[frames["gt"] == 1, "type"].astype(str)
    return sorted(t for t in types.unique() if t)


def type_auc(frames: pd.DataFrame, name: str, anomaly_type: str) -> float:
    """AUC of all normal frames against the anomalous frames of one type (other anomalies left out)."""
    gt = frames["gt"].to_numpy()
    keep = (gt == 0) | ((gt == 1) & (frames["type"].astype(str).to_numpy() == anomaly_type))
    return _auc(gt[keep], frames[name].to_numpy()[keep])


def compute_metrics(frames: pd.DataFrame, dataset: str) -> dict:
    """Metrics of every score column, JSON-ready (undefined AUCs are ``None``).

    Args:
        frames: frame score table from :func:`mgenet.scoring.frame_scores`.
        dataset: dataset name, recorded as is.

    Returns:
        ``{"dataset", "n_videos", "n_frames", "scores": {NAME: {"micro_auc", "macro_auc", "by_type": {TYPE: auc}}}}``
        with NAME in the order nf, mo, app, mm, fused (those present) and TYPE sorted; ``by_type`` is ``{}`` when
        the table has no typed anomalous frame.
    """
    cols = _check_frames(frames)
    types = anomaly_types(frames)
    scores = {}
    for c in cols:
        scores[c] = {
            "micro_auc": _json_float(micro_auc(frames, c)),
            "macro_auc": _json_float(macro_auc(frames, c)),
            "by_type": {t: _json_float(type_auc(frames, c, t)) for t in types},
        }
    return {"dataset": str(dataset), "n_videos": int(frames["video"].nunique()), "n_frames": int(len(frames)),
            "scores": scores}


def roc_points(frames: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve of one score column over all frames (micro), for plotting.

    Returns:
        ``(fpr, tpr, auc)``; empty arrays and NaN when the test set has a single class.
    """
    gt = frames["gt"].to_numpy()
    if gt.size == 0 or gt.min() == gt.max():
        return np.empty(0), np.empty(0), math.nan
    score = frames[name].to_numpy(dtype=np.float64)
    fpr, tpr, _ = roc_curve(gt, score)
    return fpr, tpr, float(roc_auc_score(gt, score))
