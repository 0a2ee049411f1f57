"""Frame-level metrics of the frame score table: the ``metrics.json`` contract (DESIGN §3).

Micro figures concatenate every test frame of every video (the STG-NF / ShanghaiTech protocol the paper reports);
macro figures average the per-video figures (the UBnormal-style figure) over the videos that hold both classes only:
an AUC, AP or EER is undefined on a one-class video, and padding its labels (adding a fake frame of the other class)
would invent a number, so such videos are skipped and listed. Per-type AUCs rank all normal frames against the
anomalous frames of one type, to show which branch catches which kind of anomaly (the paper's §4.6).

Beside the AUC: average precision (the area under the precision-recall curve, as scikit-learn computes it) and the
equal error rate; a bootstrap over test videos for the micro AUC's 95% interval and for the paired interval of the
fused score's gain over each component; DeLong's test of that gain (DeLong et al., Biometrics 1988, with the midrank
algorithm of Sun & Xu, IEEE SPL 2014). Frames of one video are not independent, which DeLong's variance assumes, so
the bootstrap over videos is the primary interval and DeLong's p-value a secondary, optimistic one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from mgenet import MgenetError
from mgenet.scoring.fusion import FUSED, score_columns, supervision

CI_LEVEL = 0.95
FALSE_ALARM_THRESHOLD = 0.5  # AR-Net's false-alarm rate: its scores are probabilities


def _single_class(gt: np.ndarray) -> bool:
    return gt.size == 0 or gt.min() == gt.max()


def _auc(gt: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, NaN when ``gt`` holds a single class."""
    gt = np.asarray(gt)
    if _single_class(gt):
        return math.nan
    return float(roc_auc_score(gt, score))


def average_precision(gt: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve as the step sum Σ_k (R_k − R_{k−1}) P_k over thresholds (scikit-learn's
    ``average_precision_score``, no interpolation); NaN when ``gt`` holds a single class."""
    gt = np.asarray(gt)
    if _single_class(gt):
        return math.nan
    return float(average_precision_score(gt, score))


def equal_error_rate(gt: np.ndarray, score: np.ndarray) -> float:
    """The error rate where the false positive rate equals the miss rate (1 − TPR) on the ROC curve.

    The ROC curve is taken as the polyline through its threshold points (ties move diagonally, as the AUC counts
    them half); along it FPR − (1 − TPR) grows from −1 to 1, and the EER is the FPR where it crosses 0, linearly
    interpolated between the two points around the crossing. NaN when ``gt`` holds a single class.
    """
    gt = np.asarray(gt)
    if _single_class(gt):
        return math.nan
    fpr, tpr, _ = roc_curve(gt, score, drop_intermediate=False)
    d = fpr + tpr - 1.0
    i = int(np.argmax(d >= 0))  # first point at or past the crossing; d[0] = -1 < 0, d[-1] = 1
    if d[i] == 0:
        return float(fpr[i])
    t = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def format_figure(v: float | None) -> str:
    """A figure of metrics.json as a log line shows it: four decimals, ``n/a`` when undefined (None)."""
    return "n/a" if v is None else f"{v:.4f}"


def _json_float(x: float | None) -> float | None:
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


def one_class_videos(frames: pd.DataFrame) -> list[str]:
    """Sorted videos whose frames are all normal or all anomalous: the macro figures skip them."""
    return sorted(str(v) for v, g in frames.groupby("video", sort=True) if _single_class(g["gt"].to_numpy()))


def _macro(frames: pd.DataFrame, name: str, figure) -> float:
    values = [figure(g["gt"].to_numpy(), g[name].to_numpy()) for _, g in frames.groupby("video", sort=True)]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def macro_auc(frames: pd.DataFrame, name: str) -> float:
    """Mean of the per-video AUCs over the videos that hold both classes (NaN if none does)."""
    return _macro(frames, name, _auc)


def macro_ap(frames: pd.DataFrame, name: str) -> float:
    """Mean of the per-video average precisions over the videos that hold both classes (NaN if none does)."""
    return _macro(frames, name, average_precision)


def macro_eer(frames: pd.DataFrame, name: str) -> float:
    """Mean of the per-video equal error rates over the videos that hold both classes (NaN if none does)."""
    return _macro(frames, name, equal_error_rate)


# ------------------------------------------------------------------------------------------------ DeLong's test


def delong_covariance(gt: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of several scores of the same samples and DeLong's covariance of them (midrank algorithm, O(n log n)).

    Args:
        gt: (n,) labels, 1 = positive; both classes present.
        scores: (k, n) one row per score.

    Returns:
        ``(auc, cov)``: (k,) AUCs (ties count one half) and their (k, k) covariance S10 / m + S01 / n, where S10 and
        S01 are the sample covariances of the structural components over the m positives and the n negatives.
    """
    gt = np.asarray(gt).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    pos, neg = scores[:, gt], scores[:, ~gt]
    m, n = pos.shape[1], neg.shape[1]
    if m == 0 or n == 0:
        raise ValueError("DeLong's covariance needs both classes")
    tx = np.stack([rankdata(r) for r in pos])  # midranks among the positives
    ty = np.stack([rankdata(r) for r in neg])
    tz = np.stack([rankdata(r) for r in np.concatenate([pos, neg], axis=1)])
    auc = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:, :m] - tx) / n        # per positive: share of negatives below it
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per negative: share of positives above it
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(scores), len(scores)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(scores), len(scores)))
    return auc, s10 / m + s01 / n


def delong_test(gt: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """DeLong's test of AUC(a) − AUC(b) on the same samples.

    Returns:
        ``(difference, z, two-sided p)``; NaNs when ``gt`` holds a single class. A zero variance (identical
        rankings) gives z = 0 and p = 1 for a zero difference (an infinite z and p = 0 otherwise).
    """
    gt = np.asarray(gt)
    if _single_class(gt):
        return math.nan, math.nan, math.nan
    auc, cov = delong_covariance(gt, np.stack([a, b]))
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 1e-15:  # rankings that move together exactly: only a zero difference is possible in practice
        if abs(diff) < 1e-12:
            return diff, 0.0, 1.0
        return diff, math.copysign(math.inf, diff), 0.0
    z = diff / math.sqrt(var)
    return diff, z, float(2 * norm.sf(abs(z)))


# ------------------------------------------------------------------------------------------ bootstrap over videos


def bootstrap_counts(n_videos: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_videos) how often each video is drawn when ``n_videos`` videos are drawn with replacement,
    ``resamples`` times, from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_videos, size=(resamples, n_videos))
    counts = np.zeros((resamples, n_videos), dtype=np.int64)
    np.add.at(counts, (np.arange(resamples)[:, None], idx), 1)
    return counts


class _WeightedAUC:
    """AUC of one score under frame weights (a bootstrap resample = each video's frames counted as often as the video
    was drawn), O(n) per resample after one sort: equal to the AUC of the resample's frames concatenated."""

    def __init__(self, gt: np.ndarray, score: np.ndarray) -> None:
        _, self.inv = np.unique(np.asarray(score, dtype=np.float64), return_inverse=True)
        self.k = int(self.inv.max()) + 1 if self.inv.size else 0
        self.pos = np.asarray(gt) == 1

    def __call__(self, w: np.ndarray) -> float:
        wp = np.bincount(self.inv, weights=w * self.pos, minlength=self.k)
        wn = np.bincount(self.inv, weights=w * ~self.pos, minlength=self.k)
        p, n = wp.sum(), wn.sum()
        if p == 0 or n == 0:
            return math.nan
        below = np.cumsum(wn) - wn  # weight of negatives strictly below each distinct score
        return float((wp * (below + 0.5 * wn)).sum() / (p * n))


def weighted_auc(gt: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    """ROC AUC with integer frame weights (a frame of weight 2 counts as two frames), NaN with a single class."""
    return _WeightedAUC(gt, score)(np.asarray(weights, dtype=np.float64))


def _interval(values: np.ndarray, level: float = CI_LEVEL) -> list[float | None]:
    ok = values[~np.isnan(values)]
    if not ok.size:
        return [None, None]
    lo, hi = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def bootstrap_aucs(frames: pd.DataFrame, cols: Sequence[str], resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Micro AUC of every column in each of ``resamples`` bootstrap resamples of the test videos (the same resamples
    for every column, so differences are paired); NaN where a resample holds a single class."""
    videos, code = np.unique(frames["video"].astype(str).to_numpy(), return_inverse=True)
    counts = bootstrap_counts(len(videos), resamples, seed).astype(np.float64)
    gt = frames["gt"].to_numpy()
    out = {}
    for c in cols:
        auc = _WeightedAUC(gt, frames[c].to_numpy())
        out[c] = np.array([auc(row[code]) for row in counts])
    return out


# --------------------------------------------------------------------------------------------------- the contract

# Each stage-2 branch against the score it is meant to beat, on the anomaly type it is built for (issue 17's
# targets): the mask encoder (S_app) on appearance, the matching memory (S_mm) on scene, the RGB encoder (S_mo) on
# motion.
BRANCH_WINS = (("app", "nf", "appearance"), ("mm", "nf", "scene"), ("mm", "mo", "scene"), ("mo", "nf", "motion"))


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


def branch_wins(frames: pd.DataFrame, bootstrap: int = 0, seed: int = 0) -> list[dict]:
    """Each branch's AUC gain over its baseline on its anomaly type (:data:`BRANCH_WINS`, those whose scores and
    type the table has): ``branch``, ``baseline``, ``type``, ``auc_diff`` and, with ``bootstrap``, ``ci95``: the
    interval of the gain over resamples of the videos (the resamples of :func:`bootstrap_aucs` for this ``seed``,
    paired between the two scores)."""
    out = []
    types = anomaly_types(frames)
    for branch, base, kind in BRANCH_WINS:
        if branch not in frames.columns or base not in frames.columns or kind not in types:
            continue
        gt = frames["gt"].to_numpy()
        keep = (gt == 0) | ((gt == 1) & (frames["type"].astype(str).to_numpy() == kind))
        sub = frames.loc[keep]
        row = {"branch": branch, "baseline": base, "type": kind,
               "auc_diff": _json_float(type_auc(frames, branch, kind) - type_auc(frames, base, kind))}
        if bootstrap > 0:
            boot = bootstrap_aucs(sub, [branch, base], int(bootstrap), int(seed))
            row["ci95"] = _interval(boot[branch] - boot[base])
        out.append(row)
    return out


def compute_metrics(frames: pd.DataFrame, dataset: str, bootstrap: int = 0, seed: int = 0) -> dict:
    """Metrics of every score column, JSON-ready (undefined figures are ``None``).

    Args:
        frames: frame score table from :func:`mgenet.scoring.frames.frame_scores`.
        dataset: dataset name, recorded as is.
        bootstrap: resamples of the test videos for the intervals (0: no interval, no ``bootstrap`` key).
        seed: seed of the resampling (``numpy.random.default_rng``); the same seed gives the same intervals.

    Returns:
        ``{"dataset", "n_videos", "n_frames", "scores": {NAME: {...}}, "macro_videos": {...}[, "bootstrap": {...}]}``
        with NAME in the order nf, mo, app, mm, fused (those present). Each score holds ``micro_auc``, ``macro_auc``,
        ``by_type`` ({TYPE: auc}, types sorted, ``{}`` without typed anomalies: these three keys first, as before),
        then ``micro_ap``, ``macro_ap``, ``micro_eer``, ``macro_eer``; with ``bootstrap``, ``micro_auc_ci95``
        ([low, high]); and, for each component when ``fused`` is present, ``fused_vs_this``: ``auc_diff`` (fused
        minus this score's micro AUC), ``ci95`` (paired bootstrap interval of it, with ``bootstrap``), ``delong_z``
        and ``delong_p``. ``macro_videos`` says which videos the macro figures average: ``n_used``, ``n_skipped``,
        ``skipped_one_class`` (sorted names). ``branch_wins`` (:func:`branch_wins`) when the table has stage 2's
        scores and typed anomalies.
    """
    cols = _check_frames(frames)
    types = anomaly_types(frames)
    gt = frames["gt"].to_numpy()
    boot = bootstrap_aucs(frames, cols, int(bootstrap), int(seed)) if bootstrap > 0 else None
    scores = {}
    for c in cols:
        score = frames[c].to_numpy()
        s = {
            "micro_auc": _json_float(micro_auc(frames, c)),
            "macro_auc": _json_float(macro_auc(frames, c)),
            "by_type": {t: _json_float(type_auc(frames, c, t)) for t in types},
            "micro_ap": _json_float(average_precision(gt, score)),
            "macro_ap": _json_float(macro_ap(frames, c)),
            "micro_eer": _json_float(equal_error_rate(gt, score)),
            "macro_eer": _json_float(macro_eer(frames, c)),
        }
        if boot is not None:
            s["micro_auc_ci95"] = _interval(boot[c])
        s["supervision"] = supervision(c)
        if c != FUSED and FUSED in cols:
            diff, z, pval = delong_test(gt, frames[FUSED].to_numpy(), score)
            paired = {"auc_diff": _json_float(diff)}
            if boot is not None:
                paired["ci95"] = _interval(boot[FUSED] - boot[c])
            paired.update({"delong_z": _json_float(z), "delong_p": _json_float(pval)})
            s["fused_vs_this"] = paired
        scores[c] = s
    skipped = one_class_videos(frames)
    n_videos = int(frames["video"].nunique())
    out = {"dataset": str(dataset), "n_videos": n_videos, "n_frames": int(len(frames)), "scores": scores,
           "macro_videos": {"n_used": n_videos - len(skipped), "n_skipped": len(skipped),
                            "skipped_one_class": skipped}}
    wins = branch_wins(frames, int(bootstrap), int(seed))
    if wins:
        out["branch_wins"] = wins
    if boot is not None:
        valid = int(np.isfinite(next(iter(boot.values()))).sum()) if boot else 0
        out["bootstrap"] = {"unit": "video", "resamples": int(bootstrap), "seed": int(seed), "level": CI_LEVEL,
                            "valid_resamples": valid}
    return out


def weak_columns(frames: pd.DataFrame) -> list[str]:
    """Score columns of weakly supervised methods (trained on anomalous test videos with their video labels)."""
    return [c for c in score_columns(frames) if supervision(c) == "weak"]


def evaluate(frames: pd.DataFrame, dataset: str, bootstrap: int = 0, seed: int = 0,
             weak_split: pd.DataFrame | None = None, weak_split_name: str = "") -> dict:
    """``metrics.json``: every unsupervised score on the whole test split and, with a weak split, every score (the
    weakly supervised ones too) on the weak split's test videos, under ``weak``.

    A weakly supervised score (AR-Net) was trained on some anomalous test videos, so it is never evaluated on the
    whole test split; on the weak split's test videos every other score is evaluated too, so that its table compares
    like with like.

    Args:
        frames: frame score table (:func:`mgenet.scoring.frames.frame_scores` plus the baselines' columns).
        weak_split: the weak split (``mgenet.io.read_weak_split``): columns video, split (train / test), label.
        weak_split_name: its file, recorded in ``weak.split_file``.
    Returns:
        :func:`compute_metrics` of the unsupervised columns, with ``weak``: :func:`compute_metrics` of all columns on
        the weak test videos, plus ``split_file``, ``videos`` (sorted weak test videos) and ``n_train_videos``.
    Raises:
        MgenetError: weakly supervised columns without a weak split, or a weak split whose test videos are not test
            videos of the frame table.
    """
    weak = weak_columns(frames)
    if weak and weak_split is None:
        raise MgenetError(f"score column(s) {weak} are weakly supervised (trained on anomalous test videos) and are "
                          f"evaluated only on a weak split's test videos; set dataset.weak_split (README, 'AR-Net').")
    metrics = compute_metrics(frames.drop(columns=weak), dataset, bootstrap, seed)
    if weak_split is None:
        return metrics
    videos = sorted(weak_split.loc[weak_split["split"] == "test", "video"].astype(str))
    known = set(frames["video"].astype(str))
    stray = [v for v in videos if v not in known]
    if stray or not videos:
        raise MgenetError(f"{weak_split_name or 'weak split'}: its test video(s) {stray[:5] or '(none)'} are not test "
                          f"videos of the frame table; the weak split's test part must lie inside the test split.")
    sub = frames[frames["video"].astype(str).isin(videos)].reset_index(drop=True)
    weak_metrics = compute_metrics(sub, dataset, bootstrap, seed)
    for c, s in weak_metrics["scores"].items():
        s["anomalous_video_auc"] = _json_float(anomalous_video_auc(sub, c))
        if supervision(c) == "weak":  # a probability: 0.5 is its decision threshold
            s["false_alarm_rate"] = _json_float(false_alarm_rate(sub, c, FALSE_ALARM_THRESHOLD))
    metrics["weak"] = {**weak_metrics, "split_file": str(weak_split_name), "videos": videos,
                       "n_train_videos": int((weak_split["split"] == "train").sum())}
    return metrics


def anomalous_video_auc(frames: pd.DataFrame, name: str) -> float:
    """Micro AUC over the frames of the videos that hold an anomaly only (AR-Net's paper reports it: it leaves out
    the normal videos, whose frames are easy negatives for a video-level learner)."""
    has = frames.groupby("video")["gt"].transform("max").to_numpy() > 0
    return _auc(frames["gt"].to_numpy()[has], frames[name].to_numpy()[has])


def false_alarm_rate(frames: pd.DataFrame, name: str, threshold: float = FALSE_ALARM_THRESHOLD) -> float:
    """Share of the frames of normal videos (no anomalous frame) scored above ``threshold`` (NaN without one)."""
    normal = frames.groupby("video")["gt"].transform("max").to_numpy() == 0
    if not normal.any():
        return math.nan
    return float((frames[name].to_numpy()[normal] > threshold).mean())


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
