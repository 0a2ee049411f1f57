"""From per-segment scores to smoothed per-frame scores (DESIGN §4, STG-NF protocol), step 2 of two (step 1, the
fusion of the components, is :mod:`mgenet.scoring.fusion`), pure functions on pandas tables:

:func:`frame_scores` — give each segment's score to its middle frame, take the max over persons, fill frames that no
segment covers with the most normal score of the test set (under ``train``, of the training segments:
:func:`fusion_fill`), smooth per video. This reproduces STG-NF's ``get_dataset_scores`` / ``smooth_scores`` with
the sign flipped: STG-NF scores normality (log-likelihood, min over persons, uncovered frames = max), here higher
means more anomalous (max over persons, uncovered frames = min).

:func:`add_baselines` adds the baselines' per-frame scores, smoothed the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from mgenet import MgenetError
from mgenet.scoring.fusion import BASELINES, SCORE_ORDER, FusionSettings, finite_scores, fuse_with, score_columns

FRAME_KEYS = ("video", "frame", "gt", "type", "subtype")
DEFAULT_SIGMAS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)  # STG-NF smooth_scores: sigma in range(1, 7), applied in turn


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
        seg: segment score table (see :func:`~mgenet.scoring.fusion.fuse_segments`); needs ``video``,
            ``mid_frame`` and score columns.
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


@dataclass
class FuseSettings(FusionSettings):
    """``params_json("fusion", "score")``: the fusion section and the frame scores' smoothing widths."""

    SECTION: ClassVar[str] = "fusion / score"

    smoothing_sigmas: list[float] | None = None  # None: DEFAULT_SIGMAS

    def mapping(self) -> dict[str, Any]:
        return {k: v for k, v in super().mapping().items() if k != "smoothing_sigmas"}


def fuse_scores_job(scores: str, manifest: str, out: str, s: FuseSettings, split: str = "test",
                    intervals: str = "", train_scores: str = "", baselines: list[str] | None = None) -> pd.DataFrame:
    """`mgenet fuse`: the segment scores fused (scaled by the test segments, or by the training ones at
    ``train_scores``), turned into smoothed frame scores of the ``split``'s videos with the baselines' added, and
    written to ``out``.

    Raises:
        MgenetError: the manifest has no video of ``split``, or the training scores are needed and missing.
    """
    import logging

    from mgenet.io import load_gt_mask, read_intervals, read_manifest, read_parquet, write_parquet
    from mgenet.scoring.components import read_train_scores
    
    fusion = s.mapping()
    ref = read_train_scores(train_scores, s.normalise)
    seg = fuse_with(read_parquet(scores), fusion, ref)
    man = read_manifest(manifest)
    test = man[man["split"] == split]
    if test.empty:
        raise MgenetError(f"{manifest}: no video of split {split!r} to fuse; the dataset has splits "
                          f"{sorted(man['split'].unique())}.")
    gts = {r.video: load_gt_mask(r.gt_path, int(r.frames)) for r in test.itertuples()}
    sigmas = list(DEFAULT_SIGMAS if s.smoothing_sigmas is None else s.smoothing_sigmas)
    frames = frame_scores(seg, test[["video", "frames"]], gts, read_intervals(intervals), sigmas,
                          fill=fusion_fill(fusion, ref))
    if baselines:
        frames = add_baselines(frames, {b: read_parquet(b) for b in baselines}, sigmas)
    write_parquet(frames, out)
    logging.getLogger("mgenet").info("%d frames of %d %s videos -> %s", len(frames), len(test), split, out)
    return frames
