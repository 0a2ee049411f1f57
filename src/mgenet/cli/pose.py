"""Verbs of workflow/rules/pose.smk: pose (extract_pose), segments (build_segments)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mgenet.cli.common import AddVerb, add_progress, log, progress_flag, settings


def cmd_pose(args: argparse.Namespace) -> None:
    from mgenet.pose.backends import PoseConfig
    from mgenet.pose.extract import extract_pose_file

    cfg, _ = settings(args, PoseConfig)
    stats = extract_pose_file(args.video, args.out, cfg, threads=args.threads or 1, preview=args.preview or None,
                              progress=progress_flag(args))
    log.info(stats.line(Path(args.video).stem))
    log.info("poses -> %s%s", args.out, f", preview -> {args.preview}" if args.preview else "")


def cmd_segments(args: argparse.Namespace) -> None:
    from mgenet.io import manifest_row
    from mgenet.pose.segments import SegmentConfig, segment_video

    cfg, digest = settings(args, SegmentConfig)
    segment_video(manifest_row(args.manifest, args.video), args.pose, args.out, cfg, digest)


def register(add: AddVerb) -> None:
    sp = add("pose", cmd_pose, "extract tracked COCO-17 poses from a video (or frame folder) into AlphaPose JSON")
    sp.add_argument("video", help="video file or folder of numbered frame images")
    sp.add_argument("--out", required=True, help="pose JSON to write (AlphaPose tracked-person format)")
    sp.add_argument("--preview", default="", help="also write this mp4 with skeletons and track ids drawn")
    add_progress(sp, "progress bar (default: when stderr is a terminal)")
    sp = add("segments", cmd_segments, "cut one video's tracks into normalised pose windows (HDF5)")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--video", required=True)
    sp.add_argument("--pose", required=True)
    sp.add_argument("--out", required=True)
