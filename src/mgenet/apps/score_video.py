"""Score one new video with trained models (``mgenet score-video``).

The video goes through the DAG's steps, with the functions its rules call, every intermediate file in a temporary
folder: pose (extracted with the configured backend, or an AlphaPose tracked-person file given with ``pose``),
segments, the flow's S_nf and, when the models folder holds ``stage2.pt``, Video Swin features and S_mo, S_app, S_mm;
then fusion and per-frame scores. The output folder gets ``frames.csv``, ``persons.csv`` (who), ``events.csv``
(when, and who at the peak), ``scores.png``, the overlay video (``overlay.mp4``, unless ``video=False``), ``index.html``
and ``provenance.json`` with each stage's seconds and frames/s, each written atomically (``mgenet.apps.video_outputs``
describes the new ones and the event threshold).

Checkpoint only: a models folder with nothing but ``flow.pt`` (``mgenet import-stgnf CKPT --out models/flow.pt``) is
enough; its segment settings are STG-NF's defaults (with a warning) and, with no reference beside it, the scores are
scaled over the video and events are the video's own outliers (see the threshold rule).

Settings. A new video must be cut and featurised as the training videos were, so these come from the models:

- segments (seg_len, max_missing, keep_last_window): the flow checkpoint's ``segments`` (train-flow reads them from
  its training files' provenance); for a checkpoint older than that, the provenance of the training segments files
  beside the models folder (``results/{ds}/segments/``). ``test_stride`` says how densely to score, not how the flow
  was trained: the config's, else 1 (STG-NF).
- features (backbone checkpoint with its sha256, or ``random:<seed>``; crop, widen, scene frames and size): the
  stage-2 checkpoint's ``provenance.features``, else the training features files beside the models folder. The
  backbone file used now must have the recorded sha256.
- pose, fusion weights, motion measure, normalisation, S_mm form, smoothing, device: the config (the run's
  config.yaml), else the defaults: Eq. 16's weights with stage 2, S_nf alone without, ``test_minmax``, Eq. 15's
  two-sided S_mm, STG-NF's smoothing.
A model setting found in neither place is taken from the config with a warning: it cannot be checked.

Scaling. The fusion scales the components as ``fusion.normalise`` says (``mgenet.scoring.fusion``), and frames that no
segment covers get the most normal frame score of a reference. One video is no test set: scaled over itself, a normal
video would span [0, 1] just like an anomalous one. So the scaling and the fill come from a reference table of segment
scores, as in the DAG:

- ``train``: the training segments' scores (``results/{ds}/scores/segments_train.parquet``, beside the models
  folder); no test-set file is needed.
- ``test_minmax`` and ``sum_then_minmax``: the test set's, as ``score_components`` wrote it
  (``results/{ds}/scores/segments.parquet``). Min-max uses no label, so using the test set's ranges leaks nothing.

Either way the new video's fused score is on the scale the evaluation used (it can leave the reference's range where
the video is more or less anomalous than any reference segment), and a test video of that run gets exactly its DAG
scores. Only without a reference is the video scaled over itself, with a warning that its fused score then ranks its
own frames and nothing more.

A video with no person (or no track long enough for one window) is a documented result, not an error: every frame
gets the most normal score (the reference's fill, 0 without a reference) and a warning says why.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mgenet import MgenetError, __version__
from mgenet.config import validate_config
from mgenet.scoring.components import join_stage2, segment_table
from mgenet.engine.flow import encode_flow, load_checkpoint
from mgenet.runtime import resolve_device
from mgenet.io import (PoseDict, atomic_path, load_torch, pose_summary, provenance, read_alphapose, read_attrs,
                       read_intervals, read_parquet, write_json, write_segments)
from mgenet.evaluation.report import COLOURS, SHORT
from mgenet.scoring.frames import DEFAULT_SIGMAS, frame_scores, lowest_frame_scores, smooth
from mgenet.scoring.fusion import (COMPONENTS, FUSED, TRAIN_QUANTILE, FusionSettings, Scaling, fit_scaling,
                                   fuse_segments, select_motion_score)
from mgenet.pose.segments import SegmentConfig, build_segments
from mgenet.io.video import probe
from mgenet.apps.video_outputs import (EVENT_QUANTILE, Threshold, find_events, person_table, self_threshold,
                                       write_csv, write_overlay, write_page)

log = logging.getLogger("mgenet")

FRAME_COLUMNS = ["frame", *COMPONENTS, FUSED, "smoothed"]
STAGE2_COMPONENTS = ("mo", "app", "mm")
EQ16_WEIGHTS = {"mo": 1.0, "app": 0.1, "mm": 0.1}


@dataclass
class Reference:
    """Scaling (``mgenet.scoring.fusion.fit_scaling``) and uncovered-frame fill of a reference segment score table: the
    training segments' under ``train``, else the test set's."""

    path: str
    normalise: str
    scaling: Scaling
    fill: dict[str, float]


@dataclass
class Settings:
    """What scoring one video needs, resolved from the models, the config and the defaults (``sources`` says which)."""

    segments: SegmentConfig
    features: dict[str, Any] | None  # FeatureConfig fields plus the expected checkpoint_sha256; None: S_nf alone
    pose: dict[str, Any]
    weights: dict[str, float]
    motion_score: str
    normalise: str
    train_quantile: float
    mm_form: str
    sigmas: list[float]
    device: str
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    frames: pd.DataFrame  # FRAME_COLUMNS, one row per frame
    settings: Settings
    reference: Reference | None
    persons: int
    segments: int
    seconds: dict[str, float]
    person_frames: pd.DataFrame = field(default_factory=pd.DataFrame)  # video_outputs.PERSON_COLUMNS
    events: pd.DataFrame = field(default_factory=pd.DataFrame)  # video_outputs.EVENT_COLUMNS
    threshold: Threshold | None = None
    overlay: dict[str, Any] = field(default_factory=dict)  # path, codec, frames, fps (empty without video)
    fps: float = 0.0
    pose_stats: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- settings


def read_config(path: str | Path | None) -> dict[str, Any]:
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise MgenetError(f"{path}: config file not found; give the config.yaml the models were trained with, or "
                          f"leave out --config.")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise MgenetError(f"{path}: not valid YAML ({e}).") from e
    # the DAG's schema (an unknown key, a negative weight are errors), then the DAG's settings classes below
    return validate_config(cfg, path)


def find_models(models: str | Path) -> tuple[Path, Path | None]:
    """``flow.pt`` of a models folder (required) and its ``stage2.pt`` (None when absent: S_nf alone)."""
    models = Path(models)
    if not models.is_dir():
        raise MgenetError(f"{models}: models folder not found; train the models first (`snakemake`, which writes "
                          f"results/<dataset>/models/) and pass that folder as --models.")
    flow = models / "flow.pt"
    if not flow.is_file():
        raise MgenetError(f"{flow}: flow checkpoint not found; it is made by rule train_flow (`snakemake {flow}`).")
    stage2 = models / "stage2.pt"
    return flow, stage2 if stage2.is_file() else None


def _training_files(folder: Path) -> list[Path]:
    """The HDF5 files of a results folder whose provenance says they belong to a training video."""
    out = []
    for p in sorted(folder.glob("*.h5")) if folder.is_dir() else []:
        if str(read_attrs(p, "HDF5 file").get("split", "")) == "train":
            out.append(p)
    return out


def resolve_segments(flow_ck: dict[str, Any], models: Path, config: dict[str, Any]) -> tuple[SegmentConfig, str]:
    """The segment settings the flow was trained with (see the module docstring), and where they came from."""
    from mgenet.pose.segments import segment_training_settings

    seg_len = int(flow_ck["model_config"]["seg_len"])
    section = dict(config.get("segments") or {})
    trained, source = dict(flow_ck.get("segments") or {}), "the flow checkpoint"
    if not trained:
        files = _training_files(models.parent / "segments")
        trained = segment_training_settings(files) if files else {}
        source = f"the provenance of {len(files)} training segments files in {models.parent / 'segments'}"
    if not trained:
        source = "the config" if section else "the defaults (STG-NF's)"
        log.warning("the flow checkpoint does not record its segment settings and no training segments files are "
                    "beside it: using %s with the flow's seg_len %d; windows may differ from training", source,
                    seg_len)
    if int(trained.get("seg_len", seg_len)) != seg_len:
        raise MgenetError(f"{models / 'flow.pt'}: the flow takes windows of {seg_len} frames but its training "
                          f"segments have seg_len {trained['seg_len']}; the models folder mixes two runs.")
    test_stride = section.get("test_stride", SegmentConfig.test_stride)
    try:
        cfg = SegmentConfig.from_dict({**section, **trained, "seg_len": seg_len, "test_stride": test_stride})
    except (TypeError, ValueError) as e:
        raise MgenetError(f"segment settings: {e}") from e
    return cfg, source


def resolve_features(stage2_ck: dict[str, Any], models: Path, config: dict[str, Any],
                     weights: str | None = None) -> tuple[dict[str, Any], str]:
    """FeatureConfig settings of the features stage 2 was trained on, the expected ``checkpoint_sha256`` among them
    (when known), and where they came from. ``weights`` replaces the recorded backbone path (same sha256 needed)."""
    from mgenet.features.extract import feature_training_settings

    section = dict(config.get("features") or {})
    trained = dict((stage2_ck.get("provenance") or {}).get("features") or {})
    source = "the stage-2 checkpoint"
    if not trained:
        files = _training_files(models.parent / "features")
        trained = feature_training_settings(files) if files else {}
        source = f"the provenance of {len(files)} training features files in {models.parent / 'features'}"
    if not trained:
        if not section:
            raise MgenetError(f"{models / 'stage2.pt'}: cannot tell how the features stage 2 was trained on were "
                              f"made (the checkpoint predates recording it and no training features files are in "
                              f"{models.parent / 'features'}); pass --config with the run's config.yaml.")
        source = "the config (not checked against training)"
        log.warning("features settings taken from the config: stage 2's training features left no provenance to "
                    "check them against")
    params = {**section, **{k: trained[k] for k in ("weights", "crop", "widen", "scene_size", "scene_frames")
                            if k in trained}}
    sha = str(trained.get("checkpoint_sha256", ""))
    if sha.startswith("random:"):
        params["seed"] = int(sha.split(":", 1)[1])  # the seed of the random backbone is part of its identity
    elif "seed" not in params:
        params["seed"] = int(config.get("seed", 0))
    if weights:
        params["weights"] = weights
    params["checkpoint_sha256"] = sha
    return params, source


def resolve_settings(flow_ck: dict[str, Any], stage2_ck: dict[str, Any] | None, models: Path,
                     config: dict[str, Any], features_weights: str | None = None) -> Settings:
    segments, seg_source = resolve_segments(flow_ck, models, config)
    features, feat_source = (resolve_features(stage2_ck, models, config, features_weights) if stage2_ck is not None
                             else (None, "none: no stage-2 model"))
    fusion = FusionSettings.from_dict(dict(config.get("fusion") or {})).mapping()
    weights = {str(k): float(v) for k, v in (fusion.get("weights") or {}).items()}
    weight_source = "the config"
    if not weights:
        weights, weight_source = (dict(EQ16_WEIGHTS) if stage2_ck is not None else {"nf": 1.0}), "the defaults"
    if stage2_ck is None and set(weights) & set(STAGE2_COMPONENTS):
        raise MgenetError(f"fusion.weights {weights} of the config name stage-2 components, but {models} has no "
                          f"stage2.pt; train stage 2, or score with weights for nf only.")
    sigmas = [float(s) for s in (config.get("score") or {}).get("smoothing_sigmas", DEFAULT_SIGMAS)]
    return Settings(segments=segments, features=features, pose=dict(config.get("pose") or {}), weights=weights,
                    motion_score=str(fusion.get("motion_score", "mo")),
                    normalise=str(fusion.get("normalise", "test_minmax")),
                    train_quantile=float(fusion.get("train_quantile", TRAIN_QUANTILE)),
                    mm_form=str((config.get("stage2") or {}).get("mm_form", "two_sided")), sigmas=sigmas,
                    device=str(config.get("device", "auto")),
                    sources={"segments": seg_source, "features": feat_source, "fusion": weight_source,
                             "pose": "the config" if config.get("pose") else "the defaults"})


def reference_path(models: Path, normalise: str) -> Path:
    """The default reference beside a models folder: the training segments' scores under ``train``, else the test
    set's."""
    return models.parent / "scores" / ("segments_train.parquet" if normalise == "train" else "segments.parquet")


def load_reference(path: str | Path | None, default: Path, weights: dict[str, float], motion_score: str,
                   models: tuple[Path, ...] = (), normalise: str = "test_minmax",
                   quantile: float = TRAIN_QUANTILE) -> Reference | None:
    """Scaling and fill of a reference segment score table (``path``, else ``default`` when it exists), fused with
    ``weights`` as ``normalise`` says; None, with a warning saying why, when there is none or it lacks a weighted
    component.

    Raises:
        MgenetError: a ``path`` given but not found.
    """
    which = "the training segments' scores" if normalise == "train" else "the test set's segment scores"
    if path and not Path(path).is_file():
        raise MgenetError(f"{path}: reference scores not found; give {which} of the run ("
                          f"{reference_path(Path('results/<dataset>/models'), normalise)} for fusion.normalise "
                          f"{normalise}), or leave out --reference.")
    given = bool(path)
    path = Path(path) if path else default
    why = f"{path} not found"
    if path.is_file():
        df = read_parquet(path)
        keys = [c for c in ("video", "person_id", "start_frame", "mid_frame") if c not in df.columns]
        if keys:  # a frame table, a baseline's scores, any other table: one line, not a KeyError
            kind = ("a frame score table (fuse_scores' output)" if {"video", "frame"} <= set(df.columns)
                    else "not a segment score table")
            raise MgenetError(f"{path}: {kind}, without the segment keys {keys}; give {which} of the run "
                              f"({reference_path(Path('results/<dataset>/models'), normalise)} for fusion.normalise "
                              f"{normalise}), or leave out --reference.")
        df = select_motion_score(df, motion_score)
        missing = [c for c in weights if c not in df.columns]
        if missing and given:  # asked for by name: scaling the video over itself instead would not be what was asked
            raise MgenetError(f"{path}: reference scores lack the weighted component(s) {missing} (it has "
                              f"{[c for c in df.columns if c in COMPONENTS]}); give {which} of the run these models "
                              f"belong to, or leave out --reference.")
        why = f"{path} lacks component(s) {missing}" if missing else f"{path} has no segment"
        if not missing and len(df):
            stale = [m for m in models if m.stat().st_mtime > path.stat().st_mtime]
            if stale:
                log.warning("%s is older than %s: its statistics may come from earlier models (rerun `snakemake %s`)",
                            path, ", ".join(map(str, stale)), path)
            scaling = fit_scaling(df, weights, normalise, quantile)
            fill = lowest_frame_scores(fuse_segments(df, weights, normalise, df, quantile))
            return Reference(str(path), normalise, scaling, fill)
    log.warning("no reference scores (%s): components are scaled (%s) over this video alone, so its fused score "
                "ranks its own frames but is not comparable with other videos or the test set; pass --reference "
                "with %s", why, normalise, which)
    return None


# -------------------------------------------------------------------------------------------------------- steps


def _given_poses(pose: Path, video: Path, n_frames: int, size: tuple[int, int] | None = None) -> PoseDict:
    if not pose.is_file():
        raise MgenetError(f"{pose}: pose file not found; give this video's AlphaPose tracked-person JSON, or leave "
                          f"out --pose to extract poses from the video.")
    poses = read_alphapose(pose)
    for pid, track in poses.items():
        late = [f for f in track if f >= n_frames]
        if late:
            raise MgenetError(f"{pose}: person {pid}, frame {min(late)}: beyond the {n_frames} frames of {video}; "
                              f"is this the pose file of that video? (frames are 0-based indices)")
    if size is not None:
        width, height = size
        for pid, track in poses.items():
            if not track:
                continue
            kp = np.stack(list(track.values()))  # (frames, 17, 3): x, y, confidence
            xy = np.where(kp[..., 2:3] > 0, kp[..., :2], 0).max(axis=(0, 1))
            # keypoints a little outside the frame are usual (a limb cut by the border); a quarter beyond is not
            if xy[0] > 1.25 * width or xy[1] > 1.25 * height:
                raise MgenetError(f"{pose}: person {pid}: keypoints reach ({xy[0]:.0f}, {xy[1]:.0f}), beyond the "
                                  f"{width}x{height} frames of {video}; is this the pose file of that video, at its "
                                  f"resolution?")
    return poses


def _extract_poses(video: Path, params: dict[str, Any], tmp: Path, threads: int,
                   progress: bool) -> tuple[PoseDict, Any]:
    from mgenet.pose.extract import extract_pose_file

    stats = extract_pose_file(video, tmp / "pose.json", params, threads=threads, progress=progress)
    log.info(stats.line(video.stem))
    return read_alphapose(tmp / "pose.json"), stats


def event_threshold(given: float | None, models: Path, settings: Settings, ref: Reference | None,
                    curve: np.ndarray) -> Threshold:
    """The smoothed fused score above which frames are events (``mgenet.apps.video_outputs``): ``given``, else the
    EVENT_QUANTILE quantile of the training segments' fused scores (``<models>/../scores/segments_train.parquet``),
    else of the reference's segments, each scaled as this video is; without a reference, a rule on ``curve``."""
    if given is not None:
        return Threshold(float(given), "given with --threshold")
    if ref is None:
        return self_threshold(curve)
    candidates = [(models.parent / "scores" / "segments_train.parquet", "training segments"),
                  (Path(ref.path), "test set's segments" if ref.normalise != "train" else "training segments")]
    for path, what in candidates:
        if not path.is_file():
            continue
        df = select_motion_score(read_parquet(path), settings.motion_score)
        if not len(df) or any(c not in df.columns for c in settings.weights):
            continue
        fused = fuse_segments(df, settings.weights, settings.normalise, df, settings.train_quantile,
                              scaling=ref.scaling)[FUSED].to_numpy(np.float64)
        value = float(np.quantile(fused[np.isfinite(fused)], EVENT_QUANTILE))
        extra = "" if what == "training segments" else " (no training segment scores beside the models: anomalous " \
                                                       "test windows raise it)"
        return Threshold(value, f"the {EVENT_QUANTILE:g} quantile of the fused scores of the {len(df)} {what} in "
                                f"{path}{extra}")
    return self_threshold(curve)


def _stage2_scores(video: Path, name: str, stage2: Path, params: dict[str, Any], seg_path: Path, flow_path: Path,
                   tmp: Path, device: torch.device, threads: int, progress: bool, n_clips: int,
                   mm_form: str = "two_sided") -> pd.DataFrame:
    from tqdm import tqdm

    from mgenet.engine.stage2 import score_stage2
    from mgenet.features.extract import FeatureConfig, extract_video_features
    from mgenet.features.swin import CHECKPOINT_NAME, load_backbone

    expected = params.pop("checkpoint_sha256")
    cfg = FeatureConfig.from_dict({**params, "device": str(device)})
    if cfg.weights != "random" and not Path(cfg.weights).is_file():
        raise MgenetError(f"{cfg.weights}: the Video Swin checkpoint stage 2's training features were made with is "
                          f"not there; put {CHECKPOINT_NAME} there (README, 'Features and weights') or pass "
                          f"--features-weights with its path (sha256 {expected[:12] or 'unrecorded'}).")
    backbone, digest = load_backbone(cfg.weights, cfg.seed)
    if expected and digest != expected:
        raise MgenetError(f"{cfg.weights}: backbone {digest[:16]} is not the one stage 2's training features were "
                          f"made with ({expected[:16]}); pass --features-weights with that checkpoint.")
    feat_path = tmp / "features" / f"{name}.h5"
    attrs = {"video": name, "split": "test", "scene": "", "config_hash": "", "checkpoint_sha256": digest,
             "weights": cfg.weights, "device": str(device)}
    with tqdm(total=n_clips, unit="clip", desc="features", disable=not progress) as bar:
        stats = extract_video_features(video, seg_path, feat_path, cfg, backbone.to(device), device, attrs,
                                       threads=threads, progress=bar.update)
    log.info("features: %s", stats.summary())
    return score_stage2(stage2, [(feat_path, flow_path)], device=device, mm_form=mm_form)


def score_video(video: str | Path, models: str | Path, out: str | Path, pose: str | Path | None = None,
                config: str | Path | None = None, reference: str | Path | None = None,
                features_weights: str | None = None, threads: int = 1, progress: bool = False,
                video_out: bool = True, threshold: float | None = None) -> Result:
    """Score every frame of one video and write ``out/frames.csv``, ``persons.csv``, ``events.csv``, ``scores.png``,
    ``overlay.mp4`` (or ``.webm``), ``index.html`` and ``provenance.json``.

    Args:
        video: a video file or a folder of numbered frames.
        models: the models folder of a run (``results/{ds}/models``): ``flow.pt``, and ``stage2.pt`` if trained.
        out: the output folder (created).
        pose: the video's AlphaPose tracked-person JSON, instead of extracting poses (the demo: its rendered people
            are scored with the generator's poses).
        config: the run's config.yaml, for pose, fusion, smoothing, device and test_stride (module docstring).
        reference: segment scores to fit the scaling and the uncovered-frame fill on; default
            ``<models>/../scores/segments_train.parquet`` under ``fusion.normalise: train``, else
            ``<models>/../scores/segments.parquet``, when it exists; else the video alone (with a warning).
        features_weights: the Video Swin checkpoint, when it is no longer where the training run recorded it.
        threads: decoder threads (torch's are set by the caller).
        progress: tqdm bars (stderr) for pose extraction and features.
        video_out: write the overlay video (False: ``--no-video``).
        threshold: the events' threshold on the smoothed fused score (default: see :func:`event_threshold`).

    Returns:
        The frame table (FRAME_COLUMNS: per-frame nf, mo, app, mm and fused, not smoothed, max over persons;
        ``smoothed`` = fused smoothed with the configured sigmas; components that did not run are NaN), the resolved
        settings and timings.

    Raises:
        MgenetError: a missing video, models folder, flow checkpoint, pose file or backbone checkpoint, or a bad
            setting, each naming the file and the fix.
    """
    t_start = time.perf_counter()
    video, models, out = Path(video), Path(models), Path(out)
    if not video.exists():
        raise MgenetError(f"{video}: video not found; give a video file (.mp4, .avi, ...) or a folder of numbered "
                          f"frame images.")
    flow_pt, stage2_pt = find_models(models)
    cfg = read_config(config)
    info = probe(video)
    name = video.stem if video.is_file() else video.name
    device = resolve_device(str(cfg.get("device", "auto")))
    flow, flow_ck = load_checkpoint(flow_pt, device)
    stage2_ck = load_torch(stage2_pt, "stage-2 checkpoint", keys=("config", "state_dict")) if stage2_pt else None
    settings = resolve_settings(flow_ck, stage2_ck, models, cfg, features_weights)
    for what, source in settings.sources.items():
        log.info("%s settings: %s", what, source)
    ref = load_reference(reference, reference_path(models, settings.normalise), settings.weights,
                         settings.motion_score, tuple(p for p in (flow_pt, stage2_pt) if p), settings.normalise,
                         settings.train_quantile)
    seconds: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="mgenet-score-video-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        n_frames = info.frames
        pose_stats: dict[str, Any] = {}
        if pose:
            poses = _given_poses(Path(pose), video, n_frames, (info.width, info.height))
        else:
            poses, stats = _extract_poses(video, settings.pose, tmp, threads, progress)
            n_frames = stats.frames
            pose_stats = {"persons_per_frame": round(stats.persons_per_frame, 2), "tracks": stats.tracks,
                          "processed_frames": stats.processed,
                          "seconds": {k: round(v, 2) for k, v in stats.timings.items()}}
        seconds["pose"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        seg_cfg = settings.segments
        arrays = build_segments(poses, info.width, info.height, "test", seg_cfg)
        seg_path = tmp / "segments" / f"{name}.h5"
        write_segments(seg_path, arrays, provenance(
            "", video=name, split="test", scene="", frames=n_frames, width=info.width, height=info.height,
            stride=seg_cfg.test_stride, **{k: v for k, v in seg_cfg.to_dict().items() if not k.endswith("stride")}))
        n_seg = len(arrays["person_id"])
        flow_path = tmp / "flow" / "test.h5"
        encode_flow(flow, [seg_path], flow_path, device=device)
        seg = segment_table(flow_path)
        seconds["segments_flow"] = time.perf_counter() - t0
        n_persons = pose_summary(poses)["tracks"]
        log.info("%s: %d frames, %d tracked persons, %d windows of %d frames", name, n_frames, n_persons, n_seg,
                 seg_cfg.seg_len)
        if n_seg == 0:
            log.warning("%s: %s; every frame gets the most normal score", video,
                        "no person found" if not poses else f"no person tracked for {seg_cfg.seg_len} frames")

        if settings.features is not None:
            t0 = time.perf_counter()
            if n_seg:
                s2 = _stage2_scores(video, name, stage2_pt, dict(settings.features), seg_path, flow_path, tmp,
                                    device, threads, progress, n_seg, settings.mm_form)
                seg = join_stage2(seg, s2)
            else:
                seg = seg.assign(**{c: pd.Series(dtype=np.float64) for c in STAGE2_COMPONENTS})
            seconds["features_stage2"] = time.perf_counter() - t0

    seg = select_motion_score(seg, settings.motion_score)
    seg = fuse_segments(seg, settings.weights, settings.normalise, seg, settings.train_quantile,
                        scaling=ref.scaling if ref else None)
    videos = pd.DataFrame({"video": [name], "frames": [n_frames]})
    table = frame_scores(seg, videos, {name: np.zeros(n_frames, np.uint8)}, read_intervals(None), sigmas=[],
                         fill=ref.fill if ref else None)
    frames = table.reindex(columns=FRAME_COLUMNS)  # components that did not run: NaN
    frames["smoothed"] = smooth(frames[FUSED].to_numpy(), settings.sigmas)
    t0 = time.perf_counter()
    curve = frames["smoothed"].to_numpy(np.float64)
    persons = person_table(poses, seg)
    thr = event_threshold(threshold, models, settings, ref, curve)
    log.info("event threshold %.4g: %s", thr.value, thr.rule)
    events = find_events(curve, thr.value, persons, info.fps)
    result = Result(frames, settings, ref, n_persons, n_seg, seconds, persons, events, thr, fps=info.fps,
                    pose_stats=pose_stats)
    seconds["tables"] = time.perf_counter() - t0
    if video_out:
        from mgenet.pose.extract import iter_frames

        t0 = time.perf_counter()
        path, codec, written = write_overlay(iter_frames(video), out / "overlay", info.fps, info.width, info.height,
                                             n_frames, poses, persons, curve, frames[FUSED].to_numpy(np.float64),
                                             thr.value, events, threads)
        seconds["overlay"] = time.perf_counter() - t0
        result.overlay = {"path": path.name, "codec": codec, "frames": written, "fps": info.fps}
        log.info("overlay: %s, %d frames at %.3g frames/s, %s", path, written, info.fps, codec)
    seconds["total"] = time.perf_counter() - t_start
    write_outputs(result, video, models, pose, out)
    return result


def stage_rates(seconds: dict[str, float], pose_stats: dict[str, Any], n_frames: int) -> dict[str, float]:
    """Frames of the video per second of each stage (pose's own stages too: detect, keypoints, tracking)."""
    stages = {**{f"pose.{k}": v for k, v in (pose_stats.get("seconds") or {}).items()}, **seconds}
    return {k: round(n_frames / v, 1) if v > 0 else float("inf") for k, v in stages.items()}


# ------------------------------------------------------------------------------------------------------ outputs


def curve_figure(frames: pd.DataFrame, title: str) -> Figure:
    """One row per component that ran (top) and the fused score with its smoothed curve (bottom), sharing frames."""
    cols = [c for c in COMPONENTS if frames[c].notna().any()] + [FUSED]
    fig = Figure(figsize=(10, 0.7 + 1.0 * len(cols)), layout="constrained")
    axes = fig.subplots(len(cols), 1, sharex=True, squeeze=False)[:, 0]
    x = frames["frame"].to_numpy()
    for ax, c in zip(axes, cols):
        if c == FUSED:
            ax.plot(x, frames[FUSED], color="0.65", lw=0.8, label="fused")
            ax.plot(x, frames["smoothed"], color=COLOURS[FUSED], lw=1.6, label="smoothed")
            ax.legend(loc="upper right", fontsize=7, frameon=False, ncols=2)
        else:
            ax.plot(x, frames[c], color=COLOURS[c], lw=1.0)
        ax.set_ylabel(SHORT[c], rotation=0, ha="right", va="center", fontsize=8, color=COLOURS[c])
        ax.tick_params(labelsize=7, length=2, pad=1)
    axes[-1].set_xlabel("frame", fontsize=8)
    if len(x):
        axes[-1].set_xlim(x[0] - 0.5, x[-1] + 0.5)
    axes[0].set_title(title, loc="left", fontsize=9)
    return fig


def write_outputs(result: Result, video: Path, models: Path, pose: str | Path | None, out: Path) -> None:
    s, ref = result.settings, result.reference
    with atomic_path(out / "frames.csv") as tmp:
        result.frames.to_csv(tmp, index=False)
    write_csv(result.person_frames, out / "persons.csv")
    write_csv(result.events, out / "events.csv")
    n = len(result.frames)
    rates = stage_rates(result.seconds, result.pose_stats, n)
    log.info("frames/s per stage: %s", ", ".join(f"{k} {v:g}" for k, v in rates.items()))
    scale = f"{s.normalise} with {ref.path}" if ref else f"{s.normalise} over this video alone"
    fig = curve_figure(result.frames, f"{video.name}: per-frame scores (max over persons); fused = "
                                      f"{' + '.join(f'{w:g} {c}' for c, w in s.weights.items())}, {scale}")
    FigureCanvasAgg(fig)
    with atomic_path(out / "scores.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    write_json({
        "video": str(video), "frames": len(result.frames), "persons": result.persons, "segments": result.segments,
        "models": str(models), "pose": str(pose) if pose else {"extracted": s.pose or "defaults"},
        "segment_settings": s.segments.to_dict(), "features": s.features, "fusion_weights": s.weights,
        "motion_score": s.motion_score, "mm_form": s.mm_form, "smoothing_sigmas": s.sigmas, "sources": s.sources,
        "normalisation": asdict(ref) if ref else f"{s.normalise} over this video alone",
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()}, "frames_per_second": rates,
        "pose_extraction": result.pose_stats or None, "fps": result.fps,
        "events": {"threshold": result.threshold.value if result.threshold else None,
                   "threshold_rule": result.threshold.rule if result.threshold else None,
                   "compared": "the smoothed fused score", "count": int(result.events["event"].nunique())
                   if len(result.events) else 0},
        "overlay": result.overlay or None, "mgenet_version": __version__,
    }, out / "provenance.json")
    summary = [(f"{n} frames at {result.fps:g} frames/s, {result.persons} tracked persons, {result.segments} "
                f"windows; fused = {' + '.join(f'{w:g} {c}' for c, w in s.weights.items())}, {scale}."),
               "Frames/s per stage: " + ", ".join(f"{k} {v:g}" for k, v in rates.items()) + ".",
               "Files: frames.csv, persons.csv, events.csv, scores.png, provenance.json."]
    write_page(out / "index.html", f"{video.name}: anomaly scores", result.overlay.get("path"), result.fps,
               result.frames["smoothed"].to_numpy(np.float64),
               result.threshold or Threshold(float("inf"), "none"), result.events, summary)
    log.info("%d frames -> %s: frames.csv, persons.csv, events.csv (%d events), scores.png, %sindex.html, "
             "provenance.json", n, out, int(result.events["event"].nunique()) if len(result.events) else 0,
             f"{result.overlay['path']}, " if result.overlay else "")
