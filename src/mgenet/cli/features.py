"""Verbs of workflow/rules/features.smk: features (extract_features), and its storage estimate."""

from __future__ import annotations

import argparse

from mgenet import MgenetError
from mgenet.cli.common import AddVerb, read_params
from mgenet.config import config_hash


def cmd_features(args: argparse.Namespace) -> None:
    p = read_params(args)
    if args.estimate:
        from mgenet.features.estimate import estimate_from_config

        print(estimate_from_config(p, args.config, args.manifest, args.segments_dir))
        return
    missing = [f"--{k}" for k in ("manifest", "video", "segments", "out") if not getattr(args, k)]
    if missing:
        raise MgenetError(f"features: {', '.join(missing)} required (or --estimate).")
    from mgenet.features.extract import FeatureConfig
    from mgenet.features.job import features_job

    features_job(args.manifest, args.video, args.source, args.segments, args.out, FeatureConfig.from_dict(p),
                 config_hash(p), threads=args.threads or 1)


def register(add: AddVerb) -> None:
    sp = add("features", cmd_features, "Video Swin tokens of one video's person-segment crops, and its scene feature "
                                       "(HDF5); --estimate prints the storage a whole dataset needs")
    sp.add_argument("--manifest", default="")
    sp.add_argument("--video", default="")
    sp.add_argument("--source", default="", help="video file or frame folder (default: the manifest's video_path)")
    sp.add_argument("--segments", default="", help="the video's segments file")
    sp.add_argument("--out", default="")
    sp.add_argument("--estimate", action="store_true", help="print the feature storage estimate of the manifest")
    sp.add_argument("--config", default="", help="with --estimate: a config.yaml to take features/segments from")
    sp.add_argument("--segments-dir", default="", help="with --estimate: folder of segments files for exact counts")
