"""The baselines' file-level jobs, as `mgenet train-cr / score-cr / train-kr / score-kr / fuse-crkr / train-arnet /
score-arnet` run them: which videos they may read (training only, where the method is unsupervised), checks of
their inputs against the manifest, and the tables and checkpoints they write."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from mgenet import MgenetError, __version__
from mgenet.config import FromDict

log = logging.getLogger("mgenet")


@dataclass
class CRSettings(FromDict):
    """``crkr_params("cr")``: the cr section (model, train, score), the backbone's weights and seed, seed, device."""

    SECTION: ClassVar[str] = "crkr.cr"

    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    score: dict = field(default_factory=dict)
    weights: str = "random"
    backbone_seed: int | None = None  # F_B is fixed: the main run's seed, whatever the training seed
    seed: int = 0
    device: str = "auto"


@dataclass
class KRSettings(FromDict):
    """``crkr_params("kr")``: the kr section (model, train), seed, device."""

    SECTION: ClassVar[str] = "crkr.kr"
    IGNORED: ClassVar[tuple[str, ...]] = ("snippet_len",)  # which snippets files the rules give it

    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"


def split_videos(manifest: str, split: str) -> pd.DataFrame:
    """The manifest's videos of ``split``, sorted by name."""
    from mgenet.io import read_manifest

    df = read_manifest(manifest)
    return df[df["split"] == split].sort_values("video").reset_index(drop=True)


def snippet_video(path: str) -> str:
    """The video a snippets file is of, by its name."""
    return Path(path).name.removesuffix(".h5")


def _crkr_backbone(s: CRSettings) -> tuple[Any, str]:
    """F_B for the CR stream: the features' weights and the main run's seed, as extract_features builds it (the
    backbone is fixed; a training seed of `seeds` changes only the decoder)."""
    from mgenet.features.swin import load_backbone

    return load_backbone(str(s.weights), int(s.seed if s.backbone_seed is None else s.backbone_seed))


def _bad(what: str, e: Exception) -> MgenetError:
    return MgenetError(f"--params: bad {what} setting: {e}")


def train_cr_job(manifest: str, videos: list[str], out: str, s: CRSettings, config_hash: str = "") -> None:
    """Train the CR stream's decoder on the training ``videos`` (files of the manifest's train split only: the stream
    is unsupervised, so a test video would leak the test split into training) and save its checkpoint."""
    from mgenet.baselines.engine.cr import CRTrainConfig, cr_checkpoint, train_cr
    from mgenet.baselines.models.crnet import CRNetConfig
    from mgenet.io import save_torch

    train = split_videos(manifest, "train")
    known = {str(Path(v)) for v in train["video_path"]}
    stray = [v for v in videos if str(Path(v)) not in known]
    if stray:
        raise MgenetError(f"train-cr: {stray[:3]} are not training videos of {manifest}; give the train split's "
                          f"video files only.")
    try:
        model_cfg = CRNetConfig.from_dict(s.model or {})
        cfg = CRTrainConfig.from_dict(s.train or {})
    except (TypeError, ValueError) as e:
        raise _bad("cr", e) from e
    encoder, digest = _crkr_backbone(s)
    t0 = time.time()
    model, history = train_cr(videos, encoder, model_cfg, cfg, seed=int(s.seed), device=s.device)
    ckpt = cr_checkpoint(model, cfg, history, {"checkpoint_sha256": digest, "config_hash": config_hash,
                                               "mgenet_version": __version__, "videos": len(videos)})
    save_torch(ckpt, out)
    log.info("CR decoder (%d epochs on %d training videos) -> %s in %.1f s", len(history), len(videos), out,
             time.time() - t0)


def score_cr_job(model_path: str, manifest: str, out: str, s: CRSettings) -> pd.DataFrame:
    """The CR stream's per-frame scores of every test video (video, frame, cr), written to ``out``."""
    import numpy as np

    from mgenet.baselines.engine.cr import CRScoreConfig, load_cr, score_cr_video
    from mgenet.io import load_torch, write_parquet

    ckpt = load_torch(model_path, "CR checkpoint", keys=("state_dict", "model_config", "train_config"),
                      fix="rerun rule train_cr")
    encoder, digest = _crkr_backbone(s)
    if ckpt.get("checkpoint_sha256") != digest:
        raise MgenetError(f"{model_path}: trained on backbone weights {ckpt.get('checkpoint_sha256')!r}, but "
                          f"features.weights now gives {digest!r}; rerun train_cr.")
    model, cfg = load_cr(ckpt, encoder)
    try:
        score_cfg = CRScoreConfig.from_dict(s.score or {})
    except (TypeError, ValueError) as e:
        raise _bad("cr.score", e) from e
    t0 = time.time()
    parts = []
    for row in split_videos(manifest, "test").itertuples():
        sc = score_cr_video(model, row.video_path, cfg, score_cfg, device=s.device)
        if len(sc) != int(row.frames):
            raise MgenetError(f"{row.video_path}: {len(sc)} frames decoded, the manifest says {row.frames}; rerun "
                              f"index_dataset.")
        parts.append(pd.DataFrame({"video": row.video, "frame": np.arange(len(sc)), "cr": sc.astype(np.float64)}))
        log.info("%s: %d frames scored (%.1f s so far)", row.video, len(sc), time.time() - t0)
    if not parts:
        raise MgenetError(f"{manifest}: no test video to score.")
    table = pd.concat(parts, ignore_index=True)
    write_parquet(table, out)
    log.info("CR scores of %d test frames (%d videos) -> %s in %.1f s", len(table), len(parts), out,
             time.time() - t0)
    return table


def _snippet_split(path: str) -> str:
    from mgenet.io import read_attrs

    return str(read_attrs(path, "snippets file").get("split", ""))


def train_kr_job(snippets: list[str], out: str, s: KRSettings, config_hash: str = "") -> None:
    """Train HashNet on the training videos' snippet features and build the hash tables of the KR stream."""
    import numpy as np

    from mgenet.baselines.engine.kr import HashTables, KRTrainConfig, hash_codes, kr_checkpoint, train_hashnet
    from mgenet.baselines.models.hashnet import HashNetConfig
    from mgenet.io import read_snippets
    from mgenet.io import agreed_attrs, save_torch

    stray = [f for f in snippets if _snippet_split(f) != "train"]
    if stray:  # unsupervised: a test video here would leak the test split into the tables
        raise MgenetError(f"train-kr: {stray[:3]} are not snippets of training videos; give the train split's files.")
    feats = [read_snippets(f).features for f in snippets]
    prov = agreed_attrs(snippets, ("checkpoint_sha256", "snippet_len", "size"), "snippets files")
    try:
        cfg = KRTrainConfig.from_dict(s.train or {})
        model_cfg = HashNetConfig.from_dict({**(s.model or {}), "in_dim": int(feats[0].shape[1])})
    except (TypeError, ValueError) as e:
        raise _bad("kr", e) from e
    t0 = time.time()
    model, history = train_hashnet(feats, model_cfg, cfg, seed=int(s.seed), device=s.device)
    tables = HashTables.build(hash_codes(model, np.concatenate(feats), cfg.batch_snippets))
    ckpt = kr_checkpoint(model, tables, cfg, history, {"snippets": prov, "config_hash": config_hash,
                                                       "mgenet_version": __version__})
    save_torch(ckpt, out)
    log.info("HashNet (%d epochs) + %d tables (%s buckets) from %d training snippets -> %s in %.1f s", len(history),
             len(tables.keys), "/".join(str(len(k)) for k in tables.keys), sum(map(len, feats)), out,
             time.time() - t0)


def score_kr_job(model_path: str, manifest: str, snippets: list[str], out: str) -> pd.DataFrame:
    """The KR stream's per-frame scores (video, frame, kr) of every test video, one snippets file each."""
    import numpy as np

    from mgenet.baselines.engine.kr import load_kr, snippet_scores
    from mgenet.baselines.snippets import snippet_to_frames
    from mgenet.io import read_snippets
    from mgenet.io import agreed_attrs, load_torch, write_parquet

    ckpt = load_torch(model_path, "KR checkpoint", keys=("state_dict", "tables", "model_config"),
                      fix="rerun rule train_kr")
    model, tables = load_kr(ckpt)
    prov = agreed_attrs(snippets, ("checkpoint_sha256", "snippet_len", "size"), "snippets files")
    if ckpt.get("snippets") and prov != ckpt["snippets"]:
        raise MgenetError(f"{model_path}: trained on snippets made with {ckpt['snippets']}, the test snippets were "
                          f"made with {prov}; rerun train_kr.")
    test = split_videos(manifest, "test").set_index("video")
    parts = []
    for f in snippets:
        sn = read_snippets(f)
        video = str(sn.attrs.get("video", Path(f).stem))
        if video not in test.index:
            raise MgenetError(f"{f}: video {video!r} is not a test video of {manifest}.")
        if sn.frames != int(test.loc[video, "frames"]):
            raise MgenetError(f"{f}: {sn.frames} frames, the manifest says {test.loc[video, 'frames']}; rerun "
                              f"extract_snippets.")
        frames = snippet_to_frames(snippet_scores(model, tables, sn.features), sn.start_frame, sn.snippet_len,
                                   sn.frames)
        parts.append(pd.DataFrame({"video": video, "frame": np.arange(sn.frames), "kr": frames.astype(np.float64)}))
    missing = sorted(set(test.index) - {str(p_["video"].iloc[0]) for p_ in parts})
    if missing:
        raise MgenetError(f"score-kr: no snippets file given for test video(s) {missing[:5]}.")
    table = pd.concat(parts, ignore_index=True)
    write_parquet(table, out)
    log.info("KR scores of %d test frames (%d videos) -> %s", len(table), len(parts), out)
    return table


def fuse_crkr_job(cr: str, kr: str, manifest: str, out: str, paper: str,
                  paper_sigmas: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fused CR + KR table (video, frame, cr, kr, crkr) at ``out``, and the paper's protocol figures (JSON) at
    ``paper``, whose smoothing widths ``paper_sigmas`` override."""
    from mgenet.baselines.crkr import PAPER_SIGMAS, fuse_streams, paper_protocol
    from mgenet.evaluation.metrics import format_figure
    from mgenet.io import load_gt_mask, read_parquet, write_json, write_parquet

    table = fuse_streams(read_parquet(cr), read_parquet(kr), cr, kr)
    test = split_videos(manifest, "test")
    gts = {str(r.video): load_gt_mask(r.gt_path or None, int(r.frames)) for r in test.itertuples()}
    figures = {"method": "crkr", **paper_protocol(table, gts, {**PAPER_SIGMAS, **(paper_sigmas or {})})}
    write_parquet(table, out)
    write_json(figures, paper)
    log.info("cr + kr -> crkr (%d frames) -> %s; paper's protocol: %s", len(table), out,
             "  ".join(f"{k} micro {format_figure(v['micro_auc'])} macro {format_figure(v['macro_auc'])}"
                       for k, v in figures["scores"].items()))
    return figures


def train_arnet_job(snippets: list[str], weak_split: str, out: str, cfg: Any) -> None:
    """Train AR-Net on the snippet features of the weak split's training videos (every one, none other), with their
    video labels, and save it (``cfg``: an ARNetTrainConfig)."""
    import numpy as np

    from mgenet.baselines.engine.arnet import Bags, save_arnet, train_arnet
    from mgenet.io import read_snippets
    from mgenet.io import agreed_attrs, read_weak_split, sha256_file

    weak = read_weak_split(weak_split)
    train = weak[weak["split"] == "train"].set_index("video")
    # The file name says the video: a weak-test video's file is refused before it is opened.
    outside = [f for f in snippets if snippet_video(f) not in train.index]
    if outside:
        raise MgenetError(f"{outside[0]}: not a training video of the weak split {weak_split} ({len(outside)} "
                          f"such file(s)); AR-Net trains on the weak split's training videos only.")
    lacking = sorted(set(train.index) - {snippet_video(f) for f in snippets})
    if lacking:
        raise MgenetError(f"{weak_split}: training video(s) {lacking[:5]} have no snippets file among --snippets; "
                          f"give every training video's file.")
    feats, labels, names = [], [], []
    for f in snippets:
        s = read_snippets(f)
        if str(s.attrs.get("video", snippet_video(f))) != snippet_video(f):
            raise MgenetError(f"{f}: holds the snippets of video {s.attrs.get('video')!r}, not of the video its name "
                              f"says; delete it and rerun extract_snippets.")
        feats.append(s.features)
        labels.append(int(train.loc[snippet_video(f), "label"]))
        names.append(snippet_video(f))
    made_with = agreed_attrs(snippets, ("backbone", "checkpoint_sha256", "snippet_len", "size"), "snippets files")
    model, record = train_arnet(Bags(feats, np.asarray(labels, np.int64), names), cfg)
    save_arnet(out, model, record, cfg, {"mgenet_version": __version__, "snippets": made_with,
                                         "weak_split_sha256": sha256_file(weak_split),
                                         "train_videos": names, "seconds": record["seconds"]})
    log.info("AR-Net trained on %d videos (%d anomalous) for %d epochs in %.1f s: loss %.4f -> %s", len(names),
             int(np.sum(labels)), cfg.epochs, record["seconds"], record["history"][-1]["loss"], out)


def score_arnet_job(model_path: str, snippets: list[str], manifest: str, out: str,
                    device: str = "auto") -> pd.DataFrame:
    """AR-Net's raw per-frame scores (video, frame, arnet) of every test video, once each (a snippet's score goes
    to each of its frames)."""
    import numpy as np

    from mgenet.baselines.engine.arnet import load_arnet, score_videos
    from mgenet.baselines.snippets import snippet_to_frames
    from mgenet.io import read_snippets
    from mgenet.io import read_manifest, write_parquet
    from mgenet.runtime import resolve_device

    dev = resolve_device(device)
    model, mean, std, _ = load_arnet(model_path, dev)
    man = read_manifest(manifest)
    test = man[man["split"] == "test"].set_index("video")
    given = [snippet_video(f) for f in snippets]
    if sorted(given) != sorted(test.index):
        extra, lacking = sorted(set(given) - set(test.index)), sorted(set(test.index) - set(given))
        raise MgenetError(f"score-arnet scores every test video of {manifest} once: "
                          f"{f'not test videos: {extra[:5]}' if extra else f'no snippets file for {lacking[:5]}'}.")
    snips = [read_snippets(f) for f in snippets]
    for f, v, s in zip(snippets, given, snips):
        if s.frames != int(test.loc[v, "frames"]):
            raise MgenetError(f"{f}: snippets of {s.frames} frames, but the manifest says video {v!r} has "
                              f"{int(test.loc[v, 'frames'])}; delete it and rerun extract_snippets.")
    scores = score_videos(model, [s.features for s in snips], mean, std, dev)
    parts = [pd.DataFrame({"video": v, "frame": np.arange(s.frames, dtype=np.int64),
                           "arnet": snippet_to_frames(sc, s.start_frame, s.snippet_len, s.frames).astype(np.float64)})
             for v, s, sc in zip(given, snips, scores)]
    table = pd.concat(parts, ignore_index=True).sort_values(["video", "frame"])
    write_parquet(table, out)
    log.info("AR-Net scored %d test videos (%d snippets) -> %s", len(snips), sum(len(s) for s in scores), out)
    return table
