"""How many backbone clips and bytes a dataset's features take, per layout, before any is extracted (`mgenet features
--estimate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mgenet.features.extract import FeatureConfig, chunk_sequences, plan_tracks, track_context
from mgenet.features.swin import SwinConfig
from mgenet.io import read_segments

# ----------------------------------------------------------------------------------------------------- estimate


def clip_bytes(cfg: FeatureConfig, seg_len: int, swin: SwinConfig = SwinConfig()) -> int:
    """Uncompressed bytes of one clip row: float16 tokens, float32 crop boxes and three int32 ids."""
    return int(np.prod(swin.token_shape(seg_len, *cfg.crop))) * 2 + seg_len * 4 * 4 + 3 * 4


def track_row_bytes(cfg: FeatureConfig, swin: SwinConfig = SwinConfig()) -> int:
    """Uncompressed bytes of one track_tokens row (layout track): float16 tokens and its two int32 frame numbers."""
    _, h, w, c = swin.token_shape(swin.patch_size[0], *cfg.crop)
    return h * w * c * 2 + 2 * 4


def scene_bytes(cfg: FeatureConfig, swin: SwinConfig = SwinConfig()) -> int:
    _, h, w, c = swin.token_shape(swin.patch_size[0], *cfg.scene_size)
    return (h * w * c + c) * 4


def layout_counts(frames: np.ndarray, person_id: np.ndarray, cfg: FeatureConfig,
                  swin: SwinConfig = SwinConfig()) -> dict[str, int]:
    """What each layout computes and stores for one video's windows ``frames`` (N, T) of persons ``person_id``:
    clips, window_frames (frames through the backbone, layout window), track_rows and track_frames (layout track)."""
    n, T = frames.shape
    pt = swin.patch_size[0]
    out = {"clips": int(n), "window_frames": int(n * T), "track_rows": 0, "track_frames": 0}
    if n == 0 or T % pt:
        return out
    plan = plan_tracks(frames, person_id, np.zeros((n, T, 4), np.float32), patch_t=pt)
    chunks = chunk_sequences(plan.seq_tokens, cfg.track_chunk // pt, track_context(swin))
    out["track_rows"] = plan.n_tokens
    out["track_frames"] = int((chunks[:, 2] - chunks[:, 1]).sum()) * pt
    return out


def estimate_table(counts: list[dict[str, Any]], cfg: FeatureConfig, seg_len: int) -> str:
    """A printable storage and backbone-work estimate of both layouts from per-video counts ({video, split, exact}
    and :func:`layout_counts`' keys)."""
    per_clip, per_row, per_video = clip_bytes(cfg, seg_len), track_row_bytes(cfg), scene_bytes(cfg)
    swin = SwinConfig()
    lines = [f"feature storage estimate (crop {list(cfg.crop)}, seg_len {seg_len}): layout window stores tokens "
             f"{swin.token_shape(seg_len, *cfg.crop)} float16 = {per_clip / 1e6:.3f} MB per clip; layout track one "
             f"row {swin.token_shape(swin.patch_size[0], *cfg.crop)[1:]} = {per_row / 1e6:.4f} MB per 2 frames of a "
             f"person (chunks of {cfg.track_chunk} frames); scene {per_video / 1e6:.3f} MB per video; "
             f"backbone = frames through the backbone",
             f"{'split':<11}{'videos':>7}{'clips':>11}{'window size':>13}{'backbone':>13}{'track rows':>12}"
             f"{'track size':>12}{'backbone':>13}{'size ratio':>12}{'work ratio':>12}"]
    for split in [*sorted({c["split"] for c in counts}, reverse=True), "total"]:
        rows = counts if split == "total" else [c for c in counts if c["split"] == split]
        agg = {k: sum(c[k] for c in rows) for k in ("clips", "window_frames", "track_rows", "track_frames")}
        window = agg["clips"] * per_clip + len(rows) * per_video
        track = agg["track_rows"] * per_row + agg["clips"] * (per_clip - int(np.prod(swin.token_shape(
            seg_len, *cfg.crop))) * 2 + 8) + len(rows) * per_video  # + boxes, ids, clip_token_start
        lines.append(f"{split:<11}{len(rows):>7}{agg['clips']:>11}{_human(window):>13}{agg['window_frames']:>13}"
                     f"{agg['track_rows']:>12}{_human(track):>12}{agg['track_frames']:>13}"
                     f"{window / max(track, 1):>11.1f}x{agg['window_frames'] / max(agg['track_frames'], 1):>11.1f}x")
    inexact = sum(not c["exact"] for c in counts)
    if inexact:
        lines.append(f"({inexact} videos counted from their pose files: no segments file yet)")
    if cfg.compression != "none":
        lines.append(f"compression {cfg.compression}: float16 activations barely shrink (demo: lzf 0%, gzip 8%; "
                     f"`mgenet inspect` shows one file's stored size); budget for the uncompressed size.")
    return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def pose_windows(poses: Any, seg_cfg: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The windows' frames (N, T) and persons (N,) that build_segments cuts from a pose dict (frames only)."""
    from mgenet.pose.segments import window_starts

    T, stride = seg_cfg.seg_len, seg_cfg.stride(split)
    frames, pids = [], []
    for pid in sorted(poses):
        track = sorted(poses[pid])
        for s in window_starts(track, T, stride, seg_cfg.max_missing, seg_cfg.keep_last_window):
            frames.append(track[s:s + T])
            pids.append(pid)
    return np.asarray(frames, np.int64).reshape(-1, T), np.asarray(pids, np.int64)


def count_clips(manifest: Any, segments_dir: str | Path | None, seg_cfg: Any,
                cfg: FeatureConfig = FeatureConfig()) -> list[dict[str, Any]]:
    """Per video of a manifest, :func:`layout_counts` of its windows: the rows of its segments file when there is
    one, else the windows its pose file gives under ``seg_cfg`` (a :class:`mgenet.pose.segments.SegmentConfig`)."""
    from mgenet.io import read_alphapose

    out = []
    for r in manifest.itertuples():
        seg = Path(segments_dir) / f"{r.video}.h5" if segments_dir else None
        if seg is not None and seg.exists():
            arrays, _ = read_segments(seg, ("frames", "person_id"))
            frames, pids, exact = arrays["frames"], arrays["person_id"], True
        else:
            frames, pids = pose_windows(read_alphapose(r.pose_path), seg_cfg, r.split)
            exact = False
        out.append({"video": r.video, "split": r.split, "exact": exact, **layout_counts(frames, pids, cfg)})
    return out


def estimate_from_config(params: dict[str, Any], config: str = "", manifest: str = "",
                         segments_dir: str = "") -> str:
    """The storage table of `mgenet features --estimate`: ``params`` (features settings, and optionally a
    ``segments`` section) over those of a config.yaml, for the manifest given or the config's dataset.

    Raises:
        MgenetError: neither a manifest nor a dataset to index.
    """
    import yaml

    from mgenet import MgenetError
    from mgenet.io import read_manifest
    from mgenet.pose.segments import SegmentConfig

    cfg_yaml: dict[str, Any] = {}
    p = dict(params)
    if config:
        cfg_yaml = yaml.safe_load(Path(config).read_text()) or {}
        p = {**(cfg_yaml.get("features") or {}), **p}
    seg_cfg = SegmentConfig.from_dict({**(cfg_yaml.get("segments") or {}), **p.pop("segments", {})})
    cfg = FeatureConfig.from_dict(p)
    ds = cfg_yaml.get("dataset") or {}
    manifest = manifest or (f"results/{ds['name']}/manifest.csv" if ds.get("name") else "")
    if manifest and Path(manifest).exists():
        df = read_manifest(manifest)
    elif ds.get("root"):
        from mgenet.datasets.adapters import index_dataset

        df = index_dataset(ds["root"], ds.get("layout", "stgnf"), ds.get("resolution"))
    else:
        raise MgenetError(f"{manifest or '--manifest'}: no manifest; give --manifest or --config with a dataset.")
    segments_dir = segments_dir or (f"results/{ds['name']}/segments" if ds.get("name") else "")
    return estimate_table(count_clips(df, segments_dir or None, seg_cfg, cfg), cfg, seg_cfg.seg_len)
