"""`snakemake tune`: settings chosen on the validation split only (issue 17).

The grid (config ``tune.grid``) maps dotted config keys to the values to try. Keys under ``fusion.`` only re-fuse the
segment scores (λ_app, λ_mm, the normalisation, the motion measure): every combination of them is scored. Keys under
``stage2.`` change the trained model (temperature, top_k, M^r's start, the matching options): each of their values is
tried one key at a time around the main config (a candidate = the main config with one key changed), each candidate
is trained and scores the validation segments, and the whole fusion grid is scored on each. At most
``tune.max_retrain`` candidates are trained: a grid that needs more is refused, not cut short.

Every figure is the validation split's; the test split is never read. The chosen row (best ``tune.metric`` of the
fused score; ties keep the earlier row, and the main config's settings come first) is written as a partial config,
``tuned.yaml``, that ``--configfile`` merges over config.yaml.

With ``tune.seeds``, every candidate is trained (or rescored) under each listed training seed, every (candidate,
fusion setting) is scored on each seed's tables (named ``NAME@SEED``), and the choice is made on the mean of the metric
over the seeds (:func:`mean_over_seeds`): one seed's best setting need not hold over seeds.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mgenet import MgenetError
from mgenet.config import FromDict

FUSION_KEYS = ("fusion.normalise", "fusion.motion_score", "fusion.train_quantile")  # and fusion.weights.<component>
METRICS = ("micro_auc", "macro_auc")
MAIN = "main"  # the candidate that is the main config's own stage-2 model
SEED_SEP = "@"  # NAME@SEED: a candidate's tables under one training seed (tune.seeds); candidate names have no "@"


def _check_key(key: str) -> str:
    if key in FUSION_KEYS or re.fullmatch(r"fusion\.weights\.[a-z_]+", key):
        return "fusion"
    if key == "stage2.mm_form" or re.fullmatch(r"stage2\.(model|train)\.[a-z_0-9]+", key):
        return "stage2"
    raise MgenetError(f"tune.grid key {key!r} is not tunable: use fusion.weights.<component>, fusion.normalise, "
                      f"fusion.motion_score, fusion.train_quantile (re-fused), stage2.mm_form (rescored) or "
                      f"stage2.model.<key> / stage2.train.<key> (retrained).")


def split_grid(grid: Mapping[str, Sequence[Any]]) -> tuple[dict[str, list], dict[str, list]]:
    """The grid's fusion keys and its stage-2 keys, each with its list of values (in the grid's order).

    Raises:
        MgenetError: an unknown key, or a key with no value.
    """
    fusion, stage2 = {}, {}
    for key, values in grid.items():
        if values is None:  # left out by a config file over config.yaml's grid
            continue
        kind = _check_key(key)
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise MgenetError(f"tune.grid.{key} lists no value; give at least one, or drop the key.")
        (fusion if kind == "fusion" else stage2)[key] = values
    return fusion, stage2


def set_key(cfg: Mapping, dotted: str, value: Any) -> dict:
    """A copy of nested ``cfg`` with ``dotted`` (a.b.c) set to ``value``."""
    head, _, rest = dotted.partition(".")
    out = dict(cfg)
    out[head] = set_key(cfg.get(head, {}) or {}, rest, value) if rest else value
    return out


def get_key(cfg: Mapping, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def fusion_combinations(fusion_grid: Mapping[str, Sequence[Any]], fusion: Mapping) -> list[dict]:
    """Every combination of the grid's fusion values, each as a full fusion section (``fusion`` with the keys set);
    the main config's own combination first."""
    keys = list(fusion_grid)
    own = tuple(get_key({"fusion": fusion}, k) for k in keys)
    combos = list(itertools.product(*(fusion_grid[k] for k in keys)))
    combos.sort(key=lambda c: c != own)  # stable: the main settings first, then the grid's order
    out = []
    for combo in combos:
        cfg: dict = {"fusion": json.loads(json.dumps(fusion))}
        for k, v in zip(keys, combo):
            cfg = set_key(cfg, k, v)
        out.append(cfg["fusion"])
    return out


def _drop_zero_weights(fusion: Mapping) -> dict:
    out = dict(fusion)
    out["weights"] = {c: w for c, w in fusion["weights"].items() if float(w) != 0.0}
    if not out["weights"]:
        raise MgenetError("a tune.grid combination gives every fusion weight 0; keep one component weighted.")
    return out


def score_grid(candidates: Mapping[str, pd.DataFrame], videos: pd.DataFrame, gts: Mapping[str, np.ndarray],
               intervals: pd.DataFrame, combos: Sequence[Mapping], sigmas: Sequence[float],
               train_scores: Mapping[str, pd.DataFrame | None] | None = None) -> pd.DataFrame:
    """The validation figures of every (candidate, fusion combination): one row each, best first.

    Args:
        candidates: candidate name -> its validation segment scores (``MAIN`` = the main model's).
        videos, gts, intervals: the validation videos (``video``, ``frames``), their masks and the interval table.
        combos: full fusion sections (:func:`fusion_combinations`).
        sigmas: the smoothing of rule fuse_scores (config score.smoothing_sigmas).
        train_scores: candidate name -> its training segment scores, for ``normalise: train``.

    Returns:
        Columns ``candidate``, ``fusion`` (JSON), the fused score's ``micro_auc``, ``macro_auc`` and per-type AUCs
        (``auc_<type>``), and ``rank`` (1 = best micro AUC).
    """
    from mgenet.evaluation.metrics import anomaly_types, macro_auc, micro_auc, type_auc
    from mgenet.scoring.frames import frame_scores, fusion_fill
    from mgenet.scoring.fusion import fuse_with

    rows = []
    for name, seg in candidates.items():
        for fusion in combos:
            fz = _drop_zero_weights(fusion)
            ref = (train_scores or {}).get(name)
            if fz.get("normalise") == "train" and ref is None:
                raise MgenetError(f"tune: fusion.normalise train for candidate {name!r} needs its training segment "
                                  f"scores (mgenet tune --train-scores {name}=PATH).")
            fused = fuse_with(seg, fz, ref)
            fill = fusion_fill(fz, ref)
            frames = frame_scores(fused[["video", "mid_frame", "fused"]], videos, gts, intervals, sigmas,
                                  fill={"fused": fill["fused"]} if fill else None)
            row = {"candidate": name, "fusion": json.dumps(fusion, sort_keys=True),
                   "micro_auc": micro_auc(frames, "fused"), "macro_auc": macro_auc(frames, "fused")}
            for t in anomaly_types(frames):
                row[f"auc_{t}"] = type_auc(frames, "fused", t)
            rows.append(row)
    return pd.DataFrame(rows)


def choose(table: pd.DataFrame, metric: str = "micro_auc") -> pd.DataFrame:
    """``table`` sorted best ``metric`` first (stable: ties keep the main settings, which come first), with
    ``chosen`` marking the first row."""
    if metric not in METRICS:
        raise MgenetError(f"tune.metric {metric!r}: use one of {list(METRICS)}.")
    if table.empty:
        raise MgenetError("the tuning grid is empty; give tune.grid at least one key.")
    if table[metric].isna().all():
        raise MgenetError(f"no validation {metric} is defined (the validation split needs normal and anomalous "
                          f"frames); check its ground truth.")
    out = table.assign(_m=table[metric].fillna(-np.inf)).sort_values("_m", ascending=False, kind="stable")
    out = out.drop(columns="_m").reset_index(drop=True)
    out.insert(0, "chosen", np.arange(len(out)) == 0)
    return out


def by_seed(named: Mapping[str, Any], seeds: Sequence[int], what: str,
            complete: bool = True) -> dict[int | None, dict[str, Any]]:
    """Tables named ``NAME@SEED`` grouped by training seed: {seed: {NAME: table}}, in ``seeds``' order. Without
    seeds, the names are taken as they are, under the one key ``None`` (the main seed's tables, as before seeds).

    Args:
        named: table name -> table (or its path).
        seeds: the training seeds (``tune.seeds``); empty: none.
        what: the tables' command-line flag, for errors.
        complete: every seed must have the same candidates (the validation tables; the training tables are only
            needed where a setting normalises by them, which :func:`score_grid` checks).

    Raises:
        MgenetError: a name without a listed seed (or with one when none is listed), or, with ``complete``, a
            candidate missing under some seed.
    """
    if not seeds:
        seeded = [k for k in named if SEED_SEP in k]
        if seeded:
            raise MgenetError(f"{what} {seeded[0]}: a table of one seed, but the tune settings list no seeds.")
        return {None: dict(named)}
    out: dict[int | None, dict[str, Any]] = {s: {} for s in seeds}
    for key, table in named.items():
        name, sep, seed = key.rpartition(SEED_SEP)
        if not sep or not name or not re.fullmatch(r"-?[0-9]+", seed) or int(seed) not in out:
            raise MgenetError(f"{what} {key}: give NAME{SEED_SEP}SEED=PATH, SEED one of the tune seeds {list(seeds)}.")
        out[int(seed)][name] = table
    if complete:
        names = list(dict.fromkeys(n for tables in out.values() for n in tables))
        for s, tables in out.items():
            missing = [n for n in names if n not in tables]
            if missing:
                raise MgenetError(f"{what}: no table of candidate {missing[0]!r} under seed {s}; every candidate "
                                  f"is scored under every tune seed.")
            out[s] = {n: tables[n] for n in names}  # one order for every seed: their tables' rows line up
    return out


def mean_over_seeds(tables: Mapping[int, pd.DataFrame], metric: str = "micro_auc") -> pd.DataFrame:
    """One row per (candidate, fusion setting) of per-seed :func:`score_grid` tables: every figure's mean over the
    seeds (NaN where some seed's is undefined), and for ``metric`` also its sample standard deviation (ddof 1; 0 for
    one seed) and each seed's figure, as ``<metric>_std`` and ``<metric>_seed<s>`` after ``<metric>``.

    Raises:
        MgenetError: no table, or tables whose rows are not the same (candidate, fusion) pairs in the same order.
    """
    if not tables:
        raise MgenetError("tune: no seed's table to average; list at least one seed in tune.seeds.")
    seeds = list(tables)
    first = tables[seeds[0]]
    keys = first[["candidate", "fusion"]].reset_index(drop=True)
    for s in seeds[1:]:
        if not tables[s][["candidate", "fusion"]].reset_index(drop=True).equals(keys):
            raise MgenetError(f"tune: seed {s}'s table scores other settings than seed {seeds[0]}'s.")
    figures = [c for c in first.columns if c not in ("candidate", "fusion")]
    stack = np.stack([tables[s][figures].to_numpy(dtype=float) for s in seeds])  # seeds x rows x figures
    out = keys.copy()
    for j, fig in enumerate(figures):
        out[fig] = stack[:, :, j].mean(axis=0)
        if fig == metric:
            values = stack[:, :, j]
            out[f"{fig}_std"] = values.std(axis=0, ddof=1) if len(seeds) > 1 else np.zeros(len(out))
            for i, s in enumerate(seeds):
                out[f"{fig}_seed{s}"] = values[i]
    return out


def tuned_config(best: pd.Series, overrides: Mapping[str, Mapping]) -> dict:
    """The chosen row as a partial config: its candidate's stage-2 override and its fusion section."""
    out = json.loads(json.dumps(overrides.get(str(best["candidate"]), {})))
    out["fusion"] = json.loads(best["fusion"])
    return out


@dataclass
class TuneSettings(FromDict):
    """``tune_params``: the grid, the metric that chooses, the fusion section the grid varies, the smoothing widths
    and each stage-2 candidate's config override."""

    SECTION: ClassVar[str] = "tune"

    fusion: dict = field(default_factory=dict)  # passed on as sent: the table's fusion column is built from it
    grid: dict = field(default_factory=dict)
    metric: str = "micro_auc"
    smoothing_sigmas: list[float] | None = None  # None: scoring.frames' DEFAULT_SIGMAS
    overrides: dict = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)  # tune.seeds: tables named NAME@SEED, chosen on the mean; []: none
    configfiles: list[str] = field(default_factory=list)  # the run's --configfile files, for tuned.yaml's command

    def __post_init__(self) -> None:
        self.seeds = [int(x) for x in self.seeds]
        if len(set(self.seeds)) != len(self.seeds):
            raise MgenetError(f"tune.seeds {self.seeds} lists a seed twice.")


def _over_config_yaml(configfiles: Sequence[str], tuned: str) -> list[str]:
    """The config files tuned.yaml goes on top of: config.yaml (which the Snakefile loads first), then the run's own,
    without tuned.yaml itself (a run that already applies an earlier tuned.yaml)."""
    own = [f for f in configfiles if os.path.normpath(f) != os.path.normpath(tuned)]
    return own if own and Path(own[0]).name == "config.yaml" else ["config.yaml", *own]


def tuned_yaml(best: pd.Series, overrides: Mapping[str, Mapping], metric: str, path: str,
               seeds: Sequence[int] = (), configfiles: Sequence[str] = ()) -> str:
    """The text of tuned.yaml (written at ``path``): the chosen settings, a partial config for ``--configfile``,
    under a header naming the best row's figure (with ``seeds``, its mean and std over those training seeds) and the
    command that applies it over the run's own config files (``configfiles``; config.yaml alone without)."""
    import yaml

    figure = f"{metric} {best[metric]:.4f}"
    if seeds:
        figure = (f"mean {metric} {best[metric]:.4f} ± {best[f'{metric}_std']:.4f} over training seeds "
                  f"{', '.join(str(x) for x in seeds)}")
    return ("# Chosen by `snakemake tune` on the validation split (eval/tuning.csv, best row: "
            f"{figure}).\n"
            "# Use it with: snakemake --configfile "
            + " ".join(shlex.quote(f) for f in _over_config_yaml(configfiles, path)) + " " + shlex.quote(str(path))
            + "\n"
            + yaml.safe_dump(tuned_config(best, overrides), sort_keys=True))


def tune_job(candidates: Mapping[str, str], train_scores: Mapping[str, str], manifest: str, out: str, tuned: str,
             s: TuneSettings, intervals: str = "") -> pd.DataFrame:
    """Score every candidate's validation segment scores under every fusion setting of the grid, on the validation
    split only; write the table (best first) to ``out`` and the chosen settings to ``tuned``. With ``s.seeds`` the
    tables are named ``NAME@SEED`` and the rows are ranked by the mean over the seeds (:func:`mean_over_seeds`).

    Raises:
        MgenetError: the dataset has no validation split.
    """
    import logging
    import time

    from mgenet.io import atomic_path, load_gt_mask, read_intervals, read_manifest, read_parquet
    from mgenet.scoring.frames import DEFAULT_SIGMAS

    man = read_manifest(manifest)
    val = man[man["split"] == "val"]
    if val.empty:
        raise MgenetError(f"{manifest}: the dataset has no validation split (split val), so there is nothing to "
                          f"tune on; ShanghaiTech has none: keep the documented defaults, or add pose/val/ videos.")
    fusion_grid, _ = split_grid(s.grid)
    combos = fusion_combinations(fusion_grid, s.fusion)
    cand_paths = by_seed(candidates, s.seeds, "--candidates")
    train_paths = by_seed(train_scores, s.seeds, "--train-scores", complete=False)
    gts = {r.video: load_gt_mask(r.gt_path, int(r.frames)) for r in val.itertuples()}
    sigmas = list(DEFAULT_SIGMAS if s.smoothing_sigmas is None else s.smoothing_sigmas)
    t0 = time.time()
    tables = {}
    for seed, paths in cand_paths.items():
        cands = {name: read_parquet(path) for name, path in paths.items()}
        train = {name: read_parquet(path) for name, path in train_paths.get(seed, {}).items()}
        tables[seed] = score_grid(cands, val[["video", "frames"]], gts, read_intervals(intervals), combos, sigmas,
                                  train_scores=train or None)
    table = choose(mean_over_seeds(tables, s.metric) if s.seeds else tables[None], s.metric)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(tuned) as tmp:
        tmp.write_text(tuned_yaml(table.iloc[0], s.overrides, s.metric, tuned, s.seeds, s.configfiles))
    over = f" x {len(s.seeds)} training seed(s), ranked by the mean," if s.seeds else ""
    logging.getLogger("mgenet").info(
        "%d candidate(s) x %d fusion setting(s)%s scored on %d validation videos in %.1f s; best %s %s: %s",
        len(cands), len(combos), over, len(val), time.time() - t0, table.iloc[0]["candidate"], table.iloc[0]["fusion"],
        f"{table.iloc[0][s.metric]:.4f}")
    return table
