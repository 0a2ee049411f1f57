"""The `mgenet` command: one subcommand per pipeline stage, each a thin wrapper over the library.

Snakemake rules call these with explicit inputs, outputs and a ``--params`` JSON object holding every setting that
should trigger a rerun. A user-fixable problem ends with one ``error:`` line naming the file and the fix.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mgenet import MgenetError, __version__

log = logging.getLogger("mgenet")


def config_hash(params: dict[str, Any]) -> str:
    """Short stable hash of a settings object, stored as provenance in every artifact."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _params(args: argparse.Namespace) -> dict[str, Any]:
    try:
        p = json.loads(args.params) if args.params else {}
    except json.JSONDecodeError as e:
        raise MgenetError(f"--params is not valid JSON: {e}") from e
    if not isinstance(p, dict):
        raise MgenetError("--params must be a JSON object")
    return p


# ---------------------------------------------------------------------------------------------------- commands


def cmd_make_demo(args: argparse.Namespace) -> None:
    from mgenet.datasets.demo import DemoConfig, generate_demo

    cfg = DemoConfig.from_dict(_params(args))
    t0 = time.time()
    generate_demo(args.out, cfg)
    log.info("demo dataset written to %s in %.1f s", args.out, time.time() - t0)


def cmd_index(args: argparse.Namespace) -> None:
    from mgenet.datasets.adapters import index_dataset
    from mgenet.io import write_manifest

    p = _params(args)
    df = index_dataset(p["root"], p.get("layout", "stgnf"), p.get("resolution"))
    write_manifest(df, args.out)
    counts = df["split"].value_counts().to_dict()
    log.info("indexed %d videos (%s) in %d scenes -> %s", len(df), counts, df["scene"].nunique(), args.out)


def _manifest_row(manifest: str, video: str) -> dict[str, Any]:
    from mgenet.io import read_manifest

    df = read_manifest(manifest)
    rows = df[df["video"] == video]
    if rows.empty:
        raise MgenetError(f"{manifest}: video {video!r} is not in the manifest; rerun index_dataset.")
    return rows.iloc[0].to_dict()


def cmd_import_pose(args: argparse.Namespace) -> None:
    from mgenet.io import pose_summary, read_alphapose, write_alphapose

    row = _manifest_row(args.manifest, args.video)
    src = row["pose_path"]
    poses = read_alphapose(src)
    n = int(row["frames"])
    for pid, track in poses.items():
        late = [f for f in track if f >= n]
        if late:
            raise MgenetError(f"{src}: person {pid}, frame {min(late)}: frame index beyond the video's {n} frames "
                              f"(frames are 0-based indices into the video / ground-truth mask).")
    write_alphapose(poses, args.out)
    s = pose_summary(poses)
    if s["tracks"] == 0:
        log.warning("%s: no person in this video; all its frames will get the most normal score", src)
    log.info("%s: %d frames, %d tracks, %d detections (%.2f persons per posed frame), mean keypoint score %.3f",
             args.video, n, s["tracks"], s["detections"], s["detections"] / max(s["frames_with_person"], 1),
             s["mean_keypoint_score"])


def cmd_segments(args: argparse.Namespace) -> None:
    from mgenet.io import provenance, read_alphapose, write_segments
    from mgenet.segments import SegmentConfig, build_segments

    p = _params(args)
    cfg = SegmentConfig.from_dict(p)
    row = _manifest_row(args.manifest, args.video)
    poses = read_alphapose(args.pose)
    arrays = build_segments(poses, int(row["width"]), int(row["height"]), row["split"], cfg)
    attrs = provenance(config_hash(p), video=args.video, split=row["split"], scene=str(row["scene"]),
                       frames=int(row["frames"]), width=int(row["width"]), height=int(row["height"]),
                       stride=cfg.stride(row["split"]), **{k: v for k, v in cfg.to_dict().items()
                                                           if not k.endswith("stride")})
    write_segments(args.out, arrays, attrs)
    log.info("%s: %d segments of %d frames from %d tracks -> %s", args.video, len(arrays["person_id"]),
             cfg.seg_len, len(poses), args.out)


def cmd_train_flow(args: argparse.Namespace) -> None:
    from mgenet.engine.flow import FlowTrainConfig, save_checkpoint, train_flow
    from mgenet.models.flow import FlowConfig

    p = _params(args)
    model_cfg = FlowConfig.from_dict({**p.get("model", {}), "seg_len": p["seg_len"]})
    train_cfg = FlowTrainConfig.from_dict({**p.get("train", {}), "seed": p.get("seed", 0),
                                           "device": p.get("device", "auto")})
    model, history = train_flow(args.segments, model_cfg, train_cfg, log=log.info)
    save_checkpoint(args.out, model, model_cfg, train_cfg, history,
                    extra={"config_hash": config_hash(p), "mgenet_version": __version__})
    log.info("flow checkpoint -> %s", args.out)


def cmd_encode_flow(args: argparse.Namespace) -> None:
    from mgenet.engine.flow import encode_flow, load_checkpoint, resolve_device

    p = _params(args)
    device = resolve_device(p.get("device", "auto"))
    model, _ = load_checkpoint(args.model, device)
    encode_flow(model, args.segments, args.out, batch_size=int(p.get("batch_size", 1024)), device=device)
    log.info("flow latents and NLL of %d videos -> %s", len(args.segments), args.out)


def cmd_score(args: argparse.Namespace) -> None:
    from mgenet.io import write_parquet
    from mgenet.components import segment_table

    df = segment_table(args.flow)
    write_parquet(df, args.out)
    log.info("%d test segments scored (%s) -> %s", len(df), ", ".join(c for c in df.columns
                                                                      if c in ("nf", "mo", "app", "mm")), args.out)


def cmd_fuse(args: argparse.Namespace) -> None:
    from mgenet.io import load_gt_mask, read_intervals, read_manifest, read_parquet, write_parquet
    from mgenet.scoring import DEFAULT_SIGMAS, frame_scores, fuse_segments

    p = _params(args)
    seg = fuse_segments(read_parquet(args.scores), p["weights"])
    man = read_manifest(args.manifest)
    test = man[man["split"] == "test"]
    gts = {r.video: load_gt_mask(r.gt_path, int(r.frames)) for r in test.itertuples()}
    frames = frame_scores(seg, test[["video", "frames"]], gts, read_intervals(args.intervals),
                          list(p.get("smoothing_sigmas", DEFAULT_SIGMAS)))
    write_parquet(frames, args.out)
    log.info("%d frames of %d test videos -> %s", len(frames), len(test), args.out)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from mgenet.evaluation import compute_metrics
    from mgenet.io import read_parquet, write_json
    from mgenet.report import write_report

    p = _params(args)
    frames = read_parquet(args.frames)
    metrics = compute_metrics(frames, p.get("dataset", "dataset"))
    write_json(metrics, args.out)
    for name, m in metrics["scores"].items():
        types = " ".join(f"{t}={v:.3f}" for t, v in m["by_type"].items() if v is not None)
        micro, macro = (("n/a" if v is None else f"{v:.4f}") for v in (m["micro_auc"], m["macro_auc"]))
        log.info("%-6s micro AUC %s  macro AUC %s  %s", name, micro, macro, types)
    if args.report:
        write_report(frames, metrics, Path(args.report), Path(args.plots or Path(args.report).parent / "plots"),
                     config=p.get("config"), provenance={"mgenet_version": __version__})
        log.info("report -> %s", args.report)


def cmd_inspect(args: argparse.Namespace) -> None:
    from mgenet.inspect import describe

    print(describe(args.file, clip=args.clip))


# --------------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mgenet", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"mgenet {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (Snakemake passes {threads})")
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], None], help: str,
            params: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        if params:
            sp.add_argument("--params", default="{}", help="JSON object of this stage's settings")
        return sp

    sp = add("make-demo", cmd_make_demo, "generate the synthetic demo dataset")
    sp.add_argument("--out", required=True, help="dataset root to create")
    sp = add("index", cmd_index, "index a dataset into the manifest CSV")
    sp.add_argument("--out", required=True)
    sp = add("import-pose", cmd_import_pose, "validate and normalise one video's AlphaPose tracked-person JSON",
             params=False)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--video", required=True)
    sp.add_argument("--out", required=True)
    sp = add("segments", cmd_segments, "cut one video's tracks into normalised pose windows (HDF5)")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--video", required=True)
    sp.add_argument("--pose", required=True)
    sp.add_argument("--out", required=True)
    sp = add("train-flow", cmd_train_flow, "train the pose flow (stage 1, STG-NF) on training segments")
    sp.add_argument("--segments", nargs="+", required=True)
    sp.add_argument("--out", required=True)
    sp = add("encode-flow", cmd_encode_flow, "latent and NLL of every segment under the trained flow")
    sp.add_argument("--model", required=True)
    sp.add_argument("--segments", nargs="+", required=True)
    sp.add_argument("--out", required=True)
    sp = add("score", cmd_score, "per-segment component scores of the test set", params=False)
    sp.add_argument("--flow", required=True, help="flow HDF5 of the test split")
    sp.add_argument("--out", required=True)
    sp = add("fuse", cmd_fuse, "fuse component scores and turn segment scores into frame scores")
    sp.add_argument("--scores", required=True)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--intervals", default="", help="anomaly interval table (optional)")
    sp.add_argument("--out", required=True)
    sp = add("evaluate", cmd_evaluate, "frame-level AUCs, metrics.json, plots and the HTML report")
    sp.add_argument("--frames", required=True)
    sp.add_argument("--out", required=True, help="metrics.json")
    sp.add_argument("--report", default="", help="report.html")
    sp.add_argument("--plots", default="", help="folder for the PNG plots")
    sp = add("inspect", cmd_inspect, "print the layout, shapes and provenance of an mgenet HDF5 file", params=False)
    sp.add_argument("file")
    sp.add_argument("--clip", type=int, default=None, help="also print this clip's statistics")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.fn(args)
    except MgenetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
