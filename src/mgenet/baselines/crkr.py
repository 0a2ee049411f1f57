"""The two-stream baseline's fusion and the paper's own evaluation protocol (Cao et al., arXiv 2209.02899).

``crkr`` (the fused column of ``scores/baselines/crkr.parquet``) follows the paper: each stream's raw frame scores
min-max scaled per video, then summed 1:1. The project's protocol then smooths every column like the other
components (``mgenet fuse``). The paper's protocol differs in its smoothing: per video, min-max, then a gaussian of
sigma 9 for CR and 32 for KR (the public ``metrics.py``: sigma = snippet interval x snippet length / 2, mode
``constant``), the fused score being the sum of the two smoothed streams (``6-two_stream_fuse_score.py``).
:func:`paper_protocol` computes those figures, reported under ``paper_protocol`` in metrics.json beside the
project's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import roc_auc_score

from mgenet import MgenetError

STREAMS = ("cr", "kr")
PAPER_SIGMAS = {"cr": 9.0, "kr": 32.0}


def minmax_per_video(values: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Each video's scores scaled to [0, 1] (a constant video maps to 0)."""
    out = np.zeros(len(values), np.float64)
    for v in pd.unique(videos):
        m = videos == v
        x = values[m].astype(np.float64)
        span = x.max() - x.min()
        out[m] = (x - x.min()) / span if span > 0 else 0.0
    return out


def fuse_streams(cr: pd.DataFrame, kr: pd.DataFrame, cr_name: str = "cr", kr_name: str = "kr") -> pd.DataFrame:
    """video, frame, cr, kr (raw) and crkr = per-video min-max of cr + per-video min-max of kr.

    Raises:
        MgenetError: naming the tables when their frames differ.
    """
    keys = ["video", "frame"]
    a = cr[[*keys, "cr"]].sort_values(keys, kind="stable").reset_index(drop=True)
    b = kr[[*keys, "kr"]].sort_values(keys, kind="stable").reset_index(drop=True)
    if len(a) != len(b) or not (a[keys].astype(str).to_numpy() == b[keys].astype(str).to_numpy()).all():
        raise MgenetError(f"{cr_name} ({len(a)} frames) and {kr_name} ({len(b)} frames) do not score the same test "
                          f"frames; rerun both streams' scoring after changing the dataset.")
    out = a.assign(kr=b["kr"].to_numpy())
    videos = out["video"].astype(str).to_numpy()
    out["crkr"] = minmax_per_video(out["cr"].to_numpy(), videos) + minmax_per_video(out["kr"].to_numpy(), videos)
    return out


def paper_protocol(scores: pd.DataFrame, gts: Mapping[str, np.ndarray],
                   sigmas: Mapping[str, float] = PAPER_SIGMAS) -> dict:
    """Micro and macro AUC of cr, kr and crkr under the paper's protocol.

    Args:
        scores: video, frame, cr, kr raw scores (one row per test frame, each video's frames in order).
        gts: video -> frame mask (1 = anomalous), one entry per test video.
        sigmas: gaussian sigma per stream.
    Returns:
        ``{"protocol": str, "sigmas": {...}, "scores": {name: {"micro_auc", "macro_auc", "n_macro_videos"}}}``;
        macro averages the videos with both normal and anomalous frames.
    """
    cols: dict[str, list[np.ndarray]] = {"cr": [], "kr": [], "crkr": []}
    truth: list[np.ndarray] = []
    for video, df in scores.groupby("video", sort=True):
        df = df.sort_values("frame")
        gt = np.asarray(gts[str(video)]).astype(bool)
        if len(gt) != len(df):
            raise MgenetError(f"video {video!r}: {len(df)} scored frames but its ground truth has {len(gt)}")
        streams = {}
        for s in STREAMS:
            x = minmax_per_video(df[s].to_numpy(), np.zeros(len(df)))
            streams[s] = gaussian_filter1d(x, sigma=float(sigmas[s]), mode="constant")
            cols[s].append(streams[s])
        cols["crkr"].append(streams["cr"] + streams["kr"])
        truth.append(gt)
    gt_all = np.concatenate(truth)
    out = {}
    for name, parts in cols.items():
        per_video = [roc_auc_score(g, p) for g, p in zip(truth, parts) if 0 < g.sum() < len(g)]
        out[name] = {"micro_auc": float(roc_auc_score(gt_all, np.concatenate(parts))) if 0 < gt_all.sum() < len(
            gt_all) else None, "macro_auc": float(np.mean(per_video)) if per_video else None,
            "n_macro_videos": len(per_video)}
    return {"protocol": "Cao et al.: per-video min-max, gaussian sigma per stream (mode constant), crkr = sum of "
                        "the smoothed streams; macro over two-class videos",
            "sigmas": {k: float(v) for k, v in sigmas.items()}, "scores": out}
