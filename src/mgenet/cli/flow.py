"""Verbs of workflow/rules/flow.smk: train-flow, import-stgnf, encode-flow (stage 1, STG-NF)."""

from __future__ import annotations

import argparse

from mgenet.cli.common import AddVerb, settings


def cmd_train_flow(args: argparse.Namespace) -> None:
    from mgenet.engine.flow_jobs import FlowSettings, train_flow_job

    s, digest = settings(args, FlowSettings)
    train_flow_job(args.segments, args.out, s, digest)


def cmd_import_stgnf(args: argparse.Namespace) -> None:
    from mgenet.engine.flow_jobs import import_flow

    import_flow(args.checkpoint, args.out, args.seg_len, {})


def cmd_encode_flow(args: argparse.Namespace) -> None:
    from mgenet.engine.flow_jobs import EncodeSettings, encode_flow_job

    s, _ = settings(args, EncodeSettings)
    encode_flow_job(args.model, args.segments, args.out, s)


def register(add: AddVerb) -> None:
    sp = add("train-flow", cmd_train_flow, "train the pose flow (stage 1, STG-NF) on training segments")
    sp.add_argument("--segments", nargs="+", required=True)
    sp.add_argument("--out", required=True)
    sp = add("import-stgnf", cmd_import_stgnf, "import a checkpoint of the official STG-NF code (ShanghaiTech, "
                                               "UBnormal) as an mgenet flow checkpoint", params=False)
    sp.add_argument("checkpoint", help="the STG-NF checkpoint (a dict with epoch, state_dict, optimizer, args)")
    sp.add_argument("--out", required=True, help="the mgenet flow checkpoint to write (e.g. flow.pt)")
    sp.add_argument("--seg-len", type=int, default=None, help="refuse a checkpoint trained on another window length")
    sp = add("encode-flow", cmd_encode_flow, "latent and NLL of every segment under the trained flow")
    sp.add_argument("--model", required=True)
    sp.add_argument("--segments", nargs="+", required=True)
    sp.add_argument("--out", required=True)
