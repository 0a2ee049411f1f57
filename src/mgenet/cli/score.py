"""Verbs of workflow/rules/score.smk: score (score_components), fuse (fuse_scores), evaluate."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

from mgenet.cli.common import AddVerb, settings
from mgenet.config import FromDict


@dataclass
class ScoreParams(FromDict):
    """``stage2_score_params``: scoring with a trained stage-2 model."""

    SECTION: ClassVar[str] = "score"

    batch_size: int = 256
    device: str = "auto"
    mm_form: str = "two_sided"


def cmd_score(args: argparse.Namespace) -> None:
    from mgenet.scoring.components import score_segments

    s, _ = settings(args, ScoreParams)
    score_segments(args.flow, args.out, stage2=args.stage2, features=args.features, base=args.base,
                   batch_size=s.batch_size, device=s.device, mm_form=s.mm_form)


def cmd_fuse(args: argparse.Namespace) -> None:
    from mgenet.scoring.frames import FuseSettings, fuse_scores_job

    s, _ = settings(args, FuseSettings)
    fuse_scores_job(args.scores, args.manifest, args.out, s, split=args.split, intervals=args.intervals,
                    train_scores=args.train_scores, baselines=args.baselines)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from mgenet.evaluation.run import EvaluateInputs, EvaluateSettings, evaluate_run

    s, _ = settings(args, EvaluateSettings)
    inp = EvaluateInputs(weak_split=args.weak_split, paper_protocol=args.paper_protocol, boxes=args.boxes,
                         segments=args.segments, train_scores=args.train_scores, segment_files=args.segment_files,
                         report=args.report, plots=args.plots, ablation=args.ablation, seeds=args.seeds,
                         matching_seeds=args.matching_seeds, validation=args.validation, tuning=args.tuning,
                         models=args.models, features=args.features)
    evaluate_run(args.frames, args.out, s, inp)


def register(add: AddVerb) -> None:
    sp = add("score", cmd_score, "per-segment component scores of a split: S_nf, and with --stage2 S_mo, "
                                 "S_app, S_mm and Table 3's level-1 measurements")
    sp.add_argument("--flow", required=True, help="flow HDF5 of the test split")
    sp.add_argument("--stage2", default="", help="stage-2 checkpoint (from train-stage2)")
    sp.add_argument("--features", nargs="*", default=[], help="with --stage2: features files of the test videos")
    sp.add_argument("--base", default="", help="with --stage2: a segment table whose scores are kept but for S_mm, "
                                               "which is computed alone (a model with M^r written again)")
    sp.add_argument("--out", required=True)
    sp = add("fuse", cmd_fuse, "fuse component scores and turn segment scores into frame scores")
    sp.add_argument("--scores", required=True)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--intervals", default="", help="anomaly interval table (optional)")
    sp.add_argument("--split", default="test", choices=("test", "val"),
                    help="the split whose videos the scores are of (val: the validation split)")
    sp.add_argument("--train-scores", default="", help="segment score table of the training segments: required when "
                                                       "the params' normalise is train (the scaling and the fill of "
                                                       "frames without a person are fitted on it)")
    sp.add_argument("--baselines", nargs="*", default=[], help="baselines' per-frame score tables (video, frame, "
                                                               "arnet / cr / kr / crkr), smoothed and added")
    sp.add_argument("--out", required=True)
    sp = add("evaluate", cmd_evaluate, "frame-level AUCs, metrics.json, plots and the HTML report")
    sp.add_argument("--frames", required=True)
    sp.add_argument("--out", required=True, help="metrics.json")
    sp.add_argument("--report", default="", help="report.html")
    sp.add_argument("--weak-split", default="", help="weak split CSV (video, split, label): every score, the weakly "
                                                     "supervised ones too, on its test videos (metrics.json 'weak')")
    sp.add_argument("--plots", default="", help="folder for the PNG plots")
    sp.add_argument("--paper-protocol", nargs="*", default=[], help="baselines' figures under their paper's own "
                                                                   "protocol (JSON), added to metrics.json "
                                                                   "'paper_protocol' by file stem")
    sp.add_argument("--ablation", default="", help="ablation table CSV (`mgenet ablation-table`) to show in the report")
    sp.add_argument("--seeds", default="", help="summary over seeds CSV (`mgenet seeds-table`) to show in the report")
    sp.add_argument("--matching-seeds", default="", help="summary over matching-memory seeds CSV (`snakemake "
                                                         "matching_seeds`) to show in the report")
    sp.add_argument("--validation", default="", help="metrics.json of the validation split (eval/val_metrics.json) "
                                                     "to show beside the test figures in the report")
    sp.add_argument("--tuning", default="", help="tuning table CSV (`snakemake tune`, eval/tuning.csv) to show in "
                                                 "the report")
    sp.add_argument("--boxes", default="", help="boxes of the anomalous objects per frame (video,track,frame,x1,y1,"
                                               "x2,y2): RBDC and TBDC when the file exists")
    sp.add_argument("--segments", default="", help="with --boxes: the segment score table (scores/segments.parquet)")
    sp.add_argument("--train-scores", default="", help="with --boxes and fusion.normalise train: the training "
                                                       "segments' score table, as for `mgenet fuse`")
    sp.add_argument("--segment-files", nargs="*", default=[],
                    help="with --boxes: the test videos' segments files, whose boxes are the detections")
    sp.add_argument("--models", nargs="*", default=[], help="checkpoints whose sha256 the report records")
    sp.add_argument("--features", nargs="*", default=[],
                    help="features files whose backbone checkpoint sha256 the report records")
