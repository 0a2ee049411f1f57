"""Stage 1's file-level jobs, as `mgenet train-flow / import-stgnf / encode-flow` run them: settings in, checkpoint or
latents file out, with the provenance a flow checkpoint records."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mgenet import MgenetError, __version__
from mgenet.config import FromDict

log = logging.getLogger("mgenet")


@dataclass
class FlowSettings(FromDict):
    """``params_json("flow", "seed", "device", seg_len=...)``: the flow section, the global seed and device, and the
    segments' window length."""

    SECTION: ClassVar[str] = "flow"
    IGNORED: ClassVar[tuple[str, ...]] = ("encode_batch_size",)  # encode_flow's, not training's

    seg_len: int | None = None
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    checkpoint: str | None = None  # an official STG-NF checkpoint (or an mgenet flow.pt) to use instead of training
    seed: int = 0
    device: str = "auto"


@dataclass
class EncodeSettings(FromDict):
    """``--params`` of encode-flow."""

    SECTION: ClassVar[str] = "encode"

    batch_size: int = 1024
    device: str = "auto"


def is_mgenet_flow(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a flow checkpoint mgenet wrote (rather than STG-NF's): a zip-format torch file whose
    pickle names model_config and train_config (read without unpickling anything)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            data = z.read(pkl) if pkl else b""
    except (OSError, zipfile.BadZipFile):
        return False
    return b"model_config" in data and b"train_config" in data and b"state_dict" in data


def import_flow(path: str | os.PathLike, out: str | os.PathLike, seg_len: int | None,
                extra: dict[str, Any]) -> None:
    """Import an official STG-NF checkpoint and save it as an mgenet flow checkpoint (history empty). An mgenet flow
    checkpoint (another run's flow.pt) is taken as it is, with its history, once it loads and has ``seg_len``."""
    from mgenet.engine.flow import FlowTrainConfig, save_checkpoint
    from mgenet.engine.stgnf_checkpoint import import_stgnf
    from mgenet.io import sha256_file

    if is_mgenet_flow(path):
        from mgenet.engine.flow import load_checkpoint

        model, ckpt = load_checkpoint(path)
        if seg_len is not None and model.cfg.seg_len != seg_len:
            raise MgenetError(f"{path}: a flow trained on windows of {model.cfg.seg_len} frames, but segments.seg_len "
                              f"is {seg_len}; set segments.seg_len: {model.cfg.seg_len} or give another flow.")
        kept = {k: v for k, v in ckpt.items() if k not in ("model_config", "train_config", "state_dict", "history")}
        info = {"source": str(path), "sha256": sha256_file(path), "format": "mgenet"}
        try:
            train_cfg = FlowTrainConfig.from_dict(ckpt["train_config"])
        except MgenetError:  # an earlier version's training settings: the weights are what matters here
            train_cfg = FlowTrainConfig()
        save_checkpoint(out, model, model.cfg, train_cfg, ckpt["history"],
                        extra={**kept, "mgenet_version": __version__, "imported_from": info, **extra})
        log.info("mgenet flow checkpoint %s (seg_len %d) taken as it is -> %s", path, model.cfg.seg_len, out)
        return

    model, info = import_stgnf(path, seg_len=seg_len)
    info["sha256"] = sha256_file(path)
    save_checkpoint(out, model, model.cfg, FlowTrainConfig(), [],
                    extra={"mgenet_version": __version__, "imported_from": info, **extra})
    log.info("STG-NF checkpoint %s (epoch %s, seg_len %d, R %g) imported -> %s", path, info["epoch"],
             model.cfg.seg_len, model.cfg.prior_mean, out)


def supervised_labels(segments: list[str], abnormal: list[str], label_files: list[str],
                      persons: str = "stgnf") -> tuple[list, dict]:
    """The label arrays of STG-NF's supervised setting, one per file of ``segments + abnormal`` (``None``: all normal),
    and how many windows got each label (flip augmentation not counted). ``persons`` is
    ``flow.train.label_persons`` (:mod:`mgenet.pose.labels`)."""
    from mgenet import MgenetError
    from mgenet.io import open_segments, segment_count
    from mgenet.pose.labels import read_labels, stgnf_person_selection

    if len(label_files) != len(abnormal):
        raise MgenetError(f"train-flow: {len(abnormal)} anomalous training segments file(s) but {len(label_files)} "
                          f"label table(s); give one --labels per --abnormal-segments, in the same order.")
    labels: list = [None] * len(segments)
    ab = [read_labels(lab, segment_count(seg)) for seg, lab in zip(abnormal, label_files)]
    if persons == "stgnf" and abnormal:
        videos, pids, starts = [], [], []
        for seg in abnormal:
            with open_segments(seg) as f:
                keys = f.keys(("person_id", "start_frame"))
                videos.append(f.video)
            pids.append(keys["person_id"])
            starts.append(keys["start_frame"])
        ab = stgnf_person_selection(videos, pids, starts, ab)
    labels += ab
    n_normal_videos = sum(segment_count(p) for p in segments)
    n_pos = sum(int((lab == 1).sum()) for lab in labels[len(segments):])
    n_neg = sum(int((lab == -1).sum()) for lab in labels[len(segments):])
    counts = {"normal_videos_label_1": n_normal_videos, "abnormal_train_label_1": n_pos,
              "abnormal_train_label_-1": n_neg, "label_1": n_normal_videos + n_pos, "label_-1": n_neg}
    return labels, counts


def train_flow_job(segments: list[str], out: str | os.PathLike, s: FlowSettings, config_hash: str = "",
                   abnormal: list[str] | None = None, label_files: list[str] | None = None) -> None:
    """Train the flow on the training ``segments`` (or import ``s.checkpoint``) and save its checkpoint, which
    records the segment settings the flow learned from (for `mgenet score-video`). With ``flow.train.supervised``,
    the ``abnormal`` (anomalous training videos') segments join them with their ``label_files``, and the log and the
    checkpoint (``window_labels``) say how many windows got each label."""
    from mgenet.pose.segments import segment_training_settings

    if s.checkpoint:
        import_flow(s.checkpoint, out, s.seg_len,
                    {"config_hash": config_hash, "segments": segment_training_settings(segments)})
        return
    from mgenet.engine.flow import FlowTrainConfig, save_checkpoint, train_flow
    from mgenet.models.flow import FlowConfig

    model_cfg = FlowConfig.from_dict({**s.model, "seg_len": s.seg_len})
    train_cfg = FlowTrainConfig.from_dict({**s.train, "seed": s.seed, "device": s.device})
    extra: dict[str, Any] = {}
    labels = None
    if train_cfg.supervised:
        labels, counts = supervised_labels(segments, abnormal or [], label_files or [], train_cfg.label_persons)
        log.info("supervised (STG-NF): %d windows labelled 1 (%d of normal videos, %d of anomalous ones), %d labelled "
                 "-1, prior N(+-%g, I)", counts["label_1"], counts["normal_videos_label_1"],
                 counts["abnormal_train_label_1"], counts["label_-1"], model_cfg.prior_mean)
        extra["window_labels"] = counts
        segments = list(segments) + list(abnormal or [])
    elif abnormal:
        log.info("flow.train.supervised is false: the %d anomalous training videos are not used", len(abnormal))
    model, history = train_flow(segments, model_cfg, train_cfg, log=log.info, labels=labels)
    save_checkpoint(out, model, model_cfg, train_cfg, history,
                    extra={"mgenet_version": __version__, "config_hash": config_hash,
                           "segments": segment_training_settings(segments), **extra})
    log.info("flow checkpoint -> %s", out)


def encode_flow_job(model_path: str, segments: list[str], out: str, s: EncodeSettings) -> None:
    """Latent and NLL of every segment under the trained flow, one group per video."""
    from mgenet.engine.flow import encode_flow, load_checkpoint
    from mgenet.runtime import resolve_device

    device = resolve_device(s.device)
    model, _ = load_checkpoint(model_path, device)
    encode_flow(model, segments, out, batch_size=int(s.batch_size), device=device)
    log.info("flow latents and NLL of %d videos -> %s", len(segments), out)
