"""Verbs of workflow/rules/flow.smk: train-flow, import-stgnf, encode-flow (stage 1, STG-NF)."""

from __future__ import annotations

import argparse
import logging

from mgenet.cli.common import AddVerb, settings

log = logging.getLogger("mgenet")


def cmd_train_flow(args: argparse.Namespace) -> None:
    from mgenet.engine.flow_jobs import FlowSettings, train_flow_job

    s, digest = settings(args, FlowSettings)
    train_flow_job(args.segments, args.out, s, digest, abnormal=args.abnormal_segments, label_files=args.labels)


def cmd_import_stgnf(args: argparse.Namespace) -> None:
    from mgenet.engine.flow_jobs import import_flow

    import_flow(args.checkpoint, args.out, args.seg_len, {})


def cmd_label_windows(args: argparse.Namespace) -> None:
    from mgenet.pose.labels import label_video

    df = label_video(args.segments, args.annotations or None, args.out)
    log.info("%s: %d windows, %d labelled -1 (anomalous) -> %s", args.annotations or "no annotation folder (a normal "
             "video)", len(df), int((df["label"] == -1).sum()), args.out)


def cmd_encode_flow(args: argparse.Namespace) -> None:
    from mgenet.engine.flow_jobs import EncodeSettings, encode_flow_job

    s, _ = settings(args, EncodeSettings)
    encode_flow_job(args.model, args.segments, args.out, s)


def register(add: AddVerb) -> None:
    sp = add("train-flow", cmd_train_flow, "train the pose flow (stage 1, STG-NF) on training segments")
    sp.add_argument("--segments", nargs="+", required=True)
    sp.add_argument("--abnormal-segments", nargs="*", default=[],
                    help="flow.train.supervised: the anomalous training videos' segments files (pose/abnormal_train)")
    sp.add_argument("--labels", nargs="*", default=[],
                    help="flow.train.supervised: their window label tables, in the same order")
    sp.add_argument("--out", required=True)
    sp = add("import-stgnf", cmd_import_stgnf, "import a checkpoint of the official STG-NF code (ShanghaiTech, "
                                               "UBnormal) as an mgenet flow checkpoint", params=False)
    sp.add_argument("checkpoint", help="the STG-NF checkpoint (a dict with epoch, state_dict, optimizer, args)")
    sp.add_argument("--out", required=True, help="the mgenet flow checkpoint to write (e.g. flow.pt)")
    sp.add_argument("--seg-len", type=int, default=None, help="refuse a checkpoint trained on another window length")
    sp = add("label-windows", cmd_label_windows, "label an anomalous training video's windows from UBnormal's object "
                                                 "masks (STG-NF's supervised setting)", params=False)
    sp.add_argument("--segments", required=True, help="the video's segments file")
    sp.add_argument("--annotations", default="", help="its folder Scene<N>/<video>_annotations (none for a normal "
                                                       "video: every window keeps label 1)")
    sp.add_argument("--out", required=True, help="the label table (CSV) to write")
    sp = add("encode-flow", cmd_encode_flow, "latent and NLL of every segment under the trained flow")
    sp.add_argument("--model", required=True)
    sp.add_argument("--segments", nargs="+", required=True)
    sp.add_argument("--out", required=True)
