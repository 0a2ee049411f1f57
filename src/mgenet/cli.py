"""The `mgenet` command: one subcommand per pipeline stage, each a thin wrapper over the library.

Snakemake rules call these with explicit inputs, outputs and a ``--params`` JSON object holding every setting that
should trigger a rerun. A user-fixable problem ends with one ``error:`` line naming the file and the fix.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import threading
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
    from mgenet.datasets.demo import GENERATOR_VERSION, generate_demo
    from mgenet.datasets.demo_plan import DemoConfig

    p = _params(args)
    wanted = str(p.pop("generator_version", GENERATOR_VERSION))
    if wanted != GENERATOR_VERSION:
        raise MgenetError(f"the workflow asks for demo generator version {wanted} but the installed mgenet has version "
                          f"{GENERATOR_VERSION}: the workflow and the package come from different checkouts; "
                          f"reinstall the package from this one (pip install -e .).")
    cfg = DemoConfig.from_dict(p)
    t0 = time.time()
    generate_demo(args.out, cfg, workers=args.threads or 1)
    log.info("demo dataset written to %s in %.1f s (%d process(es))", args.out, time.time() - t0, args.threads or 1)


def cmd_index(args: argparse.Namespace) -> None:
    from mgenet.datasets.adapters import index_dataset
    from mgenet.io import write_manifest

    p = _params(args)
    df = index_dataset(p["root"], p.get("layout", "stgnf"), p.get("resolution"), p.get("pose_source", "import"),
                       scenes=p.get("scenes"), move_to_train=p.get("move_to_train"), intervals=p.get("intervals"))
    if p.get("weak_split"):  # checked before the manifest appears, so a bad file stops the run here
        from mgenet.datasets.adapters import check_weak_split

        weak = check_weak_split(Path(p["root"]) / p["weak_split"], df)
        log.info("weak split %s: %d training videos (%d anomalous), %d test videos", p["weak_split"],
                 int((weak["split"] == "train").sum()), int(weak.loc[weak["split"] == "train", "label"].sum()),
                 int((weak["split"] == "test").sum()))
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


def cmd_pose(args: argparse.Namespace) -> None:
    from mgenet.pose.extract import extract_pose_file

    p = _params(args)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    stats = extract_pose_file(args.video, args.out, p, threads=args.threads or 1, preview=args.preview or None,
                              progress=progress)
    if stats.tracks == 0:
        log.warning("%s: no person found; wrote an empty pose file ({}). People shorter than about %d px (or, with "
                    "the blazepose detector, smaller than ~1/8 of the frame) are not found: try pose.detector: both "
                    "or pose.tiles: [2, 2]", args.video, p.get("min_person_height", 24))
    log.info(stats.line(Path(args.video).stem))
    log.info("poses -> %s%s", args.out, f", preview -> {args.preview}" if args.preview else "")


def cmd_segments(args: argparse.Namespace) -> None:
    from mgenet.io import provenance, read_alphapose, write_segments
    from mgenet.pose.segments import SegmentConfig, build_segments

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


def _estimate_features(args: argparse.Namespace, p: dict[str, Any]) -> None:
    import yaml

    from mgenet.features.estimate import count_clips, estimate_table
    from mgenet.features.extract import FeatureConfig
    from mgenet.io import read_manifest
    from mgenet.pose.segments import SegmentConfig

    config: dict[str, Any] = {}
    if args.config:
        config = yaml.safe_load(Path(args.config).read_text()) or {}
        p = {**(config.get("features") or {}), **p}
    seg_cfg = SegmentConfig.from_dict({**(config.get("segments") or {}), **p.pop("segments", {})})
    cfg = FeatureConfig.from_dict(p)
    ds = config.get("dataset") or {}
    manifest = args.manifest or (f"results/{ds['name']}/manifest.csv" if ds.get("name") else "")
    if manifest and Path(manifest).exists():
        df = read_manifest(manifest)
    elif ds.get("root"):
        from mgenet.datasets.adapters import index_dataset

        df = index_dataset(ds["root"], ds.get("layout", "stgnf"), ds.get("resolution"))
    else:
        raise MgenetError(f"{manifest or '--manifest'}: no manifest; give --manifest or --config with a dataset.")
    segments_dir = args.segments_dir or (f"results/{ds['name']}/segments" if ds.get("name") else None)
    print(estimate_table(count_clips(df, segments_dir, seg_cfg, cfg), cfg, seg_cfg.seg_len))


def cmd_features(args: argparse.Namespace) -> None:
    p = _params(args)
    if args.estimate:
        _estimate_features(args, p)
        return
    missing = [f"--{k}" for k in ("manifest", "video", "segments", "out") if not getattr(args, k)]
    if missing:
        raise MgenetError(f"features: {', '.join(missing)} required (or --estimate).")
    from mgenet.features.extract import FeatureConfig, extract_video_features

    cfg = FeatureConfig.from_dict(p)
    _, source, model, device, attrs = _backbone_job(args, p, cfg, "features")
    threads = args.threads or 1
    stats = extract_video_features(source, args.segments, args.out, cfg, model, device, attrs, threads=threads)
    log.info("%s: %s -> %s", args.video, stats.summary(), args.out)


def _backbone_job(args: argparse.Namespace, p: dict[str, Any], cfg: Any,
                  what: str) -> tuple[Any, str, Any, Any, dict]:
    """What a per-video backbone command (features, snippets) needs: the video's manifest row, its file, the Video
    Swin stages on their device, and the provenance attributes of its output."""
    from mgenet.runtime import resolve_device
    from mgenet.features.swin import load_backbone

    row = _manifest_row(args.manifest, args.video)
    source = args.source or row["video_path"]
    if not source:
        raise MgenetError(f"{args.manifest}: video {args.video!r} has no video file (pose-only dataset); {what} "
                          f"need the videos under the dataset root (see README, 'Real datasets').")
    device = resolve_device(cfg.device)
    model, digest = load_backbone(cfg.weights, cfg.seed)
    model.to(device)
    attrs = {"video": args.video, "split": row["split"], "scene": str(row["scene"]), "config_hash": config_hash(p),
             "checkpoint_sha256": digest, "weights": cfg.weights, "device": str(device)}
    return row, source, model, device, attrs


def cmd_snippets(args: argparse.Namespace) -> None:
    from mgenet.baselines.snippets import SnippetConfig, extract_video_snippets

    p = _params(args)
    if args.snippet_len is not None:
        p["snippet_len"] = args.snippet_len
    cfg = SnippetConfig.from_dict(p)
    row, source, model, device, attrs = _backbone_job(args, p, cfg, "snippet features")
    stats = extract_video_snippets(source, args.out, cfg, model, device, attrs, threads=args.threads or 1,
                                   expect_frames=int(row["frames"]))
    log.info("%s: %d snippets of %d frames (%d frames) in %.1f s (forward %.1f s, decode %.1f s) -> %s", args.video,
             stats["snippets"], cfg.snippet_len, stats["frames"], stats["seconds"], stats["forward_s"],
             stats["decode_s"], args.out)


# ---------------------------------------------------------------------------------- two-stream baseline (CR + KR)


def _crkr_backbone(p: dict[str, Any]) -> tuple[Any, str]:
    """F_B for the CR stream: the features' weights and the main run's seed, as extract_features builds it (the
    backbone is fixed; a training seed of `seeds` changes only the decoder)."""
    from mgenet.features.swin import load_backbone

    return load_backbone(str(p.get("weights", "random")), int(p.get("backbone_seed", p.get("seed", 0))))


def _split_videos(manifest: str, split: str) -> Any:
    from mgenet.io import read_manifest

    df = read_manifest(manifest)
    return df[df["split"] == split].sort_values("video").reset_index(drop=True)


def cmd_train_cr(args: argparse.Namespace) -> None:
    import torch

    from mgenet.baselines.engine.cr import CRTrainConfig, cr_checkpoint, train_cr
    from mgenet.baselines.models.crnet import CRNetConfig
    from mgenet.io import atomic_path

    p = _params(args)
    train = _split_videos(args.manifest, "train")
    known = {str(Path(v)) for v in train["video_path"]}
    stray = [v for v in args.videos if str(Path(v)) not in known]
    if stray:  # the CR stream is unsupervised: a test video here would leak the test split into training
        raise MgenetError(f"train-cr: {stray[:3]} are not training videos of {args.manifest}; give the train split's "
                          f"video files only.")
    try:
        model_cfg = CRNetConfig.from_dict(p.get("model") or {})
        cfg = CRTrainConfig.from_dict(p.get("train") or {})
    except (TypeError, ValueError) as e:
        raise MgenetError(f"--params: bad cr setting: {e}") from e
    encoder, digest = _crkr_backbone(p)
    t0 = time.time()
    model, history = train_cr(args.videos, encoder, model_cfg, cfg, seed=int(p.get("seed", 0)),
                              device=p.get("device", "auto"))
    ckpt = cr_checkpoint(model, cfg, history, {"checkpoint_sha256": digest, "config_hash": config_hash(p),
                                               "mgenet_version": __version__, "videos": len(args.videos)})
    with atomic_path(args.out) as tmp:
        torch.save(ckpt, tmp)
    log.info("CR decoder (%d epochs on %d training videos) -> %s in %.1f s", len(history), len(args.videos), args.out,
             time.time() - t0)


def cmd_score_cr(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    from mgenet.baselines.engine.cr import CRScoreConfig, load_cr, score_video
    from mgenet.io import load_torch, write_parquet

    p = _params(args)
    ckpt = load_torch(args.model, "CR checkpoint", keys=("state_dict", "model_config", "train_config"),
                      fix="rerun rule train_cr")
    encoder, digest = _crkr_backbone(p)
    if ckpt.get("checkpoint_sha256") != digest:
        raise MgenetError(f"{args.model}: trained on backbone weights {ckpt.get('checkpoint_sha256')!r}, but "
                          f"features.weights now gives {digest!r}; rerun train_cr.")
    model, cfg = load_cr(ckpt, encoder)
    try:
        score_cfg = CRScoreConfig.from_dict(p.get("score") or {})
    except (TypeError, ValueError) as e:
        raise MgenetError(f"--params: bad cr.score setting: {e}") from e
    t0 = time.time()
    parts = []
    for row in _split_videos(args.manifest, "test").itertuples():
        s = score_video(model, row.video_path, cfg, score_cfg, device=p.get("device", "auto"))
        if len(s) != int(row.frames):
            raise MgenetError(f"{row.video_path}: {len(s)} frames decoded, the manifest says {row.frames}; rerun "
                              f"index_dataset.")
        parts.append(pd.DataFrame({"video": row.video, "frame": np.arange(len(s)), "cr": s.astype(np.float64)}))
        log.info("%s: %d frames scored (%.1f s so far)", row.video, len(s), time.time() - t0)
    if not parts:
        raise MgenetError(f"{args.manifest}: no test video to score.")
    out = pd.concat(parts, ignore_index=True)
    write_parquet(out, args.out)
    log.info("CR scores of %d test frames (%d videos) -> %s in %.1f s", len(out), len(parts), args.out,
             time.time() - t0)


def _snippet_split(path: str) -> str:
    from mgenet.io import open_h5

    with open_h5(path, "snippets file") as f:
        return str(f.attrs.get("split", ""))


def cmd_train_kr(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from mgenet.baselines.engine.kr import HashTables, KRTrainConfig, hash_codes, kr_checkpoint, train_hashnet
    from mgenet.baselines.models.hashnet import HashNetConfig
    from mgenet.baselines.snippets import read_snippets
    from mgenet.io import agreed_attrs, atomic_path

    p = _params(args)
    stray = [f for f in args.snippets if _snippet_split(f) != "train"]
    if stray:  # unsupervised: a test video here would leak the test split into the tables
        raise MgenetError(f"train-kr: {stray[:3]} are not snippets of training videos; give the train split's files.")
    feats = [read_snippets(f).features for f in args.snippets]
    prov = agreed_attrs(args.snippets, ("checkpoint_sha256", "snippet_len", "size"), "snippets files")
    try:
        cfg = KRTrainConfig.from_dict(p.get("train") or {})
        model_cfg = HashNetConfig.from_dict({**(p.get("model") or {}), "in_dim": int(feats[0].shape[1])})
    except (TypeError, ValueError) as e:
        raise MgenetError(f"--params: bad kr setting: {e}") from e
    t0 = time.time()
    model, history = train_hashnet(feats, model_cfg, cfg, seed=int(p.get("seed", 0)), device=p.get("device", "auto"))
    tables = HashTables.build(hash_codes(model, np.concatenate(feats), cfg.batch_snippets))
    ckpt = kr_checkpoint(model, tables, cfg, history, {"snippets": prov, "config_hash": config_hash(p),
                                                       "mgenet_version": __version__})
    with atomic_path(args.out) as tmp:
        torch.save(ckpt, tmp)
    log.info("HashNet (%d epochs) + %d tables (%s buckets) from %d training snippets -> %s in %.1f s", len(history),
             len(tables.keys), "/".join(str(len(k)) for k in tables.keys), sum(map(len, feats)), args.out,
             time.time() - t0)


def cmd_score_kr(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    from mgenet.baselines.engine.kr import load_kr, snippet_scores
    from mgenet.baselines.snippets import read_snippets, snippet_to_frames
    from mgenet.io import agreed_attrs, load_torch, write_parquet

    ckpt = load_torch(args.model, "KR checkpoint", keys=("state_dict", "tables", "model_config"),
                      fix="rerun rule train_kr")
    model, tables = load_kr(ckpt)
    prov = agreed_attrs(args.snippets, ("checkpoint_sha256", "snippet_len", "size"), "snippets files")
    if ckpt.get("snippets") and prov != ckpt["snippets"]:
        raise MgenetError(f"{args.model}: trained on snippets made with {ckpt['snippets']}, the test snippets were made "
                          f"with {prov}; rerun train_kr.")
    test = _split_videos(args.manifest, "test").set_index("video")
    parts = []
    for f in args.snippets:
        s = read_snippets(f)
        video = str(s.attrs.get("video", Path(f).stem))
        if video not in test.index:
            raise MgenetError(f"{f}: video {video!r} is not a test video of {args.manifest}.")
        if s.frames != int(test.loc[video, "frames"]):
            raise MgenetError(f"{f}: {s.frames} frames, the manifest says {test.loc[video, 'frames']}; rerun "
                              f"extract_snippets.")
        frames = snippet_to_frames(snippet_scores(model, tables, s.features), s.start_frame, s.snippet_len, s.frames)
        parts.append(pd.DataFrame({"video": video, "frame": np.arange(s.frames), "kr": frames.astype(np.float64)}))
    missing = sorted(set(test.index) - {str(p_["video"].iloc[0]) for p_ in parts})
    if missing:
        raise MgenetError(f"score-kr: no snippets file given for test video(s) {missing[:5]}.")
    out = pd.concat(parts, ignore_index=True)
    write_parquet(out, args.out)
    log.info("KR scores of %d test frames (%d videos) -> %s", len(out), len(parts), args.out)


def cmd_fuse_crkr(args: argparse.Namespace) -> None:
    from mgenet.baselines.crkr import PAPER_SIGMAS, fuse_streams, paper_protocol
    from mgenet.io import load_gt_mask, read_parquet, write_json, write_parquet

    p = _params(args)
    out = fuse_streams(read_parquet(args.cr), read_parquet(args.kr), args.cr, args.kr)
    test = _split_videos(args.manifest, "test")
    gts = {str(r.video): load_gt_mask(r.gt_path or None, int(r.frames)) for r in test.itertuples()}
    paper = {"method": "crkr", **paper_protocol(out, gts, {**PAPER_SIGMAS, **(p.get("paper_sigmas") or {})})}
    write_parquet(out, args.out)
    write_json(paper, args.paper)
    log.info("cr + kr -> crkr (%d frames) -> %s; paper's protocol: %s", len(out), args.out,
             "  ".join(f"{k} micro {_num(v['micro_auc'])} macro {_num(v['macro_auc'])}"
                       for k, v in paper["scores"].items()))


def _snippet_video(path: str) -> str:
    return Path(path).name.removesuffix(".h5")


def cmd_train_arnet(args: argparse.Namespace) -> None:
    import numpy as np

    from mgenet.baselines.engine.arnet import ARNetTrainConfig, Bags, save_arnet, train_arnet
    from mgenet.baselines.snippets import read_snippets
    from mgenet.io import agreed_attrs, read_weak_split, sha256_file

    cfg = ARNetTrainConfig.from_dict(_params(args))
    weak = read_weak_split(args.weak_split)
    train = weak[weak["split"] == "train"].set_index("video")
    # The file name says the video: a weak-test video's file is refused before it is opened.
    outside = [f for f in args.snippets if _snippet_video(f) not in train.index]
    if outside:
        raise MgenetError(f"{outside[0]}: not a training video of the weak split {args.weak_split} ({len(outside)} "
                          f"such file(s)); AR-Net trains on the weak split's training videos only.")
    given = {_snippet_video(f) for f in args.snippets}
    lacking = sorted(set(train.index) - given)
    if lacking:
        raise MgenetError(f"{args.weak_split}: training video(s) {lacking[:5]} have no snippets file among --snippets; "
                          f"give every training video's file.")
    feats, labels, names = [], [], []
    for f in args.snippets:
        s = read_snippets(f)
        if str(s.attrs.get("video", _snippet_video(f))) != _snippet_video(f):
            raise MgenetError(f"{f}: holds the snippets of video {s.attrs.get('video')!r}, not of the video its name "
                              f"says; delete it and rerun extract_snippets.")
        feats.append(s.features)
        labels.append(int(train.loc[_snippet_video(f), "label"]))
        names.append(_snippet_video(f))
    made_with = agreed_attrs(args.snippets, ("backbone", "checkpoint_sha256", "snippet_len", "size"), "snippets files")
    model, record = train_arnet(Bags(feats, np.asarray(labels, np.int64), names), cfg)
    save_arnet(args.out, model, record, cfg, {"mgenet_version": __version__, "snippets": made_with,
                                              "weak_split_sha256": sha256_file(args.weak_split),
                                              "train_videos": names, "seconds": record["seconds"]})
    log.info("AR-Net trained on %d videos (%d anomalous) for %d epochs in %.1f s: loss %.4f -> %s", len(names),
             int(np.sum(labels)), cfg.epochs, record["seconds"], record["history"][-1]["loss"], args.out)


def cmd_score_arnet(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    from mgenet.baselines.engine.arnet import load_arnet, score_videos
    from mgenet.baselines.snippets import read_snippets, snippet_to_frames
    from mgenet.runtime import resolve_device
    from mgenet.io import read_manifest, write_parquet

    p = _params(args)
    device = resolve_device(p.get("device", "auto"))
    model, mean, std, _ = load_arnet(args.model, device)
    man = read_manifest(args.manifest)
    test = man[man["split"] == "test"].set_index("video")
    given = [_snippet_video(f) for f in args.snippets]
    if sorted(given) != sorted(test.index):
        extra, lacking = sorted(set(given) - set(test.index)), sorted(set(test.index) - set(given))
        raise MgenetError(f"score-arnet scores every test video of {args.manifest} once: "
                          f"{f'not test videos: {extra[:5]}' if extra else f'no snippets file for {lacking[:5]}'}.")
    snips = [read_snippets(f) for f in args.snippets]
    for f, v, s in zip(args.snippets, given, snips):
        if s.frames != int(test.loc[v, "frames"]):
            raise MgenetError(f"{f}: snippets of {s.frames} frames, but the manifest says video {v!r} has "
                              f"{int(test.loc[v, 'frames'])}; delete it and rerun extract_snippets.")
    scores = score_videos(model, [s.features for s in snips], mean, std, device)
    parts = [pd.DataFrame({"video": v, "frame": np.arange(s.frames, dtype=np.int64),
                           "arnet": snippet_to_frames(sc, s.start_frame, s.snippet_len, s.frames).astype(np.float64)})
             for v, s, sc in zip(given, snips, scores)]
    write_parquet(pd.concat(parts, ignore_index=True).sort_values(["video", "frame"]), args.out)
    log.info("AR-Net scored %d test videos (%d snippets) -> %s", len(snips), sum(len(s) for s in scores), args.out)


def _save_imported_flow(path: str, out: str, seg_len: int | None, extra: dict[str, Any]) -> None:
    """Import an official STG-NF checkpoint and save it as an mgenet flow checkpoint (history empty)."""
    from mgenet.engine.flow import FlowTrainConfig, save_checkpoint
    from mgenet.engine.stgnf_checkpoint import import_stgnf
    from mgenet.io import sha256_file

    model, info = import_stgnf(path, seg_len=seg_len)
    info["sha256"] = sha256_file(path)
    save_checkpoint(out, model, model.cfg, FlowTrainConfig(), [],
                    extra={"mgenet_version": __version__, "imported_from": info, **extra})
    log.info("STG-NF checkpoint %s (epoch %s, seg_len %d, R %g) imported -> %s", path, info["epoch"],
             model.cfg.seg_len, model.cfg.prior_mean, out)


def cmd_train_flow(args: argparse.Namespace) -> None:
    from mgenet.engine.flow import FlowTrainConfig, save_checkpoint, train_flow
    from mgenet.models.flow import FlowConfig

    p = _params(args)
    if p.get("checkpoint"):
        _save_imported_flow(p["checkpoint"], args.out, p["seg_len"], _flow_extra(p, args.segments))
        return
    model_cfg = FlowConfig.from_dict({**p.get("model", {}), "seg_len": p["seg_len"]})
    train_cfg = FlowTrainConfig.from_dict({**p.get("train", {}), "seed": p.get("seed", 0),
                                           "device": p.get("device", "auto")})
    model, history = train_flow(args.segments, model_cfg, train_cfg, log=log.info)
    save_checkpoint(args.out, model, model_cfg, train_cfg, history,
                    extra={"mgenet_version": __version__, **_flow_extra(p, args.segments)})
    log.info("flow checkpoint -> %s", args.out)


def _flow_extra(p: dict[str, Any], segments: list[str]) -> dict[str, Any]:
    """What a flow checkpoint records beside the model: the config hash, and the segment settings the flow learned
    from, read back from the training files' provenance (for `mgenet score-video`)."""
    from mgenet.pose.segments import training_settings

    return {"config_hash": config_hash(p), "segments": training_settings(segments)}


def cmd_import_stgnf(args: argparse.Namespace) -> None:
    _save_imported_flow(args.checkpoint, args.out, args.seg_len, {})


def cmd_encode_flow(args: argparse.Namespace) -> None:
    from mgenet.engine.flow import encode_flow, load_checkpoint
    from mgenet.runtime import resolve_device

    p = _params(args)
    device = resolve_device(p.get("device", "auto"))
    model, _ = load_checkpoint(args.model, device)
    encode_flow(model, args.segments, args.out, batch_size=int(p.get("batch_size", 1024)), device=device)
    log.info("flow latents and NLL of %d videos -> %s", len(args.segments), args.out)


STAGE2_KEYS = ("model", "train")
STAGE2_IGNORED = ("enabled", "score_batch_size", "mm_form")  # stage2 config keys that do not shape training


def _stage2_config(p: dict[str, Any]) -> Any:
    """Stage2Config from a params object ``{model: {...}, train: {...}, seed, device}`` (the stage2 config section
    plus the global seed and device)."""
    from mgenet.engine.stage2 import Stage2Config

    unknown = sorted(set(p) - {*STAGE2_KEYS, *STAGE2_IGNORED, "seed", "device"})
    if unknown:
        raise MgenetError(f"--params: unknown stage-2 setting(s) {unknown}; known: model, train, seed, device.")
    try:
        return Stage2Config.from_dict({"model": p.get("model") or {},
                                       "train": {**(p.get("train") or {}), "seed": int(p.get("seed", 0)),
                                                 "device": p.get("device", "auto")}})
    except (TypeError, ValueError) as e:
        raise MgenetError(f"--params: bad stage-2 setting: {e}") from e


def cmd_train_stage2(args: argparse.Namespace) -> None:
    from mgenet.engine.stage2 import train_stage2
    from mgenet.features.extract import training_settings

    p = _params(args)
    cfg = _stage2_config(p)
    pairs = [(f, args.flow) for f in args.features]  # the engine finds each video's group in the flow file
    t0 = time.time()
    # how the training features were made (backbone checkpoint, crop size, ...), so a new video's match them
    features = training_settings([f for f in args.features if Path(f).exists()])  # the engine names missing files
    history = train_stage2(pairs, cfg, args.out, log=log.info, stop_after=args.stop_after,
                           attrs={"config_hash": config_hash({k: p[k] for k in p if k not in STAGE2_IGNORED}),
                                  "mgenet_version": __version__, "features": features})
    if not Path(args.out).exists():
        log.info("stopped after %d epoch(s) in %.1f s; rerun the same command to resume from %s.partial",
                 len(history), time.time() - t0, args.out)
        return
    log.info("stage-2 checkpoint (%d epochs, %d training videos) -> %s in %.1f s", len(history), len(pairs),
             args.out, time.time() - t0)


def cmd_rewrite_matching(args: argparse.Namespace) -> None:
    from mgenet.engine.stage2 import rewrite_matching

    p = _params(args)
    t0 = time.time()
    rewrite_matching(args.model, [(f, args.flow) for f in args.features], args.out, args.seed,
                     device=p.get("device", "auto"), log=log.info)
    log.info("matching memory of %s written again from seed %d -> %s in %.1f s", args.model, args.seed, args.out,
             time.time() - t0)


def cmd_score(args: argparse.Namespace) -> None:
    from mgenet.io import write_parquet
    from mgenet.scoring.components import join_stage2, segment_table

    p = _params(args)
    if bool(args.stage2) != bool(args.features):
        raise MgenetError("score: --stage2 and --features go together (the stage-2 model and the test videos' "
                          "features files); give both, or neither for S_nf alone.")
    base = None
    if args.base:  # a table whose scores are kept but for S_mm, which this model computes alone
        from mgenet.io import read_parquet

        if not args.stage2:
            raise MgenetError("score: --base goes with --stage2 (S_mm is computed with that model, every other score "
                              "is taken from the base table).")
        base = read_parquet(args.base)
        if "mm" not in base.columns:
            raise MgenetError(f"{args.base}: no S_mm column (mm) to replace; give the segment table of a stage-2 run.")
    df = segment_table(args.flow) if base is None else base.drop(columns="mm")
    if args.stage2:
        from mgenet.engine.stage2 import score_stage2

        t0 = time.time()
        s2 = score_stage2(args.stage2, [(f, args.flow) for f in args.features],
                          batch_size=int(p.get("batch_size", 256)), device=p.get("device", "auto"),
                          only_mm=base is not None, mm_form=str(p.get("mm_form", "two_sided")))
        log.info("stage 2 scored %d segments of %d videos in %.1f s%s", len(s2), len(args.features),
                 time.time() - t0, " (S_mm only)" if base is not None else "")
        df = join_stage2(df, s2)
        if base is not None:
            df = df[list(base.columns)]  # S_mm back in its place
    write_parquet(df, args.out)
    log.info("%d test segments scored (%s) -> %s", len(df), ", ".join(c for c in df.columns
                                                                      if c in ("nf", "mo", "app", "mm")), args.out)


def _train_scores(path: str, fusion: dict[str, Any], flag: str = "--train-scores") -> Any:
    """The training segments' score table when ``fusion.normalise`` is ``train`` (then required), else None."""
    from mgenet.io import read_parquet

    normalise = fusion.get("normalise", "test_minmax")
    if normalise != "train":
        if path:
            log.info("%s %s is not used: fusion.normalise is %s, which scales with the test segments", flag, path,
                     normalise)
        return None
    if not path:
        raise MgenetError(f"fusion.normalise train scales each component by its scores on the training segments: "
                          f"pass {flag} with their segment score table (results/<dataset>/scores/"
                          f"segments_train.parquet), or choose another fusion.normalise.")
    if not Path(path).is_file():
        raise MgenetError(f"{path}: training segment scores not found ({flag}); they are written by the rule that "
                          f"scores the training segments (`snakemake {path}`).")
    return read_parquet(path)


def cmd_fuse(args: argparse.Namespace) -> None:
    from mgenet.io import load_gt_mask, read_intervals, read_manifest, read_parquet, write_parquet
    from mgenet.scoring.fusion import DEFAULT_SIGMAS, add_baselines, frame_scores, fuse_with, fusion_fill

    p = _params(args)
    ref = _train_scores(args.train_scores, p)
    seg = fuse_with(read_parquet(args.scores), p, ref)
    man = read_manifest(args.manifest)
    test = man[man["split"] == args.split]
    if test.empty:
        raise MgenetError(f"{args.manifest}: no video of split {args.split!r} to fuse; the dataset has splits "
                          f"{sorted(man['split'].unique())}.")
    gts = {r.video: load_gt_mask(r.gt_path, int(r.frames)) for r in test.itertuples()}
    sigmas = list(p.get("smoothing_sigmas", DEFAULT_SIGMAS))
    frames = frame_scores(seg, test[["video", "frames"]], gts, read_intervals(args.intervals), sigmas,
                          fill=fusion_fill(p, ref))
    if args.baselines:
        frames = add_baselines(frames, {b: read_parquet(b) for b in args.baselines}, sigmas)
    write_parquet(frames, args.out)
    log.info("%d frames of %d %s videos -> %s", len(frames), len(test), args.split, args.out)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from mgenet.evaluation.metrics import evaluate
    from mgenet.evaluation.report import collect_provenance, write_report
    from mgenet.io import read_parquet, read_weak_split, write_json

    p = _params(args)
    ev = p.get("evaluation", {})
    frames = read_parquet(args.frames)
    t0 = time.time()
    weak_split = read_weak_split(args.weak_split) if args.weak_split else None
    metrics = evaluate(frames, p.get("dataset", "dataset"), bootstrap=int(ev.get("bootstrap", 0)),
                       seed=int(p.get("seed", 0)), weak_split=weak_split, weak_split_name=args.weak_split)
    log.info("frame-level metrics (%d bootstrap resamples of the test videos) in %.1f s",
             int(ev.get("bootstrap", 0)), time.time() - t0)
    if args.boxes:
        _add_localization(args, p, frames, metrics)
    for path in args.paper_protocol:  # baselines' figures under their paper's own protocol, labelled as such
        figures = _read_json(path, "paper-protocol figures")
        metrics.setdefault("paper_protocol", {})[figures.get("method", Path(path).stem)] = figures
    write_json(metrics, args.out)
    skipped = metrics["macro_videos"]["skipped_one_class"]
    if skipped:
        log.info("macro figures average %d videos; %d one-class video(s) skipped: %s", metrics["macro_videos"]["n_used"],
                 len(skipped), ", ".join(skipped))
    for name, m in metrics["scores"].items():
        types = " ".join(f"{t}={v:.3f}" for t, v in m["by_type"].items() if v is not None)
        ci = m.get("micro_auc_ci95")
        ci_text = f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
        region = f"  RBDC {_num(m['rbdc'])}  TBDC {_num(m['tbdc'])}" if "rbdc" in m else ""
        log.info("%-6s micro AUC %s%s  macro AUC %s  AP %s  EER %s%s  %s", name, _num(m["micro_auc"]), ci_text,
                 _num(m["macro_auc"]), _num(m["micro_ap"]), _num(m["micro_eer"]), region, types)
    if "weak" in metrics:
        log.info("weak split's %d test videos (%s):", metrics["weak"]["n_videos"], args.weak_split)
        for name, m in metrics["weak"]["scores"].items():
            types = " ".join(f"{t}={v:.3f}" for t, v in m["by_type"].items() if v is not None)
            log.info("  %-6s micro AUC %s  macro AUC %s  %s%s", name, _num(m["micro_auc"]), _num(m["macro_auc"]),
                     types, "  (weakly supervised)" if m["supervision"] == "weak" else "")
    if args.report:
        ablation, seeds, matching_seeds = (
            _optional_table(path, what, target) for path, what, target in
            ((args.ablation, "ablation table", "ablation"), (args.seeds, "seeds summary", "seeds"),
             (args.matching_seeds, "summary over matching-memory seeds", "matching_seeds")))
        tuning = _optional_table(args.tuning, "tuning table", "tune")
        validation = None
        if args.validation:
            from mgenet.io import missing_file

            if not Path(args.validation).is_file():
                raise missing_file(args.validation, "metrics of the validation split",
                                   otherwise="run `snakemake` (rule evaluate_val makes it).")
            validation = json.loads(Path(args.validation).read_text())
        provenance = collect_provenance(args.frames, args.models, args.features)
        write_report(frames, metrics, Path(args.report), Path(args.plots or Path(args.report).parent / "plots"),
                     config=p.get("config"), provenance=provenance, ablation=ablation, seeds=seeds,
                     matching_seeds=matching_seeds, validation=validation, tuning=tuning)
        log.info("report -> %s", args.report)


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise MgenetError(f"{path}: {what} not found; rerun the rule that makes it.") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MgenetError(f"{path}: {what} is not valid JSON ({e}); delete it and rerun the rule that makes it.") from e


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _add_localization(args: argparse.Namespace, p: dict[str, Any], frames: Any, metrics: dict) -> None:
    """RBDC and TBDC into ``metrics`` when the dataset has boxes of its anomalous objects (``--boxes``)."""
    from mgenet.evaluation.regions import (
        IOU,
        MAX_FP_PER_FRAME,
        TRACK_FRACTION,
        add_localization,
        detections,
        localization_metrics,
        segment_boxes,
    )
    from mgenet.io import read_anomaly_boxes, read_parquet
    from mgenet.scoring.fusion import fuse_with, score_columns

    if not Path(args.boxes).is_file():
        log.info("no boxes of the anomalous objects at %s: RBDC and TBDC are not computed (a demo dataset generated "
                 "before mgenet wrote gt/anomaly_boxes.csv lacks them: delete it and rerun to regenerate it)",
                 args.boxes)
        return
    if not args.segments or not args.segment_files:
        raise MgenetError("evaluate: --boxes needs --segments (the segment score table) and --segment-files (the "
                          "test videos' segments files), whose boxes are the detections.")
    if "fusion" not in p:
        raise MgenetError("evaluate: --boxes needs the fusion settings in --params ({\"fusion\": {...}}) to fuse the "
                          "segment scores as rule fuse_scores does.")
    ev = p.get("evaluation", {})
    seg = fuse_with(read_parquet(args.segments), p["fusion"], _train_scores(args.train_scores, p["fusion"]))
    det = detections(seg, segment_boxes(args.segment_files))
    cols = [c for c in score_columns(frames) if c in det.columns]
    loc = localization_metrics(det, read_anomaly_boxes(args.boxes), len(frames), frames["video"].unique(), cols,
                               iou=float(ev.get("iou", IOU)), track_fraction=float(ev.get("track_fraction",
                                                                                          TRACK_FRACTION)),
                               max_fp=float(ev.get("max_fp_per_frame", MAX_FP_PER_FRAME)))
    if loc is None:
        log.info("%s holds no anomalous region of the test videos: RBDC and TBDC are not computed", args.boxes)
    add_localization(metrics, loc)


def _optional_table(path: str, what: str, target: str) -> Any:
    """A table CSV for the report (a pandas DataFrame), or None when ``path`` is empty; ``target`` makes it."""
    import pandas as pd

    if not path:
        return None
    if not Path(path).is_file():
        raise MgenetError(f"{path}: {what} not found; `snakemake {target}` makes it.")
    return pd.read_csv(path)


def _named_metrics(items: list[str], key: str, what: str, target: str) -> dict[str, dict]:
    """``KEY=PATH`` arguments -> {key: parsed metrics.json}, in order; ``what`` names a run in errors (``ablation
    variant``, ``seed``) and ``target`` is the snakemake target that makes the files."""
    from mgenet.io import missing_file

    metrics = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise MgenetError(f"--metrics {item!r}: give {key}=PATH ({what}, its metrics.json).")
        if not Path(path).exists():
            raise missing_file(path, f"metrics of {what} {name!r}", otherwise=f"run `snakemake {target}`.")
        metrics[name] = json.loads(Path(path).read_text())
    return metrics


def _write_table(df: Any, out: str, md: str, title: str, to_markdown: Callable[[Any], str]) -> None:
    """A summary table as CSV at ``out`` and, when ``md`` is given, as markdown under ``title``."""
    from mgenet.io import atomic_path

    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    if md:
        with atomic_path(md) as tmp:
            tmp.write_text(f"# {title}\n\n" + to_markdown(df))


def _named_paths(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise MgenetError(f"{item!r}: give NAME=PATH ({what}).")
        out[name] = path
    return out


def cmd_tune(args: argparse.Namespace) -> None:
    import yaml

    from mgenet.io import atomic_path, load_gt_mask, read_intervals, read_manifest, read_parquet
    from mgenet.scoring.fusion import DEFAULT_SIGMAS
    from mgenet.studies.tuning import choose, fusion_combinations, score_grid, split_grid, tuned_config

    p = _params(args)
    man = read_manifest(args.manifest)
    val = man[man["split"] == "val"]
    if val.empty:
        raise MgenetError(f"{args.manifest}: the dataset has no validation split (split val), so there is nothing to "
                          f"tune on; ShanghaiTech has none: keep the documented defaults, or add pose/val/ videos.")
    fusion_grid, _ = split_grid(p.get("grid", {}))
    combos = fusion_combinations(fusion_grid, p["fusion"])
    candidates = {name: read_parquet(path) for name, path in _named_paths(args.candidates, "validation segment "
                                                                                         "scores").items()}
    train = {name: read_parquet(path) for name, path in _named_paths(args.train_scores, "training segment "
                                                                                        "scores").items()}
    gts = {r.video: load_gt_mask(r.gt_path, int(r.frames)) for r in val.itertuples()}
    sigmas = list(p.get("smoothing_sigmas", DEFAULT_SIGMAS))
    t0 = time.time()
    table = choose(score_grid(candidates, val[["video", "frames"]], gts, read_intervals(args.intervals), combos,
                              sigmas, train_scores=train or None), p.get("metric", "micro_auc"))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    tuned = tuned_config(table.iloc[0], p.get("overrides", {}))
    with atomic_path(args.tuned) as tmp:
        tmp.write_text("# Chosen by `snakemake tune` on the validation split (eval/tuning.csv, best row: "
                       f"{p.get('metric', 'micro_auc')} {table.iloc[0][p.get('metric', 'micro_auc')]:.4f}).\n"
                       "# Use it with: snakemake --configfile config.yaml " + str(args.tuned) + "\n"
                       + yaml.safe_dump(tuned, sort_keys=True))
    log.info("%d candidate(s) x %d fusion setting(s) scored on %d validation videos in %.1f s; best %s %s: %s",
             len(candidates), len(combos), len(val), time.time() - t0, table.iloc[0]["candidate"],
             table.iloc[0]["fusion"], f"{table.iloc[0][p.get('metric', 'micro_auc')]:.4f}")


def cmd_ablation_table(args: argparse.Namespace) -> None:
    from mgenet.studies.ablation import ablation_table, to_markdown

    p = _params(args)
    metrics = _named_metrics(args.metrics, "NAME", "ablation variant", "ablation")
    df = ablation_table(metrics, p.get("descriptions", {}), p.get("fusion", {}), p.get("score", "fused"))
    _write_table(df, args.out, args.md,
                 f"Ablations of {p.get('dataset', 'the dataset')} (score: {p.get('score', 'fused')})", to_markdown)
    for row in df.itertuples(index=False):
        log.info("%-14s micro AUC %.4f  macro AUC %.4f", row.variant, row.micro_auc, row.macro_auc)
    log.info("%d variants -> %s%s", len(df), args.out, f", {args.md}" if args.md else "")


def cmd_seeds_table(args: argparse.Namespace) -> None:
    from mgenet.studies.seeds import seed_summary, to_markdown

    p = _params(args)
    metrics = _named_metrics(args.metrics, "SEED", "seed", p.get("target", "seeds"))
    df = seed_summary(metrics)
    _write_table(df, args.out, args.md, p.get("title", f"AUC over seeds, {p.get('dataset', 'the dataset')}"),
                 to_markdown)
    for row in df[df["figure"] == "micro_auc"].itertuples(index=False):
        log.info("%-6s micro AUC %.4f +- %.4f over %d seeds", row.score, row.mean, row.std, row.n_seeds)
    log.info("%d seeds -> %s%s", len(metrics), args.out, f", {args.md}" if args.md else "")


def cmd_seeds_compare(args: argparse.Namespace) -> None:
    import pandas as pd

    from mgenet.studies.seeds import compare_markdown, compare_summaries

    tables = _named_paths(args.tables, "a name and an `mgenet seeds-table` CSV")
    if len(tables) != 2:
        raise MgenetError(f"give exactly two NAME=CSV tables to compare, not {len(tables)}.")
    frames = []
    for name, path in tables.items():
        if not Path(path).is_file():
            raise MgenetError(f"{path}: no such seeds table ({name}); make it with `snakemake seeds` or "
                              f"`snakemake seeds_val` in that configuration.")
        frames.append(pd.read_csv(path))
    names = tuple(tables)
    df = compare_summaries(frames[0], frames[1], names, tuple(args.figures))
    _write_table(df, args.out, args.md, f"{names[1]} against {names[0]}, paired by seed",
                 lambda d: compare_markdown(d, names))
    for row in df[df["figure"] == "micro_auc"].itertuples(index=False):
        log.info("%-6s micro AUC %s - %s: %+.4f [%+.4f, %+.4f] over %d seeds", row.score, names[1], names[0],
                 row.diff, row.ci_low, row.ci_high, row.n_seeds)


def cmd_score_video(args: argparse.Namespace) -> None:
    from mgenet.apps.score_video import score_video

    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    out = args.out or f"{Path(args.video).stem}_scores"
    r = score_video(args.video, args.models, out, pose=args.pose or None, config=args.config or None,
                    reference=args.reference or None, features_weights=args.features_weights or None,
                    threads=args.threads or 1, progress=progress)
    top = r.frames.nlargest(1, "smoothed")
    log.info("%s: %d frames scored in %.1f s (%s); most anomalous frame %d (smoothed %.3f)", args.video,
             len(r.frames), r.seconds["total"], ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items()
                                                         if k != "total"),
             int(top["frame"].iloc[0]), float(top["smoothed"].iloc[0]))


def cmd_inspect(args: argparse.Namespace) -> None:
    from mgenet.apps.inspect import describe

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
    sp = add("pose", cmd_pose, "extract tracked COCO-17 poses from a video (or frame folder) into AlphaPose JSON")
    sp.add_argument("video", help="video file or folder of numbered frame images")
    sp.add_argument("--out", required=True, help="pose JSON to write (AlphaPose tracked-person format)")
    sp.add_argument("--preview", default="", help="also write this mp4 with skeletons and track ids drawn")
    sp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar (default: when stderr is a terminal)")
    sp = add("segments", cmd_segments, "cut one video's tracks into normalised pose windows (HDF5)")
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--video", required=True)
    sp.add_argument("--pose", required=True)
    sp.add_argument("--out", required=True)
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
    sp = add("score", cmd_score, "per-segment component scores of the test set: S_nf, and with --stage2 S_mo, "
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
    sp = add("tune", cmd_tune, "score a grid of settings on the validation split only: tuning.csv (best first) and "
                               "tuned.yaml (the chosen settings, a partial config for --configfile)")
    sp.add_argument("--candidates", nargs="+", required=True, metavar="NAME=PATH",
                    help="validation segment scores of each stage-2 candidate (main = the main model)")
    sp.add_argument("--train-scores", nargs="*", default=[], metavar="NAME=PATH",
                    help="training segment scores of each candidate, for fusion.normalise: train")
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
    sp = add("score-video", cmd_score_video, "score one new video end to end with trained models: per-frame "
                                             "scores (frames.csv) and a score-curve plot (scores.png)", params=False)
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
    sp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bars (default: when stderr is a terminal)")
    sp = add("inspect", cmd_inspect, "print the layout, shapes and provenance of an mgenet HDF5 file", params=False)
    sp.add_argument("file")
    sp.add_argument("--clip", type=int, default=None, help="also print this clip's statistics")
    return ap


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # SIGTERM (Snakemake stopping its jobs on Ctrl-C, a cluster cancelling one) unwinds like Ctrl-C, so temporary
    # files are removed on the way out instead of left beside the artifacts.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        args.fn(args)
    except MgenetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
