"""Verbs of workflow/rules/tune.smk, ablation.smk and seeds.smk: tune, ablation-table, seeds-table, seeds-compare."""

from __future__ import annotations

import argparse

from mgenet.cli.common import AddVerb, named_paths, settings


def cmd_tune(args: argparse.Namespace) -> None:
    from mgenet.studies.tuning import TuneSettings, tune_job

    s, _ = settings(args, TuneSettings)
    tune_job(named_paths(args.candidates, "validation segment scores"),
             named_paths(args.train_scores, "training segment scores"), args.manifest, args.out, args.tuned, s,
             intervals=args.intervals)


def cmd_ablation_table(args: argparse.Namespace) -> None:
    from mgenet.studies.ablation import AblationTableSettings, ablation_table_job

    s, _ = settings(args, AblationTableSettings)
    ablation_table_job(named_paths(args.metrics, "an ablation variant and its metrics.json"), args.out, args.md, s)


def cmd_seeds_table(args: argparse.Namespace) -> None:
    from mgenet.studies.seeds import SeedsTableSettings, seeds_table_job

    s, _ = settings(args, SeedsTableSettings)
    seeds_table_job(named_paths(args.metrics, "a seed and its metrics.json"), args.out, args.md, s)


def cmd_seeds_compare(args: argparse.Namespace) -> None:
    from mgenet.studies.seeds import seeds_compare_job

    seeds_compare_job(named_paths(args.tables, "a name and an `mgenet seeds-table` CSV"), args.out, args.md,
                      args.figures)


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
