"""`mgenet evaluate` as one job: frame-level metrics of a frame score table, RBDC / TBDC where the dataset has
boxes of its anomalous objects, baselines' own-protocol figures, metrics.json and the HTML report."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mgenet import MgenetError
from mgenet.config import FromDict
from mgenet.evaluation.metrics import format_figure
from mgenet.evaluation.regions import IOU, MAX_FP_PER_FRAME, TRACK_FRACTION
from mgenet.scoring.fusion import FusionSettings

log = logging.getLogger("mgenet")


@dataclass
class EvaluationSettings(FromDict):
    """config.yaml ``evaluation``: the bootstrap's resamples and the RBDC / TBDC settings."""

    SECTION: ClassVar[str] = "evaluation"

    bootstrap: int = 0
    iou: float = IOU
    track_fraction: float = TRACK_FRACTION
    max_fp_per_frame: float = MAX_FP_PER_FRAME


@dataclass
class EvaluateSettings(FromDict):
    """``evaluate_params``: the dataset's name and layout, the seed of the bootstrap, the evaluation section, and
    optionally the fusion section (to fuse the segment scores for RBDC / TBDC) and the whole config (for the report)."""

    SECTION: ClassVar[str] = "evaluate"

    dataset: str = "dataset"
    layout: str = ""  # dataset.layout: which named protocols apply (mgenet.evaluation.protocols); "" none
    seed: int = 0
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    fusion: FusionSettings | None = None
    config: dict | None = None

    def __post_init__(self) -> None:
        if isinstance(self.evaluation, dict):
            self.evaluation = EvaluationSettings.from_dict(self.evaluation)
        if isinstance(self.fusion, dict):
            self.fusion = FusionSettings.from_dict(self.fusion)


@dataclass
class EvaluateInputs:
    """The files of `mgenet evaluate` beyond the frame table (empty: not given)."""

    weak_split: str = ""
    paper_protocol: list[str] = field(default_factory=list)
    boxes: str = ""
    segments: str = ""
    train_scores: str = ""
    segment_files: list[str] = field(default_factory=list)
    report: str = ""
    plots: str = ""
    ablation: str = ""
    seeds: str = ""
    matching_seeds: str = ""
    validation: str = ""
    tuning: str = ""
    models: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)


def read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise MgenetError(f"{path}: {what} not found; rerun the rule that makes it.") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MgenetError(f"{path}: {what} is not valid JSON ({e}); delete it and rerun the rule that makes it.") from e


def localize_run(frames: Any, metrics: dict, s: EvaluateSettings, inp: EvaluateInputs) -> None:
    """RBDC and TBDC into ``metrics`` when the dataset has boxes of its anomalous objects (``inp.boxes``)."""
    from mgenet.evaluation.regions import add_localization, localization
    from mgenet.io import read_parquet
    from mgenet.scoring.components import read_train_scores
    from mgenet.scoring.fusion import fuse_with

    if not Path(inp.boxes).is_file():
        log.info("no boxes of the anomalous objects at %s: RBDC and TBDC are not computed (a demo dataset generated "
                 "before mgenet wrote gt/anomaly_boxes.csv lacks them: delete it and rerun to regenerate it)",
                 inp.boxes)
        return
    if not inp.segments or not inp.segment_files:
        raise MgenetError("evaluate: --boxes needs --segments (the segment score table) and --segment-files (the "
                          "test videos' segments files), whose boxes are the detections.")
    if s.fusion is None:
        raise MgenetError("evaluate: --boxes needs the fusion settings in --params ({\"fusion\": {...}}) to fuse the "
                          "segment scores as rule fuse_scores does.")
    ref = read_train_scores(inp.train_scores, s.fusion.normalise)
    ev = s.evaluation
    fused = fuse_with(read_parquet(inp.segments), s.fusion.mapping(), ref)
    loc = localization(frames, fused, inp.segment_files, inp.boxes, iou=float(ev.iou),
                       track_fraction=float(ev.track_fraction), max_fp=float(ev.max_fp_per_frame))
    if loc is None:
        log.info("%s holds no anomalous region of the test videos: RBDC and TBDC are not computed", inp.boxes)
    add_localization(metrics, loc)


def evaluate_run(frames_path: str, out: str, s: EvaluateSettings, inp: EvaluateInputs) -> dict[str, Any]:
    """metrics.json of the frame score table at ``frames_path`` (written to ``out``), and the report when
    ``inp.report`` is given; returns the metrics."""
    import time

    from mgenet.evaluation.metrics import evaluate
    from mgenet.evaluation.report import collect_provenance, write_report
    from mgenet.io import read_parquet, read_weak_split, write_json

    frames = read_parquet(frames_path)
    degenerate = degenerate_scores(frames, frames_path)
    t0 = time.time()
    weak_split = read_weak_split(inp.weak_split) if inp.weak_split else None
    metrics = evaluate(frames, s.dataset, bootstrap=int(s.evaluation.bootstrap), seed=int(s.seed),
                       weak_split=weak_split, weak_split_name=inp.weak_split)
    log.info("frame-level metrics (%d bootstrap resamples of the test videos) in %.1f s",
             int(s.evaluation.bootstrap), time.time() - t0)
    if s.layout:
        from mgenet.evaluation.metrics import weak_columns
        from mgenet.evaluation.protocols import protocol_metrics

        protocols = protocol_metrics(frames.drop(columns=weak_columns(frames)), s.layout, s.dataset,
                                     int(s.evaluation.bootstrap), int(s.seed))
        if protocols:
            metrics["protocols"] = protocols
    if inp.boxes:
        localize_run(frames, metrics, s, inp)
    metrics["warnings"] = degenerate
    for line in degenerate:
        log.warning(line)
    for path in inp.paper_protocol:  # baselines' figures under their paper's own protocol, labelled as such
        figures = read_json(path, "paper-protocol figures")
        metrics.setdefault("paper_protocol", {})[figures.get("method", Path(path).stem)] = figures
    write_json(metrics, out)
    _log_metrics(metrics, inp.weak_split)
    if inp.report:
        ablation, seeds, matching_seeds = (
            _optional_table(path, what, target) for path, what, target in
            ((inp.ablation, "ablation table", "ablation"), (inp.seeds, "seeds summary", "seeds"),
             (inp.matching_seeds, "summary over matching-memory seeds", "matching_seeds")))
        tuning = _optional_table(inp.tuning, "tuning table", "tune")
        validation = None
        if inp.validation:
            from mgenet.io import MissingFileError

            if not Path(inp.validation).is_file():
                raise MissingFileError(inp.validation, "metrics of the validation split",
                                   otherwise="run `snakemake` (rule evaluate_val makes it).")
            validation = json.loads(Path(inp.validation).read_text())
        provenance = collect_provenance(frames_path, inp.models, inp.features)
        write_report(frames, metrics, Path(inp.report), Path(inp.plots or Path(inp.report).parent / "plots"),
                     config=s.config, provenance=provenance, ablation=ablation, seeds=seeds,
                     matching_seeds=matching_seeds, validation=validation, tuning=tuning)
        log.info("report -> %s", inp.report)
    return metrics


def degenerate_scores(frames: Any, path: str) -> list[str]:
    """What makes the evaluation of a frame score table meaningless: an error where nothing can be measured, and a
    warning (kept in metrics.json's ``warnings``) for each score that is the same on every frame, whose AUC is 0.5
    by construction rather than by measurement.

    Raises:
        MgenetError: the ground truth has no anomalous frame (or no normal one): every AUC would be undefined.
    """
    import numpy as np

    gt = frames["gt"].to_numpy() if "gt" in frames else np.zeros(0)
    if len(gt) and (not gt.any() or gt.all()):
        which, other = ("normal", "anomalous") if not gt.any() else ("anomalous", "normal")
        raise MgenetError(f"{path}: all {len(gt)} frames of its {frames['video'].nunique()} videos are {which} in the "
                          f"ground truth, and an AUC needs {other} frames too; check the dataset's masks "
                          f"(gt/test_frame_mask/<video>.npy: 1 = anomalous; UBnormal's tracks files) and the split.")
    from mgenet.scoring.fusion import score_columns

    out = []
    for c in score_columns(frames):
        x = frames[c].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if len(x) and x.min() == x.max():
            out.append(f"{c}: the same value ({x[0]:.6g}) on every frame, so its AUC is 0.5 by construction, not a "
                       f"measurement; check the weights and inputs that make it")
    return out


def _log_metrics(metrics: dict[str, Any], weak_split: str) -> None:
    skipped = metrics["macro_videos"]["skipped_one_class"]
    if skipped:
        log.info("macro figures average %d videos; %d one-class video(s) skipped: %s",
                 metrics["macro_videos"]["n_used"], len(skipped), ", ".join(skipped))
    for name, m in metrics["scores"].items():
        types = " ".join(f"{t}={v:.3f}" for t, v in m["by_type"].items() if v is not None)
        ci = m.get("micro_auc_ci95")
        ci_text = f" [{format_figure(ci[0])}, {format_figure(ci[1])}]" if ci else ""
        region = f"  RBDC {format_figure(m['rbdc'])}  TBDC {format_figure(m['tbdc'])}" if "rbdc" in m else ""
        f = {k: format_figure(m[k]) for k in ("micro_auc", "macro_auc", "micro_ap", "micro_eer")}
        log.info("%-6s micro AUC %s%s  macro AUC %s  AP %s  EER %s%s  %s", name, f["micro_auc"], ci_text,
                 f["macro_auc"], f["micro_ap"], f["micro_eer"], region, types)
    for name, p in metrics.get("protocols", {}).items():
        log.info("protocol %s (%d test videos; left out %s):", name, p["n_videos"], ", ".join(p["left_out"]))
        for score, m in p["scores"].items():
            log.info("  %-6s micro AUC %s  macro AUC %s", score, format_figure(m["micro_auc"]),
                     format_figure(m["macro_auc"]))
    if "weak" in metrics:
        log.info("weak split's %d test videos (%s):", metrics["weak"]["n_videos"], weak_split)
        for name, m in metrics["weak"]["scores"].items():
            types = " ".join(f"{t}={v:.3f}" for t, v in m["by_type"].items() if v is not None)
            log.info("  %-6s micro AUC %s  macro AUC %s  %s%s", name, format_figure(m["micro_auc"]),
                     format_figure(m["macro_auc"]), types,
                     "  (weakly supervised)" if m["supervision"] == "weak" else "")


def _optional_table(path: str, what: str, target: str) -> Any:
    """A table CSV for the report (a pandas DataFrame), or None when ``path`` is empty; ``target`` makes it."""
    import pandas as pd

    if not path:
        return None
    if not Path(path).is_file():
        raise MgenetError(f"{path}: {what} not found; `snakemake {target}` makes it.")
    return pd.read_csv(path)
