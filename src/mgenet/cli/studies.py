"""Verbs of workflow/rules/tune.smk, ablation.smk and seeds.smk: tune, ablation-table, seeds-table, seeds-compare."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mgenet import MgenetError
from mgenet.cli.common import AddVerb, log, named_paths, settings, write_table
from mgenet.config import FromDict


@dataclass
class AblationTableParams(FromDict):
    """``--params`` of ablation-table: the dataset's name, each variant's description and fusion section, and the
    score the table shows."""

    SECTION: ClassVar[str] = "ablation table"

    dataset: str = "the dataset"
    descriptions: dict = field(default_factory=dict)
    fusion: dict = field(default_factory=dict)
    score: str = "fused"


@dataclass
class SeedsTableParams(FromDict):
    """``--params`` of seeds-table: the dataset's name, the snakemake target that makes the runs, and a title."""

    SECTION: ClassVar[str] = "seeds table"

    dataset: str = "the dataset"
    target: str = "seeds"
    title: str = ""


def named_metrics(items: list[str], key: str, what: str, target: str) -> dict[str, dict]:
    """``KEY=PATH`` arguments -> {key: parsed metrics.json}, in order; ``what`` names a run in errors (``ablation
    variant``, ``seed``) and ``target`` is the snakemake target that makes the files."""
    from mgenet.io import MissingFileError

    metrics = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise MgenetError(f"--metrics {item!r}: give {key}=PATH ({what}, its metrics.json).")
        if not Path(path).exists():
            raise MissingFileError(path, f"metrics of {what} {name!r}", otherwise=f"run `snakemake {target}`.")
        metrics[name] = json.loads(Path(path).read_text())
    return metrics


def cmd_tune(args: argparse.Namespace) -> None:
    from mgenet.studies.tuning import TuneSettings, tune_job

    s, _ = settings(args, TuneSettings)
    tune_job(named_paths(args.candidates, "validation segment scores"),
             named_paths(args.train_scores, "training segment scores"), args.manifest, args.out, args.tuned, s,
             intervals=args.intervals)


def cmd_ablation_table(args: argparse.Namespace) -> None:
    from mgenet.studies.ablation import ablation_markdown, ablation_table

    s, _ = settings(args, AblationTableParams)
    metrics = named_metrics(args.metrics, "NAME", "ablation variant", "ablation")
    df = ablation_table(metrics, s.descriptions, s.fusion, s.score)
    write_table(df, args.out, args.md, f"Ablations of {s.dataset} (score: {s.score})", ablation_markdown)
    for row in df.itertuples(index=False):
        log.info("%-14s micro AUC %.4f  macro AUC %.4f", row.variant, row.micro_auc, row.macro_auc)
    log.info("%d variants -> %s%s", len(df), args.out, f", {args.md}" if args.md else "")


def cmd_seeds_table(args: argparse.Namespace) -> None:
    from mgenet.studies.seeds import seed_summary, seeds_markdown

    s, _ = settings(args, SeedsTableParams)
    metrics = named_metrics(args.metrics, "SEED", "seed", s.target)
    df = seed_summary(metrics)
    write_table(df, args.out, args.md, s.title or f"AUC over seeds, {s.dataset}", seeds_markdown)
    for row in df[df["figure"] == "micro_auc"].itertuples(index=False):
        log.info("%-6s micro AUC %.4f +- %.4f over %d seeds", row.score, row.mean, row.std, row.n_seeds)
    log.info("%d seeds -> %s%s", len(metrics), args.out, f", {args.md}" if args.md else "")


def cmd_seeds_compare(args: argparse.Namespace) -> None:
    import pandas as pd

    from mgenet.studies.seeds import compare_markdown, compare_summaries

    tables = named_paths(args.tables, "a name and an `mgenet seeds-table` CSV")
    if len(tables) != 2:
        raise MgenetError(f"give exactly two NAME=CSV tables to compare, not {len(tables)}.")
    frames = []
    for name, path in tables.items():
        if not Path(path).is_file():
            raise MgenetError(f"{path}: no such seeds table ({name}); make it with `snakemake seeds` or "
                              f"`snakemake seeds_val` in that configuration.")
        frames.append(pd.read_csv(path))
    names = tuple(tables)
    df = compare_summaries(frames[0], frames[1], names, tuple(args.figures))
    write_table(df, args.out, args.md, f"{names[1]} against {names[0]}, paired by seed",
                lambda d: compare_markdown(d, names))
    for row in df[df["figure"] == "micro_auc"].itertuples(index=False):
        log.info("%-6s micro AUC %s - %s: %+.4f [%+.4f, %+.4f] over %d seeds", row.score, names[1], names[0],
                 row.diff, row.ci_low, row.ci_high, row.n_seeds)


def register(add: AddVerb) -> None:
    sp = add("tune", cmd_tune, "score a grid of settings on the validation split only: tuning.csv (best first) and "
                               "tuned.yaml (the chosen settings, a partial config for --configfile)")
    sp.add_argument("--candidates", nargs="+", required=True, metavar="NAME=PATH",
                    help="validation segment scores of each stage-2 candidate (main = the main model); with seeds in "
                         "--params, NAME@SEED=PATH for each candidate under each training seed (ranked by the mean)")
    sp.add_argument("--train-scores", nargs="*", default=[], metavar="NAME=PATH",
                    help="training segment scores of each candidate, for fusion.normalise: train (NAME@SEED=PATH "
                         "with seeds)")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--intervals", default="", help="anomaly interval table (optional)")
    sp.add_argument("--out", required=True, help="tuning.csv")
    sp.add_argument("--tuned", required=True, help="tuned.yaml")
    sp = add("ablation-table", cmd_ablation_table, "one row per ablation variant (fused micro, macro and per-type "
                                                   "AUC) from their metrics.json files, as CSV and markdown")
    sp.add_argument("--metrics", nargs="+", required=True, metavar="NAME=PATH",
                    help="each variant's name and metrics.json, in table order")
    sp.add_argument("--out", required=True, help="the CSV table")
    sp.add_argument("--md", default="", help="also write the table as markdown here")
    sp = add("seeds-table", cmd_seeds_table, "mean and std of every AUC over runs with different training seeds, "
                                             "from their metrics.json files, as CSV and markdown")
    sp.add_argument("--metrics", nargs="+", required=True, metavar="SEED=PATH", help="each seed and its metrics.json")
    sp.add_argument("--out", required=True, help="the CSV summary")
    sp.add_argument("--md", default="", help="also write the summary as markdown here")
    sp = add("seeds-compare", cmd_seeds_compare, "two configurations over the same seeds (e.g. features.layout "
                                                 "window and track): every AUC's per-seed difference, its mean, "
                                                 "std and Student-t interval", params=False)
    sp.add_argument("tables", nargs=2, metavar="NAME=CSV", help="the two `mgenet seeds-table` CSVs, e.g. "
                                                                 "window=results/demo/eval/seeds_val.csv")
    sp.add_argument("--figures", nargs="*", default=[], help="only these figures (e.g. micro_auc auc_scene)")
    sp.add_argument("--out", required=True, help="the CSV comparison")
    sp.add_argument("--md", default="", help="also write it as markdown here")
