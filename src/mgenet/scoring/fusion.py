"""Fusion of per-segment component scores (DESIGN §4): step 1 of two from segment scores to smoothed per-frame
scores (STG-NF protocol), a pure function on pandas tables.

:func:`fuse_segments` — scale the components and add the weighted sum ``fused`` (S = S_mo + λ_app S_app +
λ_mm S_mm with the paper's weights; ``{"nf": 1.0}`` for stage 1 alone). How they are scaled is
``fusion.normalise`` (:data:`NORMALISATIONS`):

- ``test_minmax`` (default): each component min-max scaled over all test segments, then summed.
- ``sum_then_minmax``: the weighted sum of the raw components, min-max scaled once (the paper's "normalized to
  the range of 0-1 using min-max scaling" read literally; AUC-equivalent to the raw sum).
- ``train``: each component scaled by robust statistics of its scores on the training segments,
  (x - median) / (q - median) with q its ``train_quantile`` (0.99) quantile, then summed. Fitted on a reference
  table of training segment scores, so no test statistic enters the fused score, and a new video is scaled as
  the test set is.

Step 2, from segment scores to frame scores, is :mod:`mgenet.scoring.frames`. This module also names the scores
(:data:`SCORE_ORDER`) and how each learnt what is normal (:func:`supervision`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mgenet import MgenetError
from mgenet.config import FromDict

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


@dataclass
class FusionSettings(FromDict):
    """config.yaml ``fusion``: how the component scores are scaled and weighted into one."""

    SECTION: ClassVar[str] = "fusion"

    weights: dict = field(default_factory=dict)
    motion_score: str = "mo"
    normalise: str = "test_minmax"
    train_quantile: float | None = None  # None: TRAIN_QUANTILE

    def __post_init__(self) -> None:
        bad = {k: v for k, v in (self.weights or {}).items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0}
        if bad:  # a negative weight would invert its component's score
            raise ValueError(f"fusion.weights {bad}: every weight must be a number >= 0")
        if self.weights and not any(v > 0 for v in self.weights.values()):
            # the fused score would be 0 on every frame: AUC exactly 0.5, reported as if it meant something
            raise ValueError(f"fusion.weights {self.weights}: every fusion weight 0 makes the fused score constant; "
                             f"give at least one component a positive weight")

    def mapping(self) -> dict[str, Any]:
        """The mapping :func:`fuse_with` reads (a value left out takes its default there)."""
        return {k: v for k, v in asdict(self).items() if v is not None}
