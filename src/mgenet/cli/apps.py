"""Verbs outside the workflow: score-video (a new video end to end), inspect (an HDF5 file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mgenet.cli.common import AddVerb, add_progress, log, progress_flag


def cmd_score_video(args: argparse.Namespace) -> None:
    from mgenet.apps.score_video import score_video

    out = args.out or f"{Path(args.video).stem}_scores"
    r = score_video(args.video, args.models, out, pose=args.pose or None, config=args.config or None,
                    reference=args.reference or None, features_weights=args.features_weights or None,
                    threads=args.threads or 1, progress=progress_flag(args), video_out=not args.no_video,
                    threshold=args.threshold)
    top = r.frames.nlargest(1, "smoothed")
    log.info("%s: %d frames scored in %.1f s (%s); most anomalous frame %d (smoothed %.3f)", args.video,
             len(r.frames), r.seconds["total"], ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items()
                                                         if k != "total"),
             int(top["frame"].iloc[0]), float(top["smoothed"].iloc[0]))


def cmd_inspect(args: argparse.Namespace) -> None:
    from mgenet.apps.inspect import describe

    print(describe(args.file, clip=args.clip))


def register(add: AddVerb) -> None:
    sp = add("score-video", cmd_score_video, "score one new video end to end with trained models: per-frame "
                                             "and per-person scores, events, an overlay video and a page "
                                             "(index.html)", params=False)
    sp.add_argument("video", help="video file or folder of numbered frame images")
    sp.add_argument("--models", required=True, help="the run's models folder, results/<dataset>/models")
    sp.add_argument("--out", default="", help="output folder (default: <video name>_scores)")
    sp.add_argument("--pose", default="", help="the video's AlphaPose tracked-person JSON, instead of extracting "
                                               "poses (the demo's videos: their generator poses)")
    sp.add_argument("--config", default="", help="the run's config.yaml: pose, fusion, score, device settings")
    sp.add_argument("--reference", default="", help="segment scores to fit the fusion's scaling and the fill on "
                                                    "(default: <models>/../scores/segments_train.parquet under "
                                                    "fusion.normalise train, else <models>/../scores/"
                                                    "segments.parquet, the test set's)")
    sp.add_argument("--features-weights", default="", help="the Video Swin checkpoint, if no longer where training "
                                                           "recorded it")
    sp.add_argument("--threshold", type=float, default=None,
                    help="events: frames whose smoothed fused score exceeds this (default: the 0.99 quantile of the "
                         "training segments' fused scores beside the models, else of the reference; without a "
                         "reference, the video's own median + 3 robust standard deviations)")
    sp.add_argument("--no-video", action="store_true", help="do not write the overlay video (overlay.mp4)")
    add_progress(sp, "progress bars (default: when stderr is a terminal)")
    sp = add("inspect", cmd_inspect, "print the layout, shapes and provenance of an mgenet HDF5 file", params=False)
    sp.add_argument("file")
    sp.add_argument("--clip", type=int, default=None, help="also print this clip's statistics")
