"""AUCs over several training seeds, as mean ± std (config ``seeds``, target ``snakemake seeds``).

Reported AUCs in this field move by several points between seeds, so a single run says little. The workflow trains
the flow and stage 2 once per seed on the same features (the backbone F_B is fixed, so features are not redrawn),
evaluates each run like the main one, and this module summarises the runs: for every score and every figure (micro,
macro, one per anomaly type, then AP, EER, RBDC / TBDC and the fused score's AUC gain over the score where the
metrics files hold them), the mean, the sample standard deviation (ddof = 1; 0 for a single seed) and each seed's
value.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from mgenet import MgenetError
from mgenet.config import FromDict

SUMMARY_COLUMNS = ["score", "figure", "mean", "std", "n_seeds"]
# Figures after the AUCs, each summarised when some metrics file holds it (files of older versions lack them):
# fused_gain is the fused score's micro AUC minus this score's (``fused_vs_this.auc_diff``).
EXTRA_FIGURES = ("micro_ap", "macro_ap", "micro_eer", "macro_eer", "rbdc", "tbdc", "fused_gain", "anomalous_video_auc",
                 "false_alarm_rate")
WEAK_SUFFIX = " (weak split)"  # a score evaluated on the weak split's test videos (metrics.json 'weak')


def seed_summary(metrics: Mapping[str, dict]) -> pd.DataFrame:
    """One row per (score, figure) over the seeds' metrics.

    Args:
        metrics: seed (as text) -> that run's parsed ``metrics.json`` (DESIGN §3), in the order to report.

    Returns:
        Columns score, figure (``micro_auc``, ``macro_auc``, ``auc_<type>``, then those of ``EXTRA_FIGURES`` some
        file holds), mean, std, n_seeds (seeds where the figure is defined), then ``seed_<s>`` per seed. Scores in
        the order of the first file, then those of its weak split's evaluation named ``<score> (weak split)``;
        figures micro, macro, types sorted, then the extra figures in their order. A figure undefined in every seed
        has NaN mean and std.

    Raises:
        MgenetError: no seed, or seeds whose files hold different scores (runs of different configurations).
    """
    if not metrics:
        raise MgenetError("no seed to summarise; set `seeds: [0, 1, 2]` in the config.")
    # the weak split's evaluation (AR-Net and every score on its test videos) as scores of their own
    metrics = {s: {**m, "scores": {**m.get("scores", {}), **{f"{c}{WEAK_SUFFIX}": v for c, v in
                                                               (m.get("weak") or {}).get("scores", {}).items()}}}
               for s, m in metrics.items()}
    names = list(metrics)
    scores = list(metrics[names[0]].get("scores", {}))
    for s in names[1:]:
        if list(metrics[s].get("scores", {})) != scores:
            raise MgenetError(f"seed {s} has scores {list(metrics[s].get('scores', {}))} but seed {names[0]} has "
                              f"{scores}; the runs come from different configurations: rerun the target that made "
                              f"them.")
    types = sorted({t for m in metrics.values() for v in m["scores"].values() for t in v.get("by_type", {})})
    extra = [f for f in EXTRA_FIGURES if any(not math.isnan(_figure(v, f)) for m in metrics.values()
                                             for v in m["scores"].values())]
    rows = []
    for score in scores:
        for figure in ["micro_auc", "macro_auc", *[f"auc_{t}" for t in types], *extra]:
            values = np.array([_figure(metrics[s]["scores"][score], figure) for s in names])
            ok = values[~np.isnan(values)]
            mean = float(ok.mean()) if len(ok) else math.nan
            std = float(ok.std(ddof=1)) if len(ok) > 1 else (0.0 if len(ok) else math.nan)
            rows.append({"score": score, "figure": figure, "mean": mean, "std": std, "n_seeds": len(ok),
                         **{f"seed_{s}": float(v) for s, v in zip(names, values)}})
    return pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *[f"seed_{s}" for s in names]])


def _figure(score: Mapping, figure: str) -> float:
    if figure.startswith("auc_"):
        v = score.get("by_type", {}).get(figure[4:])
    elif figure == "fused_gain":
        v = (score.get("fused_vs_this") or {}).get("auc_diff")
    else:
        v = score.get(figure)
    return math.nan if v is None else float(v)


def seeds_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """The summary as a markdown table: one row per score, one ``mean ± std`` column per figure."""
    figures = list(dict.fromkeys(df["figure"]))
    head = "| score | " + " | ".join(figures) + " |"
    rule = "|---|" + "|".join("---:" for _ in figures) + "|"
    body = []
    for score, g in df.groupby("score", sort=False):
        cells = []
        for f in figures:
            r = g[g["figure"] == f].iloc[0]
            cells.append("–" if math.isnan(r["mean"]) else f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f}")
        body.append(f"| {score} | " + " | ".join(cells) + " |")
    n = int(df["n_seeds"].max()) if len(df) else 0
    seeds = ", ".join(c[5:] for c in df.columns if c.startswith("seed_"))
    return "\n".join([head, rule, *body]) + f"\n\nmean ± sample std over {n} seeds ({seeds}).\n"


def compare_summaries(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("a", "b"),
                      figures: tuple[str, ...] = ()) -> pd.DataFrame:
    """Two configurations' runs over the same seeds, paired by seed: b minus a for every (score, figure).

    Every seed trains both configurations with the same random streams, so the per-seed difference removes the part
    of the spread that the seed causes in both (e.g. which motions the flow learns first); its mean, sample std and a
    95% Student-t interval over the seeds say whether b differs from a beyond the seeds' noise.

    Args:
        a, b: two :func:`seed_summary` tables (``mgenet seeds-table`` CSVs), over the same seeds.
        names: what to call a and b in the columns.
        figures: keep only these figures (all by default).

    Returns:
        Columns score, figure, ``mean_<a>``, ``mean_<b>`` (over the shared seeds), diff (mean of b − a), diff_std,
        ci_low, ci_high, n_seeds, then ``diff_<seed>`` per seed; rows in a's order, for (score, figure) pairs both
        tables hold.

    Raises:
        MgenetError: the tables share no seed or no (score, figure).
    """
    from scipy import stats

    seeds_a = [c for c in a.columns if c.startswith("seed_")]
    seeds = [c for c in seeds_a if c in b.columns]
    if not seeds:
        raise MgenetError(f"the two seed tables share no seed ({', '.join(c[5:] for c in seeds_a)} against "
                          f"{', '.join(c[5:] for c in b.columns if c.startswith('seed_'))}); run both with the same "
                          f"`seeds`.")
    merged = a.merge(b, on=["score", "figure"], suffixes=("_a", "_b"))
    if figures:
        merged = merged[merged["figure"].isin(figures)]
    if merged.empty:
        raise MgenetError("the two seed tables share no (score, figure) row; were they made by the same target?")
    rows = []
    na, nb = names
    for r in merged.itertuples(index=False):
        r = r._asdict()
        va = np.array([r[f"{s}_a"] for s in seeds], float)
        vb = np.array([r[f"{s}_b"] for s in seeds], float)
        d = vb - va
        ok = d[~np.isnan(d)]
        n = len(ok)
        mean = float(ok.mean()) if n else math.nan
        sd = float(ok.std(ddof=1)) if n > 1 else math.nan
        half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
        rows.append({"score": r["score"], "figure": r["figure"], f"mean_{na}": _nanmean(va), f"mean_{nb}": _nanmean(vb),
                     "diff": mean, "diff_std": sd, "ci_low": mean - half, "ci_high": mean + half, "n_seeds": n,
                     **{f"diff_{s[5:]}": float(v) for s, v in zip(seeds, d)}})
    return pd.DataFrame(rows)


def compare_markdown(df: pd.DataFrame, names: tuple[str, str] = ("a", "b"), digits: int = 3) -> str:
    """:func:`compare_summaries` as a markdown table: both means, the paired difference ± std and its interval."""
    na, nb = names
    lines = [f"| score | figure | {na} | {nb} | {nb} − {na} (paired) | 95% interval |", "|---|---|---:|---:|---:|---|"]
    f = f".{digits}f"
    for r in df.itertuples(index=False):
        r = r._asdict()
        ci = "–" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:+{f}}, {r['ci_high']:+{f}}]"
        sd = "" if math.isnan(r["diff_std"]) else f" ± {r['diff_std']:{f}}"
        lines.append(f"| {r['score']} | {r['figure']} | {r[f'mean_{na}']:{f}} | {r[f'mean_{nb}']:{f}} | "
                     f"{r['diff']:+{f}}{sd} | {ci} |")
    n = int(df["n_seeds"].max()) if len(df) else 0
    return "\n".join(lines) + f"\n\nper-seed differences over {n} seeds: mean ± sample std, Student-t interval.\n"


def _nanmean(v: np.ndarray) -> float:
    ok = v[~np.isnan(v)]
    return float(ok.mean()) if len(ok) else math.nan


@dataclass
class SeedsTableSettings(FromDict):
    """``--params`` of seeds-table: the dataset's name, the snakemake target that makes the runs, and a title."""

    SECTION: ClassVar[str] = "seeds table"

    dataset: str = "the dataset"
    target: str = "seeds"
    title: str = ""


def seeds_table_job(metrics: Mapping[str, str | os.PathLike], out: str | os.PathLike, md: str | os.PathLike | None,
                    s: SeedsTableSettings) -> pd.DataFrame:
    """`mgenet seeds-table`: every AUC's mean and std over the runs' metrics.json files (``metrics``: {seed: path}),
    written as CSV to ``out`` and markdown to ``md``."""
    from mgenet.io import read_named_metrics, write_summary

    read = read_named_metrics(metrics, "seed", s.target)
    df = seed_summary(read)
    write_summary(df, out, md, s.title or f"AUC over seeds, {s.dataset}", seeds_markdown)
    log = logging.getLogger("mgenet")
    for row in df[df["figure"] == "micro_auc"].itertuples(index=False):
        log.info("%-6s micro AUC %.4f +- %.4f over %d seeds", row.score, row.mean, row.std, row.n_seeds)
    log.info("%d seeds -> %s%s", len(read), out, f", {md}" if md else "")
    return df


def read_seeds_table(path: str | os.PathLike, name: str) -> pd.DataFrame:
    """An `mgenet seeds-table` CSV (``name`` is what the comparison calls it).

    Raises:
        MgenetError: the file is missing, empty, not a CSV, or lacks the columns score, figure and seed_<n>.
    """
    remake = "make it with `snakemake seeds` or `snakemake seeds_val` in that configuration"
    if not Path(path).is_file():
        raise MgenetError(f"{path}: no such seeds table ({name}); {remake}.")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise MgenetError(f"{path}: seeds table ({name}) is empty; {remake}.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise MgenetError(f"{path}: seeds table ({name}) is not a readable CSV ({str(e).strip()[:120]}); {remake}.") \
            from None
    lacking = [c for c in ("score", "figure") if c not in df.columns]
    if not any(str(c).startswith("seed_") for c in df.columns):
        lacking.append("seed_<n> columns")
    if lacking:
        raise MgenetError(f"{path}: not an `mgenet seeds-table` CSV ({name}): it lacks {', '.join(lacking)} (it has "
                          f"{', '.join(map(str, df.columns[:8]))}); {remake}.")
    return df


def seeds_compare_job(tables: Mapping[str, str | os.PathLike], out: str | os.PathLike, md: str | os.PathLike | None,
                      figures: Sequence[str] = ()) -> pd.DataFrame:
    """`mgenet seeds-compare`: two seeds tables ({name: CSV}, in order) compared per seed (:func:`compare_summaries`),
    written as CSV to ``out`` and markdown to ``md``.

    Raises:
        MgenetError: not exactly two tables, or a table is missing.
    """
    from mgenet.io import write_summary

    if len(tables) != 2:
        raise MgenetError(f"give exactly two NAME=CSV tables to compare, not {len(tables)}.")
    frames = [read_seeds_table(path, name) for name, path in tables.items()]
    held = sorted(set(frames[0]["figure"]) | set(frames[1]["figure"]))
    unknown = [f for f in figures if f not in held]
    if unknown:
        raise MgenetError(f"--figures {' '.join(unknown)}: not a figure of these tables; they hold {', '.join(held)}.")
    names = tuple(tables)
    df = compare_summaries(frames[0], frames[1], names, tuple(figures))
    write_summary(df, out, md, f"{names[1]} against {names[0]}, paired by seed", lambda d: compare_markdown(d, names))
    log = logging.getLogger("mgenet")
    for row in df[df["figure"] == "micro_auc"].itertuples(index=False):
        log.info("%-6s micro AUC %s - %s: %+.4f [%+.4f, %+.4f] over %d seeds", row.score, names[1], names[0],
                 row.diff, row.ci_low, row.ci_high, row.n_seeds)
    return df
