"""Verbs of workflow/rules/stage2.smk: train-stage2, rewrite-matching."""

from __future__ import annotations

import argparse

from mgenet.cli.common import AddVerb, DeviceParams, read_params, settings
from mgenet.config import config_hash


def cmd_train_stage2(args: argparse.Namespace) -> None:
    from mgenet.engine.stage2_jobs import Stage2Settings, train_stage2_job

    p = read_params(args)
    s = Stage2Settings.from_dict(p)
    train_stage2_job(args.features, args.flow, args.out, s, config_hash(s.hashed(p)), stop_after=args.stop_after)


def cmd_rewrite_matching(args: argparse.Namespace) -> None:
    from mgenet.engine.stage2_jobs import rewrite_matching_job

    s, _ = settings(args, DeviceParams)
    rewrite_matching_job(args.model, args.features, args.flow, args.out, args.seed, device=s.device)


def register(add: AddVerb) -> None:
    sp = add("train-stage2", cmd_train_stage2, "train stage 2 (RGB and mask encoders, memories) on training "
                                               "features and flow latents; resumes from <out>.partial")
    sp.add_argument("--features", nargs="+", required=True, help="features files of the training videos")
    sp.add_argument("--flow", required=True, help="flow HDF5 of the training split (one group per video)")
    sp.add_argument("--out", required=True, help="the stage-2 checkpoint to write")
    sp.add_argument("--stop-after", type=int, default=None, metavar="N",
                    help="stop after N epochs, leaving <out>.partial as a kill would (for testing resumption)")
    sp = add("rewrite-matching", cmd_rewrite_matching, "write a trained stage-2 model's matching memory M^r again "
                                                       "from another seed's random start and clip order (only S_mm "
                                                       "changes)")
    sp.add_argument("--model", required=True, help="stage-2 checkpoint (from train-stage2)")
    sp.add_argument("--features", nargs="+", required=True, help="features files of the training videos")
    sp.add_argument("--flow", required=True, help="flow HDF5 of the training split")
    sp.add_argument("--seed", type=int, required=True, help="seed of M^r's random start and clip order")
    sp.add_argument("--out", required=True, help="the checkpoint to write")
