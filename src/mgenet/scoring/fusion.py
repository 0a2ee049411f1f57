"""From per-segment component scores to smoothed per-frame scores (DESIGN §4, STG-NF protocol).

Two steps, each a pure function on pandas tables:

1. :func:`fuse_segments` — scale the components and add the weighted sum ``fused`` (S = S_mo + λ_app S_app +
   λ_mm S_mm with the paper's weights; ``{"nf": 1.0}`` for stage 1 alone). How they are scaled is
   ``fusion.normalise`` (:data:`NORMALISATIONS`):

   - ``test_minmax`` (default): each component min-max scaled over all test segments, then summed.
   - ``sum_then_minmax``: the weighted sum of the raw components, min-max scaled once (the paper's "normalized to
     the range of 0-1 using min-max scaling" read literally; AUC-equivalent to the raw sum).
   - ``train``: each component scaled by robust statistics of its scores on the training segments,
     (x - median) / (q - median) with q its ``train_quantile`` (0.99) quantile, then summed. Fitted on a reference
     table of training segment scores, so no test statistic enters the fused score, and a new video is scaled as
     the test set is.
2. :func:`frame_scores` — give each segment's score to its middle frame, take the max over persons, fill frames that no
   segment covers with the most normal score of the test set (under ``train``, of the training segments:
   :func:`fusion_fill`), smooth per video. This reproduces STG-NF's ``get_dataset_scores`` / ``smooth_scores`` with
   the sign flipped: STG-NF scores normality (log-likelihood, min over persons, uncovered frames = max), here higher
   means more anomalous (max over persons, uncovered frames = min).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from mgenet import MgenetError

log = logging.getLogger("mgenet")

COMPONENTS = ("nf", "mo", "app", "mm")
FUSED = "fused"
# Baselines beside MGENet (scores/baselines/{method}.parquet): per-frame score columns like the components, evaluated
# and reported like them, but never fused and never given a fusion weight.
BASELINES = ("arnet", "cr", "kr", "crkr")
SCORE_ORDER = (*COMPONENTS, FUSED, *BASELINES)
# How each score learnt what is normal: "unsupervised" (training videos only) unless listed. A weakly supervised
# score trains on anomalous test videos with their video labels, so it is evaluated on the weak split's test videos
# only (:func:`supervision`).
SUPERVISION = {"arnet": "weak"}
# Table 3's level-1 measurements that stage 2 writes beside ``mo`` (f_sk - f_rgb); any of them can stand in for S_mo
# (see :func:`select_motion_score`). They stay out of the frame table: only SCORE_ORDER columns become frame scores.
MOTION_MEASURES = ("mo", "mo_fsk", "mo_frgb", "mo_sum", "mo_sim")
SEGMENT_KEYS = ("video", "person_id", "start_frame", "mid_frame")
FRAME_KEYS = ("video", "frame", "gt", "type", "subtype")
DEFAULT_SIGMAS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)  # STG-NF smooth_scores: sigma in range(1, 7), applied in turn
NORMALISATIONS = ("test_minmax", "sum_then_minmax", "train")
# `train`'s high quantile: near the top of the normal training scores, but not their maximum, which one odd training
# window (a person half out of the frame) would set on its own.
TRAIN_QUANTILE = 0.99
Scaling = dict[str, tuple[float, float]]  # column -> (offset, spread): scaled = (x - offset) / spread


def score_columns(df: pd.DataFrame) -> list[str]:
    """Score columns present in ``df``, in the canonical order nf, mo, app, mm, fused, then the baselines."""
    return [c for c in SCORE_ORDER if c in df.columns]


def supervision(name: str) -> str:
    """"unsupervised" or "weak" (trained with video labels of some test videos)."""
    return SUPERVISION.get(name, "unsupervised")


def finite_scores(values: np.ndarray, name: str = "score") -> np.ndarray:
    """Replace +inf by the largest finite value and -inf by the smallest (STG-NF does the same before its AUC).

    Raises:
        MgenetError: on NaN (a scorer bug, not a property of the video) or when no value is finite.
    """
    x = np.asarray(values, dtype=np.float64).copy()
    if x.size == 0:
        return x
    if np.isnan(x).any():
        raise MgenetError(f"score column {name!r} holds {int(np.isnan(x).sum())} NaN value(s); "
                          f"check the model that produced it (rule score_components) and rerun it.")
    finite = np.isfinite(x)
    if not finite.all():
        if not finite.any():
            raise MgenetError(f"score column {name!r} has no finite value; the model that produced it diverged.")
        x[x == np.inf] = x[finite].max()
        x[x == -np.inf] = x[finite].min()
    return x


def _scaled(x: np.ndarray, offset: float, spread: float) -> np.ndarray:
    # A component with no spread carries no ranking information: it contributes 0 rather than a division by zero.
    return (x - offset) / spread if spread > 0 else np.zeros_like(x)


def _check_normalise(normalise: str, quantile: float) -> None:
    if normalise not in NORMALISATIONS:
        raise MgenetError(f"fusion.normalise {normalise!r} is not one of {list(NORMALISATIONS)}.")
    if not 0.5 < float(quantile) <= 1.0:
        raise MgenetError(f"fusion.train_quantile must lie in (0.5, 1], got {quantile}.")


def fit_scaling(ref: pd.DataFrame, weights: Mapping[str, float], normalise: str = "test_minmax",
                quantile: float = TRAIN_QUANTILE) -> Scaling:
    """How :func:`fuse_segments` scales, fitted on the segment score table ``ref``.

    Args:
        ref: the table the statistics come from: the test segments for ``test_minmax`` and ``sum_then_minmax`` (the
            table being fused, or the test set's when one new video is scored), the training segments for ``train``.
        weights: the fusion weights; only weighted components are fitted.
        normalise: one of :data:`NORMALISATIONS`.
        quantile: ``train``'s high quantile q.

    Returns:
        column -> (offset, spread), the fused score being ``Σ_c w_c (S_c - offset_c) / spread_c`` for component keys,
        or, with the single key ``fused`` (``sum_then_minmax``), ``(Σ_c w_c S_c - offset) / spread``. ``test_minmax``:
        (min, max - min) per component; ``sum_then_minmax``: (min, max - min) of the raw weighted sum; ``train``:
        (median, q-quantile - median) per component. ±inf are replaced first (:func:`finite_scores`).

    Raises:
        MgenetError: an unknown normalisation, a bad quantile, a weighted component ``ref`` lacks, or (``train``) a
            reference without a segment.
    """
    _check_normalise(normalise, quantile)
    absent = [c for c in weights if c not in ref.columns]
    if absent:
        raise MgenetError(f"no {absent} column in the reference segment scores the fusion is scaled with (they have "
                          f"{score_columns(ref) or 'none'}).")
    if normalise == "train" and not len(ref):
        raise MgenetError("fusion.normalise train: the training segments' score table holds no segment (the "
                          "training videos yielded no person window?); check results/<dataset>/scores/"
                          "segments_train.parquet.")
    cols = {c: finite_scores(ref[c].to_numpy(), c) for c in score_columns(ref) if c in weights}
    if normalise == "sum_then_minmax":
        raw = np.zeros(len(ref))
        for c, x in cols.items():
            raw += float(weights[c]) * x
        return {FUSED: (float(raw.min()), float(raw.max() - raw.min())) if len(raw) else (0.0, 0.0)}
    out = {}
    for c, x in cols.items():
        if not x.size:
            out[c] = (0.0, 0.0)
        elif normalise == "test_minmax":
            out[c] = (float(x.min()), float(x.max() - x.min()))
        else:
            med = float(np.median(x))
            out[c] = (med, float(np.quantile(x, quantile)) - med)
            if out[c][1] <= 0:
                log.warning("fusion.normalise train: component %s has its %g quantile at its median (%g) over the "
                            "training segments, so it carries no scale and contributes 0 to the fused score", c,
                            quantile, med)
    return out


def fuse_segments(seg: pd.DataFrame, weights: Mapping[str, float], normalise: str = "test_minmax",
                  reference: pd.DataFrame | None = None, quantile: float = TRAIN_QUANTILE,
                  scaling: Scaling | None = None) -> pd.DataFrame:
    """Add the fused score, the weighted sum of the components scaled as ``normalise`` says (module docstring).

    Args:
        seg: segment score table (one row per person-window of the test videos) with one float column per component
            that ran, among ``nf``, ``mo``, ``app``, ``mm``; higher = more anomalous.
        weights: component -> weight, e.g. ``{"mo": 1.0, "app": 0.1, "mm": 0.1}``. Components of the table that have
            no weight are not fused (weight 0) but keep their own column.
        normalise: ``test_minmax``, ``sum_then_minmax`` or ``train``.
        reference: the table the scaling is fitted on (:func:`fit_scaling`): required for ``train`` (the training
            segments' scores); for the other two it defaults to ``seg`` itself and is given when ``seg`` holds one
            new video (the test set's table). Values outside its range scale outside [0, 1].
        quantile: ``train``'s high quantile.
        scaling: a scaling already fitted with :func:`fit_scaling` (on a reference table read once), used instead of
            fitting one on ``reference``.

    Returns:
        A copy of ``seg`` with ±inf replaced (see :func:`finite_scores`) and a float64 ``fused`` column.

    Raises:
        MgenetError: a weight names a component absent from the table (or from the reference) or unknown, a weight is
            not finite, no weight is given, an unknown normalisation, or ``train`` without a reference.
    """
    if not weights:
        raise MgenetError("no fusion weights given (config fusion.weights); give at least one, e.g. {nf: 1.0}.")
    unknown = [c for c in weights if c not in COMPONENTS]
    if unknown:
        raise MgenetError(f"fusion weight(s) for unknown component(s) {unknown}; components are {list(COMPONENTS)}.")
    absent = [c for c in weights if c not in seg.columns]
    if absent:
        raise MgenetError(f"fusion weight(s) given for component(s) {absent} that are not in the segment score table "
                          f"(it has {score_columns(seg) or 'none'}); enable that component or drop its weight.")
    bad = {c: w for c, w in weights.items() if not np.isfinite(float(w))}
    if bad:
        raise MgenetError(f"fusion weights must be finite numbers, got {bad}.")
    _check_normalise(normalise, quantile)
    if normalise == "train" and reference is None and scaling is None:
        raise MgenetError("fusion.normalise train scales each component by its scores on the training segments: "
                          "give their segment score table (mgenet fuse --train-scores "
                          "results/<dataset>/scores/segments_train.parquet).")
    out = seg.copy()
    for c in score_columns(out):
        if c != FUSED:
            out[c] = finite_scores(out[c].to_numpy(), c)
    if scaling is None:
        scaling = fit_scaling(out if reference is None else reference, weights, normalise, quantile)
    elif set(weights) - set(scaling) and FUSED not in scaling:
        raise MgenetError(f"no scaling for component(s) {sorted(set(weights) - set(scaling))} in the reference scores "
                          f"(they have {sorted(scaling)}).")
    fused = np.zeros(len(out), dtype=np.float64)
    for c in score_columns(out):  # the canonical order, so the sum does not depend on the order of the weights
        if c in weights:
            fused += float(weights[c]) * (out[c].to_numpy() if FUSED in scaling else
                                          _scaled(out[c].to_numpy(), *scaling[c]))
    if FUSED in scaling:
        fused = _scaled(fused, *scaling[FUSED])
    out[FUSED] = fused
    return out


def select_motion_score(seg: pd.DataFrame, measure: str = "mo") -> pd.DataFrame:
    """Use one of Table 3's level-1 measurements as S_mo: a copy of ``seg`` whose ``mo`` column is ``measure``'s.

    Raises:
        MgenetError: an unknown measure, or one the table lacks (stage 2 did not run).
    """
    if measure not in MOTION_MEASURES:
        raise MgenetError(f"fusion.motion_score {measure!r} is not a level-1 measurement; use one of "
                          f"{list(MOTION_MEASURES)}.")
    if measure == "mo":
        return seg
    if measure not in seg.columns:
        raise MgenetError(f"fusion.motion_score {measure!r}: the segment score table has no such column (it has "
                          f"{list(seg.columns)}); it is written by rule score_components when stage 2 is enabled.")
    return seg.assign(mo=seg[measure])


def fuse_with(seg: pd.DataFrame, fusion: Mapping, train: pd.DataFrame | None = None) -> pd.DataFrame:
    """The segment table as rule fuse_scores fuses it: ``fusion.motion_score`` as S_mo (:func:`select_motion_score`),
    then the fused column of ``fusion.weights`` scaled as ``fusion.normalise`` says (:func:`fuse_segments`). ``train``,
    the training segments' scores (the same measure selected), is the reference of ``normalise: train`` and is not
    read by the other normalisations, which scale over ``seg``."""
    measure = fusion.get("motion_score", "mo")
    normalise = fusion.get("normalise", "test_minmax")
    ref = select_motion_score(train, measure) if normalise == "train" and train is not None else None
    return fuse_segments(select_motion_score(seg, measure), fusion["weights"], normalise, ref,
                         float(fusion.get("train_quantile", TRAIN_QUANTILE)))


def fusion_fill(fusion: Mapping, train: pd.DataFrame | None) -> dict[str, float] | None:
    """The score of frames that no segment covers, for :func:`frame_scores`'s ``fill``.

    ``None`` (the lowest frame score of the table being scored, the test set's: STG-NF's protocol) except under
    ``fusion.normalise: train``, where it is the lowest frame score of the training segments, every column (the
    components' raw scores and ``fused`` scaled as the test set's is): a frame without a person is then as normal as
    the most normal training frame, and nothing in the frame scores depends on a test statistic.
    """
    if fusion.get("normalise", "test_minmax") != "train":
        return None
    if train is None:
        raise MgenetError("fusion.normalise train: the training segments' scores are needed for the fill of frames "
                          "without a person too (mgenet fuse --train-scores).")
    return lowest_frame_scores(fuse_with(train, fusion, train))


def smooth(x: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Apply ``gaussian_filter1d`` with each sigma in turn (STG-NF's smooth_scores); empty ``sigmas`` = identity."""
    y = np.asarray(x, dtype=np.float64)
    for s in sigmas:
        y = gaussian_filter1d(y, sigma=float(s))
    return y


def _check_inputs(seg: pd.DataFrame, videos: pd.DataFrame, gts: Mapping[str, np.ndarray],
                  sigmas: Sequence[float]) -> None:
    missing = [c for c in ("video", "mid_frame") if c not in seg.columns]
    if missing:
        raise MgenetError(f"segment score table lacks column(s) {missing}.")
    if not score_columns(seg):
        raise MgenetError(f"segment score table has no score column (expected some of {list(SCORE_ORDER)}).")
    if not {"video", "frames"} <= set(videos.columns):
        raise MgenetError("video table needs columns 'video' and 'frames'.")
    if videos["video"].duplicated().any():
        dup = sorted(videos.loc[videos["video"].duplicated(), "video"].astype(str).unique())
        raise MgenetError(f"video table lists video(s) {dup} more than once.")
    known = set(videos["video"].astype(str))
    stray = sorted(set(seg["video"].astype(str)) - known)
    if stray:
        raise MgenetError(f"segment scores for video(s) {stray[:5]} that are not test videos of the manifest; "
                          f"rerun score_components after changing the dataset.")
    for v, n in zip(videos["video"].astype(str), videos["frames"].astype(int)):
        if v not in gts:
            raise MgenetError(f"no ground-truth mask for test video {v!r}.")
        if len(gts[v]) != n:
            raise MgenetError(f"ground truth of video {v!r} has {len(gts[v])} frames, the manifest says {n}.")
    if any(not (np.isfinite(float(s)) and float(s) > 0) for s in sigmas):
        raise MgenetError(f"smoothing sigmas must be positive numbers, got {list(sigmas)}; use [] for no smoothing.")


def _frame_types(video: str, gt: np.ndarray, intervals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame type/subtype of one video; "" where the frame is normal or no interval covers it."""
    n = len(gt)
    types = np.full(n, "", dtype=object)
    subtypes = np.full(n, "", dtype=object)
    for row in intervals.itertuples(index=False):
        start, end = int(row.start), int(row.end)
        if not 0 <= start <= end < n:
            raise MgenetError(f"anomaly interval {start}..{end} (end inclusive) of video {video!r} lies outside its "
                              f"{n} frames; fix the interval table.")
        # Table order decides overlaps: a later row overwrites. Normal frames stay untyped whatever the table says,
        # so the per-type AUCs never count a GT-normal frame as anomalous.
        idx = np.arange(start, end + 1)
        idx = idx[gt[idx] == 1]
        types[idx] = str(row.type)
        subtypes[idx] = str(row.subtype)
    return types, subtypes


def lowest_frame_scores(seg: pd.DataFrame) -> dict[str, float]:
    """The score :func:`frame_scores` gives frames that no segment covers, per score column: the lowest frame score
    over every video of ``seg``, a frame's score being the max over the segments landing on it (0 for a column
    without segments)."""
    keys = [seg["video"].astype(str).to_numpy(), seg["mid_frame"].to_numpy()]
    out = {}
    for c in score_columns(seg):
        x = pd.Series(finite_scores(seg[c].to_numpy(), c))
        out[c] = float(x.groupby(keys).max().min()) if len(x) else 0.0
    return out


def frame_scores(seg: pd.DataFrame, videos: pd.DataFrame, gts: Mapping[str, np.ndarray], intervals: pd.DataFrame,
                 sigmas: Sequence[float] = DEFAULT_SIGMAS, fill: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per-frame scores of every test video, for every score column of ``seg`` (components and ``fused``).

    Each segment's score goes to its ``mid_frame``; a frame takes the max over the segments (persons) landing on it.
    Frames no segment covers get the lowest frame score of that column over the whole test set: after the max over
    persons, over all videos, as STG-NF fills its uncovered frames with the most normal frame score. A video with no
    person at all therefore gets that score everywhere (and a column with no segment at all is 0 everywhere). Each
    video is then smoothed on its own (:func:`smooth`).

    Args:
        seg: segment score table (see :func:`fuse_segments`); needs ``video``, ``mid_frame`` and score columns.
        videos: every test video with its frame count: columns ``video``, ``frames``.
        gts: video -> uint8 mask (1 = anomalous) of length ``frames``.
        intervals: anomalous intervals (``mgenet.io.INTERVAL_COLUMNS``, ``end`` inclusive); may be empty. Rows for
            videos outside ``videos`` (e.g. training videos) are ignored.
        sigmas: gaussian sigmas applied in turn; ``[]`` for no smoothing.
        fill: score column -> the score of uncovered frames, instead of the lowest frame score of ``seg``
            (:func:`lowest_frame_scores` of a reference table, e.g. the test set's when ``seg`` holds one new video).

    Returns:
        The frame table, videos sorted by name: ``video, frame, gt, type, subtype`` then one float64 column per score
        column in the order nf, mo, app, mm, fused.

    Raises:
        MgenetError: unknown videos, mismatched GT lengths, a ``mid_frame`` outside its video, bad intervals or sigmas.
    """
    _check_inputs(seg, videos, gts, sigmas)
    cols = score_columns(seg)
    rows_of = seg["video"].astype(str).groupby(seg["video"].astype(str).to_numpy(), sort=False).indices
    mids = seg["mid_frame"].to_numpy().astype(np.int64)
    raw = {c: finite_scores(seg[c].to_numpy(), c) for c in cols}
    n_frames = dict(zip(videos["video"].astype(str), videos["frames"].astype(int)))
    order = sorted(n_frames)

    # Pass 1: max over persons at each covered frame; uncovered frames stay NaN until the global fill is known.
    per_video: dict[str, dict[str, np.ndarray]] = {}
    for v in order:
        n = n_frames[v]
        rows = rows_of.get(v, np.empty(0, dtype=np.int64))
        m = mids[rows]
        if ((m < 0) | (m >= n)).any():
            bad = int(m[(m < 0) | (m >= n)][0])
            raise MgenetError(f"video {v!r}: a segment's mid_frame {bad} is outside its {n} frames; "
                              f"the segments were built from another version of the video (rerun build_segments).")
        per_video[v] = {}
        for c in cols:
            arr = np.full(n, -np.inf)
            np.maximum.at(arr, m, raw[c][rows])
            arr[np.isneginf(arr)] = np.nan
            per_video[v][c] = arr
    fill = {**lowest_frame_scores(seg), **(fill or {})}

    # Pass 2: fill, smooth, assemble.
    parts = []
    iv = intervals.assign(video=intervals["video"].astype(str)) if len(intervals) else intervals
    for v in order:
        gt = np.asarray(gts[v]).astype(np.uint8).reshape(-1)
        types, subtypes = _frame_types(v, gt, iv[iv["video"] == v] if len(iv) else iv)
        part = {"video": np.full(len(gt), v, dtype=object), "frame": np.arange(len(gt), dtype=np.int64), "gt": gt,
                "type": types, "subtype": subtypes}
        for c in cols:
            arr = per_video[v][c]
            arr[np.isnan(arr)] = fill[c]
            part[c] = smooth(arr, sigmas)
        parts.append(pd.DataFrame(part))
    if not parts:
        raise MgenetError("no test video to score (the manifest has no video with split 'test').")
    out = pd.concat(parts, ignore_index=True)
    return out[[*FRAME_KEYS, *cols]]


BASELINE_KEYS = ("video", "frame")


def add_baselines(frames: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                  sigmas: Sequence[float] = DEFAULT_SIGMAS) -> pd.DataFrame:
    """The frame table with the baselines' per-frame scores added as columns, smoothed like every component.

    Args:
        frames: the frame table (:func:`frame_scores`): every frame of every test video.
        tables: file name -> a baseline's raw per-frame scores (higher = more anomalous): columns ``video``,
            ``frame`` and one or more of :data:`BASELINES`, one row per frame of each test video.
        sigmas: the gaussian sigmas applied in turn per video (the same as the components').

    Returns:
        A copy of ``frames`` with one float64 column per baseline column, in :data:`SCORE_ORDER`.

    Raises:
        MgenetError: naming the file: no or an unknown score column, a column two files give, rows that are not
            exactly the test videos' frames (missing, extra or repeated), NaN or no finite value.
    """
    out = frames.copy()
    keys = pd.MultiIndex.from_arrays([frames["video"].astype(str), frames["frame"].astype(np.int64)])
    n_of = frames.groupby("video", sort=False).size()
    given: dict[str, str] = {}
    for name, df in tables.items():
        missing = [c for c in BASELINE_KEYS if c not in df.columns]
        if missing:
            raise MgenetError(f"{name}: baseline score table lacks column(s) {missing}; rerun the rule that made it.")
        cols = [c for c in df.columns if c not in BASELINE_KEYS]
        unknown = [c for c in cols if c not in BASELINES]
        if unknown or not cols:
            raise MgenetError(f"{name}: baseline score table has column(s) {unknown or 'none'} beside video, frame; "
                              f"a baseline's columns are among {list(BASELINES)}.")
        twice = [c for c in cols if c in given or c in frames.columns]
        if twice:
            source = given.get(twice[0], "the frame table")
            raise MgenetError(f"{name}: baseline column(s) {twice} also come from {source}; each baseline writes its "
                              f"own columns once.")
        own = pd.MultiIndex.from_arrays([df["video"].astype(str), df["frame"].astype(np.int64)])
        if own.has_duplicates:
            v, f = own[own.duplicated()][0]
            raise MgenetError(f"{name}: video {v!r} frame {f} has more than one row; rerun the rule that made it.")
        if len(own) != len(keys) or not keys.isin(own).all():
            lacking = keys[~keys.isin(own)]
            extra = own[~own.isin(keys)]
            what = (f"lacks video {lacking[0][0]!r} frame {lacking[0][1]} ({len(lacking)} frames missing)"
                    if len(lacking) else f"has video {extra[0][0]!r} frame {extra[0][1]}, which is not a test frame "
                                         f"({len(extra)} such rows)")
            raise MgenetError(f"{name}: the baseline's scores must cover exactly the {len(keys)} frames of the "
                              f"{len(n_of)} test videos, but it {what}; rerun its rules after changing the dataset.")
        aligned = df.set_axis(own).reindex(keys)
        for c in cols:
            values = aligned[c].to_numpy(dtype=np.float64)
            if np.isnan(values).any():
                raise MgenetError(f"{name}: baseline column {c!r} holds {int(np.isnan(values).sum())} NaN value(s); "
                                  f"rerun the rule that made it (its model diverged or read a bad input).")
            raw = finite_scores(values, c)
            sm = np.empty_like(raw)
            lo = 0
            for n in n_of.to_numpy():  # frames holds each video's frames together, in order
                sm[lo:lo + n] = smooth(raw[lo:lo + n], sigmas)
                lo += n
            out[c] = sm
            given[c] = name
    rest = [c for c in out.columns if c not in score_columns(out)]
    return out[[*rest, *score_columns(out)]]
