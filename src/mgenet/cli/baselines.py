"""Verbs of workflow/rules/baselines/ (snippets.smk, crkr.smk, arnet.smk): snippets, the two-stream baseline (train-cr,
score-cr, train-kr, score-kr, fuse-crkr) and AR-Net (train-arnet, score-arnet)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from mgenet.cli.common import AddVerb, DeviceParams, read_params, settings
from mgenet.config import FromDict, config_hash


@dataclass
class FuseCRKRParams(FromDict):
    """``--params`` of fuse-crkr: the paper protocol's smoothing widths."""

    paper_sigmas: dict[str, Any] = field(default_factory=dict)


def cmd_snippets(args: argparse.Namespace) -> None:
    from mgenet.baselines.snippets import SnippetConfig, snippets_job

    p = read_params(args)
    if args.snippet_len is not None:
        p["snippet_len"] = args.snippet_len
    snippets_job(args.manifest, args.video, args.source, args.out, SnippetConfig.from_dict(p), config_hash(p),
                 threads=args.threads or 1)


def cmd_train_cr(args: argparse.Namespace) -> None:
    from mgenet.baselines.jobs import CRSettings, train_cr_job

    s, digest = settings(args, CRSettings)
    train_cr_job(args.manifest, args.videos, args.out, s, digest)


def cmd_score_cr(args: argparse.Namespace) -> None:
    from mgenet.baselines.jobs import CRSettings, score_cr_job

    s, _ = settings(args, CRSettings)
    score_cr_job(args.model, args.manifest, args.out, s)


def cmd_train_kr(args: argparse.Namespace) -> None:
    from mgenet.baselines.jobs import KRSettings, train_kr_job

    s, digest = settings(args, KRSettings)
    train_kr_job(args.snippets, args.out, s, digest)


def cmd_score_kr(args: argparse.Namespace) -> None:
    from mgenet.baselines.jobs import score_kr_job

    score_kr_job(args.model, args.manifest, args.snippets, args.out)


def cmd_fuse_crkr(args: argparse.Namespace) -> None:
    from mgenet.baselines.jobs import fuse_crkr_job

    s, _ = settings(args, FuseCRKRParams)
    fuse_crkr_job(args.cr, args.kr, args.manifest, args.out, args.paper, s.paper_sigmas)


def cmd_train_arnet(args: argparse.Namespace) -> None:
    from mgenet.baselines.engine.arnet import ARNetTrainConfig
    from mgenet.baselines.jobs import train_arnet_job

    cfg, _ = settings(args, ARNetTrainConfig)
    train_arnet_job(args.snippets, args.weak_split, args.out, cfg)


def cmd_score_arnet(args: argparse.Namespace) -> None:
    from mgenet.baselines.jobs import score_arnet_job

    s, _ = settings(args, DeviceParams)
    score_arnet_job(args.model, args.snippets, args.manifest, args.out, device=s.device)


def register(add: AddVerb) -> None:
    sp = add("snippets", cmd_snippets, "one Video Swin vector per snippet of a video's whole frames (HDF5), for the "
                                       "video-level baselines (AR-Net, the two-stream baseline)")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--video", required=True)
    sp.add_argument("--source", default="", help="video file or frame folder (default: the manifest's video_path)")
    sp.add_argument("--snippet-len", type=int, default=None, help="frames per snippet (overrides --params)")
    sp.add_argument("--out", required=True)
    sp = add("train-cr", cmd_train_cr, "two-stream baseline, CR stream: train the frame predictor (frozen Video Swin "
                                       "stages 1-2 + U-Net decoder) on the training videos")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--videos", nargs="+", required=True, help="the training videos' files (train split only)")
    sp.add_argument("--out", required=True, help="the CR checkpoint to write")
    sp = add("score-cr", cmd_score_cr, "CR stream: maximum local prediction error of every test frame (parquet)")
    sp.add_argument("--model", required=True)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--out", required=True)
    sp = add("train-kr", cmd_train_kr, "two-stream baseline, KR stream: train HashNet on the training videos' "
                                       "snippet features and build the hash tables", )
    sp.add_argument("--snippets", nargs="+", required=True, help="the training videos' snippets files")
    sp.add_argument("--out", required=True, help="the KR checkpoint to write")
    sp = add("score-kr", cmd_score_kr, "KR stream: hash-bucket distance of every test snippet, per frame (parquet)",
             params=False)
    sp.add_argument("--model", required=True)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--snippets", nargs="+", required=True, help="the test videos' snippets files")
    sp.add_argument("--out", required=True)
    sp = add("fuse-crkr", cmd_fuse_crkr, "fuse the CR and KR streams (per-video min-max, 1:1) into "
                                         "scores/baselines/crkr.parquet, and the paper's protocol figures (JSON)")
    sp.add_argument("--cr", required=True)
    sp.add_argument("--kr", required=True)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--out", required=True, help="per-frame table: video, frame, cr, kr, crkr (raw)")
    sp.add_argument("--paper", required=True, help="JSON of the paper's protocol figures")
    sp = add("train-arnet", cmd_train_arnet, "train AR-Net (weakly supervised) on the snippet features of the weak "
                                             "split's training videos, with their video labels")
    sp.add_argument("--snippets", nargs="+", required=True, help="snippets files of the weak split's training videos")
    sp.add_argument("--weak-split", required=True, help="the weak split CSV (video, split, label)")
    sp.add_argument("--out", required=True, help="the AR-Net checkpoint to write")
    sp = add("score-arnet", cmd_score_arnet, "AR-Net's raw per-frame scores of every test video (a snippet's score "
                                             "goes to each of its frames)")
    sp.add_argument("--model", required=True, help="the AR-Net checkpoint (from train-arnet)")
    sp.add_argument("--snippets", nargs="+", required=True, help="snippets files of every test video")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--out", required=True, help="scores/baselines/arnet.parquet (video, frame, arnet)")
