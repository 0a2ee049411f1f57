"""Every file layout of the pipeline, in one place.

Writers go through :func:`atomic_path`: they write to a temporary name beside the target and rename on success, so a
failed or killed job never leaves a half-written artifact that a rerun would take for finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from mgenet import MgenetError, __version__

N_COCO = 17
ALPHAPOSE_SUFFIX = "_alphapose_tracked_person.json"

# ----------------------------------------------------------------------------------------------------------- helpers


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters bracketed, so it matches only itself in a pattern."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A job killed outright (SIGKILL, a node lost) cannot clean up its temporary file; the next writer of the same
    target removes such leftovers first (Snakemake never runs two jobs for one output at once).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob_escape(path.name)}.tmp*"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(config_hash: str = "", **extra: Any) -> dict[str, Any]:
    """Attributes every artifact carries: package version, config hash and stage-specific settings."""
    attrs: dict[str, Any] = {"mgenet_version": __version__, "config_hash": config_hash}
    attrs.update(extra)
    return attrs


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


# The artifacts under results/{dataset}/ and the rules of workflow/rules/*.smk that make them (DESIGN.md §3), so that a
# missing input's error names the rule to run. An ablation variant's and an extra seed's runs live under
# ablation/<variant>/, seeds/<seed>/ and matching_seeds/<seed>/, made by those rules' copies.
MADE_BY = {
    r"manifest\.csv": "index_dataset",
    r"pose/[^/]+\.json": "import_pose or extract_pose (as pose.source says)",
    r"segments/[^/]+\.h5": "build_segments",
    r"features/[^/]+\.h5": "extract_features",
    r"snippets/len\d+/[^/]+\.h5": "extract_snippets",
    r"models/flow\.pt": "train_flow",
    r"flow/(?:train|test)\.h5": "encode_flow",
    r"models/stage2\.pt": "train_stage2",
    r"scores/segments\.parquet": "score_components",
    r"scores/frames\.parquet": "fuse_scores",
    r"eval/metrics\.json": "evaluate",
}
VARIANT_RULES = {
    "ablation": {"train_stage2": "train_stage2_ablation", "score_components": "score_ablation",
                 "fuse_scores": "fuse_ablation", "evaluate": "evaluate_ablation"},
    "seeds": {"train_flow": "train_flow_seed", "encode_flow": "encode_flow_seed", "train_stage2": "train_stage2_seed",
              "score_components": "score_components_seed", "fuse_scores": "fuse_scores_seed",
              "evaluate": "evaluate_seed"},
    "matching_seeds": {"train_stage2": "rewrite_matching", "score_components": "score_components_mseed",
                       "fuse_scores": "fuse_scores_mseed", "evaluate": "evaluate_mseed"},
}


def made_by(path: str | os.PathLike) -> tuple[str, bool] | None:
    """The rule that makes ``path``, and whether ``path`` is a Snakemake target (it lies under ``results/<ds>/``);
    None if no rule makes a file of that name."""
    p = Path(path).as_posix()
    for pattern, rule in MADE_BY.items():
        m = re.search(rf"(?:^|/)(results/[^/]+/)?(?:(ablation|seeds|matching_seeds)/[^/]+/)?{pattern}$", p)
        if m:
            rule = VARIANT_RULES[m.group(2)].get(rule, rule) if m.group(2) else rule
            return rule, m.group(1) is not None
    return None


def missing_file(path: str | os.PathLike, what: str, otherwise: str = "") -> MgenetError:
    """The error for a missing input: names the file, the rule that makes it and the command that runs that rule
    (``otherwise``, the fix, when no rule makes it)."""
    found = made_by(path)
    if found is None:
        return MgenetError(f"{path}: {what} not found" + (f"; {otherwise}" if otherwise else "."))
    rule, target = found
    how = f" (`snakemake {path}`)" if target else ""
    return MgenetError(f"{path}: {what} not found; it is made by rule {rule}{how}.")


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:240]


def unreadable_file(path: str | os.PathLike, what: str, reason: str, fix: str = "") -> MgenetError:
    """The error for an input that exists but cannot be read (truncated, corrupt, tampered with): names the file and
    how to remake it (the rule that makes it, or ``fix``)."""
    found = made_by(path)
    if not fix:
        fix = (f"delete it and run snakemake again (rule {found[0]} remakes it)" if found
               else "replace it with a good copy")
    return MgenetError(f"{path}: {what} is unreadable ({reason}); {fix}.")


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, what: str) -> Iterator[h5py.File]:
    """An HDF5 artifact opened for reading. A missing file, or one that HDF5 cannot open (cut short by a full disk or a
    copy interrupted, not HDF5 at all), is an error naming the file and the rule that remakes it, not h5py's OSError.

    Raises:
        MgenetError: the file is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise missing_file(path, what)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise unreadable_file(path, what, _first_line(e)) from e
    with f:
        yield f


def load_torch(path: str | os.PathLike, what: str, map_location: Any = "cpu", keys: tuple[str, ...] = (),
               fix: str = "", otherwise: str = "") -> dict[str, Any]:
    """A checkpoint written by mgenet, loaded with ``torch.load(weights_only=True)``.

    A file that is not a checkpoint, is cut short, or pickles anything but tensors and plain containers (tampered
    with, or not ours) is refused with one error naming it and how to remake it, never unpickled unsafely.

    Args:
        keys: top-level keys the checkpoint must have.
        fix: the remedy to name (default: the rule that makes the file).
        otherwise: what makes the file, for a missing file of a name no rule makes (see :func:`missing_file`).
    Raises:
        MgenetError: missing, unreadable or unsafe file, or one without ``keys``.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise missing_file(path, what, otherwise=otherwise)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is mostly advice to load unsafely; keep its one informative line
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        unsafe = [ln for ln in lines if "global" in ln.lower() and "weights only" not in ln.lower()]
        if unsafe:
            reason = f"it pickles objects other than tensors, which safe loading refuses: {unsafe[0][:200]}"
        else:
            detail = next((ln for ln in lines if "Unsupported operand" in ln or "load key" in ln), "")
            reason = f"not a PyTorch checkpoint or cut short{f': {detail[:200]}' if detail else ''}"
        raise unreadable_file(path, what, reason, fix) from e
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise unreadable_file(path, what, f"not a PyTorch checkpoint or cut short: {_first_line(e)}", fix) from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
        lacking = sorted(set(keys) - set(ckpt)) if isinstance(ckpt, dict) else list(keys)
        raise unreadable_file(path, what, f"not an mgenet {what}: no {', '.join(lacking)}", fix)
    return ckpt


def _plain(v: Any) -> Any:
    """An HDF5 attribute as a plain Python value (list, int, float, str), as ``torch.load(weights_only=True)`` and
    JSON accept."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v.decode() if isinstance(v, bytes) else v


def agreed_attrs(paths: list[str | os.PathLike], keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """The provenance ``keys`` that every HDF5 file of ``paths`` carries, as plain values; keys some file lacks are
    left out.

    Raises:
        MgenetError: two files disagree on a key (they were not made with the same settings).
    """
    out: dict[str, Any] = {}
    first: dict[str, str] = {}
    missing: set[str] = set()
    for path in paths:
        with open_h5(path, what) as f:
            attrs = {k: _plain(f.attrs[k]) for k in keys if k in f.attrs}
        missing |= set(keys) - set(attrs)
        for k, v in attrs.items():
            if k in out and out[k] != v:
                raise MgenetError(f"{path}: {what} made with {k}={v!r}, but {first[k]} with {k}={out[k]!r}; "
                                  f"rebuild them all with the same settings.")
            out.setdefault(k, v)
            first.setdefault(k, str(path))
    return {k: v for k, v in out.items() if k not in missing}


# ------------------------------------------------------------------------------------------------- AlphaPose JSON
# Tracked-person format (AlphaPose --pose_track, as STG-NF consumes it):
#   {"<person id>": {"<frame index, zero-padded>": {"keypoints": [x, y, score] * 17, "scores": float}}}
# Frame keys index the frames of the video (and the ground-truth mask).

PoseDict = dict[int, dict[int, np.ndarray]]  # person id -> frame -> (17, 3) float32 [x, y, score]


def read_alphapose(path: str | os.PathLike) -> PoseDict:
    """Read and validate an AlphaPose tracked-person JSON file.

    Raises:
        MgenetError: naming the file (and the person and frame) for every structural problem.
    """
    path = Path(path)
    if not path.exists():
        raise missing_file(path, "pose file", otherwise="is dataset.root in config.yaml right?")
    text = path.read_text()
    if not text.strip():
        raise MgenetError(f"{path}: pose file is empty. Re-export it; a video with no person is written as {{}}.")
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MgenetError(f"{path}: not valid JSON ({e}). Re-export the pose file.") from e
    if not isinstance(raw, dict):
        raise MgenetError(f"{path}: expected an object {{person id: {{frame: {{keypoints, scores}}}}}}, "
                          f"got {type(raw).__name__}.")
    poses: PoseDict = {}
    pid_keys: dict[int, str] = {}
    for pid_key, frames in raw.items():
        try:
            pid = int(pid_key)
        except ValueError:
            raise MgenetError(f"{path}: person id {pid_key!r} is not an integer.") from None
        if pid in pid_keys:  # "02" and "2": one track would silently overwrite the other
            raise MgenetError(f"{path}: person ids {pid_keys[pid]!r} and {pid_key!r} are the same person {pid}; give "
                              f"each track its own id.")
        pid_keys[pid] = pid_key
        if not isinstance(frames, dict):
            raise MgenetError(f"{path}: person {pid_key}: expected an object of frames.")
        person: dict[int, np.ndarray] = {}
        for frame_key, entry in frames.items():
            where = f"{path}: person {pid_key}, frame {frame_key}"
            try:
                frame = int(frame_key)
            except ValueError:
                raise MgenetError(f"{where}: frame key is not an integer index.") from None
            if frame < 0:
                raise MgenetError(f"{where}: negative frame index.")
            if not isinstance(entry, dict) or "keypoints" not in entry:
                raise MgenetError(f"{where}: entry has no 'keypoints'.")
            kp = entry["keypoints"]
            if not isinstance(kp, list) or len(kp) != 3 * N_COCO:
                n = len(kp) if isinstance(kp, list) else type(kp).__name__
                raise MgenetError(f"{where}: 'keypoints' must hold {3 * N_COCO} numbers "
                                  f"(17 COCO joints × x, y, score), got {n}.")
            try:
                raw_kp = np.asarray(kp)  # strings ("12.5" too), lists, null give a non-number dtype
            except ValueError:
                raw_kp = np.asarray([], dtype=object)
            if raw_kp.dtype.kind not in "iuf" or raw_kp.shape != (3 * N_COCO,):
                raise MgenetError(f"{where}: 'keypoints' holds non-numeric values (strings, null or lists); write "
                                  f"plain numbers.")
            arr = raw_kp.astype(np.float32).reshape(N_COCO, 3)
            if not np.isfinite(arr).all():
                raise MgenetError(f"{where}: keypoints contain NaN or infinite values. "
                                  f"Drop the detection or mark missing joints with score 0 instead.")
            person[frame] = arr
        if person:
            poses[pid] = person
    return poses


def write_alphapose(poses: PoseDict, path: str | os.PathLike) -> None:
    """Write poses in the tracked-person format, persons and frames sorted, frame keys zero-padded."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for pid in sorted(poses):
        frames = poses[pid]
        out[str(pid)] = {
            f"{f:04d}": {
                "keypoints": [round(float(v), 3) for v in np.asarray(frames[f], dtype=np.float64).reshape(-1)],
                "scores": round(float(np.asarray(frames[f])[:, 2].mean()), 4),
            }
            for f in sorted(frames)
        }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, separators=(",", ":")))


def pose_summary(poses: PoseDict) -> dict[str, Any]:
    frames = {f for person in poses.values() for f in person}
    n_dets = sum(len(p) for p in poses.values())
    mean_score = (float(np.mean([kp[:, 2].mean() for p in poses.values() for kp in p.values()]))
                  if n_dets else math.nan)
    return {"tracks": len(poses), "detections": n_dets, "frames_with_person": len(frames),
            "mean_keypoint_score": mean_score}


# ------------------------------------------------------------------------------------------------------- manifest

MANIFEST_COLUMNS = ["video", "split", "scene", "frames", "fps", "height", "width", "video_path", "pose_path",
                    "gt_path"]


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> None:
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    with atomic_path(path) as tmp:
        df[MANIFEST_COLUMNS].to_csv(tmp, index=False)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise missing_file(path, "manifest")
    df = pd.read_csv(path, dtype={"video": str, "split": str, "scene": str}, keep_default_na=False)
    return df


NUMPY_MAGIC = b"\x93NUMPY"


def is_numpy_file(path: str | os.PathLike) -> bool:
    """Whether a file is a NumPy array whatever its name (STG-NF ships UBnormal's test labels as ``*_tracks.txt``
    files that are ``.npy`` arrays)."""
    with open(path, "rb") as f:
        return f.read(len(NUMPY_MAGIC)) == NUMPY_MAGIC


def load_gt_mask(path: str | os.PathLike | None, n_frames: int | None = None) -> np.ndarray:
    """Per-frame ground truth (1 = anomalous), checked against the video's frame count.

    Reads a ``.npy`` mask (ShanghaiTech / STG-NF, 1 = anomalous), a UBnormal ``*_tracks.txt`` (one ``id,start,end``
    line per anomalous object, end inclusive), a ``*_tracks.txt`` that is really a NumPy array of per-frame labels
    with **1 = normal, 0 = anomalous** (STG-NF's UBnormal test files; recognised by content and flipped), or
    ``None``/"" for a test video without anomalies (all zeros).
    """
    if path is None or str(path) == "":
        if n_frames is None:
            raise ValueError("n_frames is needed for a video without a ground-truth file")
        return np.zeros(n_frames, np.uint8)
    path = Path(path)
    if not path.exists():
        raise MgenetError(f"{path}: ground-truth file not found (expected gt/test_frame_mask/<video>.npy).")
    normal_is_one = path.suffix == ".txt" and is_numpy_file(path)
    if path.suffix == ".txt" and not normal_is_one:
        if n_frames is None:
            raise ValueError("n_frames is needed to expand a tracks file")
        gt = np.zeros(n_frames, np.uint8)
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise MgenetError(f"{path}: neither a text tracks file (track_id,start_frame,end_frame per line) nor a "
                              f"NumPy array of per-frame labels.") from None
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                _, start, end = (int(float(v)) for v in line.replace(",", " ").split()[:3])
            except ValueError:
                raise MgenetError(f"{path}:{i}: expected 'track_id,start_frame,end_frame', got {line!r}.") from None
            if not 0 <= start <= end < n_frames:
                raise MgenetError(f"{path}:{i}: interval {start}-{end} lies outside the video's {n_frames} frames.")
            gt[start:end + 1] = 1
        return gt
    try:
        gt = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise MgenetError(f"{path}: not a readable .npy array ({e}).") from e
    gt = np.asarray(gt).reshape(-1)
    if not np.isin(gt, (0, 1)).all():
        raise MgenetError(f"{path}: ground truth must hold only 0 and 1 "
                          f"({'1 = normal, as STG-NF stores UBnormal test labels' if normal_is_one else '1 = anomalous'}).")
    if normal_is_one:
        gt = 1 - gt
    if n_frames is not None and len(gt) != n_frames:
        raise MgenetError(f"{path}: ground truth has {len(gt)} frames but the video has {n_frames}. "
                          f"Regenerate the mask for this video or fix the video/pose pairing.")
    return gt.astype(np.uint8)


INTERVAL_COLUMNS = ["video", "start", "end", "type", "subtype"]


def read_intervals(path: str | os.PathLike | None) -> pd.DataFrame:
    """Table of anomalous intervals with their type; ``end`` is inclusive. Empty when the dataset has none."""
    if not path or not Path(path).exists():
        return pd.DataFrame(columns=INTERVAL_COLUMNS)
    df = pd.read_csv(path, dtype={"video": str, "type": str, "subtype": str}, keep_default_na=False)
    missing = [c for c in INTERVAL_COLUMNS if c not in df.columns]
    if missing:
        raise MgenetError(f"{path}: interval table lacks columns {missing} (need {INTERVAL_COLUMNS}).")
    return df[INTERVAL_COLUMNS]


# The weakly supervised split (dataset.weak_split; AR-Net): which videos a weakly supervised method trains on, with
# their video label (1 = the video holds an anomaly), and which it is evaluated on. The test part must lie inside
# the test split (checked against the manifest by mgenet.datasets.adapters.check_weak_split).
WEAK_SPLIT_COLUMNS = ["video", "split", "label"]


def read_weak_split(path: str | os.PathLike) -> pd.DataFrame:
    """The weak split table (``WEAK_SPLIT_COLUMNS``), checked on its own: split train / test, label 0 / 1, no video
    twice, at least one test video (AR-Net's training checks that it has both labels).

    Raises:
        MgenetError: naming the file, the first bad row and the fix.
    """
    path = Path(path)
    fix = "fix the file (README, 'AR-Net: the weak split')"
    if not path.is_file():
        raise MgenetError(f"{path}: weak split file not found; set dataset.weak_split to the CSV (video,split,label) "
                          f"or to \"\" for none (README, 'AR-Net: the weak split').")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as e:
        raise MgenetError(f"{path}: not a CSV table ({_first_line(e)}); {fix}.") from e
    missing = [c for c in WEAK_SPLIT_COLUMNS if c not in df.columns]
    if missing:
        raise MgenetError(f"{path}: weak split lacks column(s) {missing} (need {WEAK_SPLIT_COLUMNS}); {fix}.")
    df = df[WEAK_SPLIT_COLUMNS].copy()
    for col, allowed in (("split", ("train", "test")), ("label", ("0", "1"))):
        bad = ~df[col].str.strip().isin(allowed)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MgenetError(f"{path}: row {i + 2} (video {df['video'].iloc[i]!r}) has {col} "
                              f"{df[col].iloc[i]!r}; use one of {list(allowed)}; {fix}.")
    df["split"] = df["split"].str.strip()
    df["label"] = df["label"].str.strip().astype(np.int64)
    dup = df["video"][df["video"].duplicated()]
    if len(dup):
        raise MgenetError(f"{path}: video {dup.iloc[0]!r} is listed more than once; {fix}.")
    if not (df["split"] == "test").any():
        raise MgenetError(f"{path}: the weak split has no test video; {fix}.")
    return df.reset_index(drop=True)


# Per-frame boxes of the anomalous objects (RBDC / TBDC, mgenet.region_metrics): one row per object per frame it is
# anomalous in; ``track`` names the object within its video (the demo: its person id), x2 and y2 are exclusive pixel
# edges. Frames with no row hold no anomalous region.
ANOMALY_BOX_COLUMNS = ["video", "track", "frame", "x1", "y1", "x2", "y2"]


def write_anomaly_boxes(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df[ANOMALY_BOX_COLUMNS].to_csv(tmp, index=False)


def read_anomaly_boxes(path: str | os.PathLike) -> pd.DataFrame:
    """The anomalous objects' boxes (``ANOMALY_BOX_COLUMNS``), checked: boxes with x1 < x2 and y1 < y2, frames >= 0,
    no (video, track, frame) twice."""
    path = Path(path)
    if not path.exists():
        raise missing_file(path, "anomaly boxes")
    df = pd.read_csv(path, dtype={"video": str, "track": str}, keep_default_na=False)
    missing = [c for c in ANOMALY_BOX_COLUMNS if c not in df.columns]
    if missing:
        raise MgenetError(f"{path}: anomaly box table lacks columns {missing} (need {ANOMALY_BOX_COLUMNS}).")
    df = df[ANOMALY_BOX_COLUMNS]
    try:
        xy = df[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)
        frame = df["frame"].to_numpy(dtype=np.int64)
    except (ValueError, TypeError) as e:
        raise MgenetError(f"{path}: frame and box columns must be numbers ({e}); fix the table.") from None
    bad = ~np.isfinite(xy).all(axis=1) | (xy[:, 2] <= xy[:, 0]) | (xy[:, 3] <= xy[:, 1]) | (frame < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MgenetError(f"{path}: row {i + 2} is not a box (x1 < x2, y1 < y2, frame >= 0): "
                          f"{df.iloc[i].to_dict()}; fix the table.")
    dup = df.duplicated(["video", "track", "frame"])
    if dup.any():
        r = df.loc[dup].iloc[0]
        raise MgenetError(f"{path}: track {r.track!r} of video {r.video!r} has two boxes in frame {r.frame}; keep one "
                          f"box per object per frame.")
    return df.assign(frame=frame)


# ------------------------------------------------------------------------------------------------ segments HDF5
# results/{ds}/segments/{video}.h5 — one row per person window:
#   pose       (N, 2, T, 18) float32  normalised x, y (STG-NF)       dims: clip, coord, time, joint
#   confidence (N, T, 18)    float32  keypoint scores                dims: clip, time, joint
#   keypoints  (N, T, 18, 2) float32  pixel x, y                      dims: clip, time, joint, coord
#   boxes      (N, T, 4)     float32  x1, y1, x2, y2 pixels           dims: clip, time, box
#   frames     (N, T)        int32    frame index of each step        dims: clip, time
#   person_id, start_frame, mid_frame (N,) int32                      dims: clip

SEGMENT_DIMS = {
    "pose": ("clip", "coord", "time", "joint"),
    "confidence": ("clip", "time", "joint"),
    "keypoints": ("clip", "time", "joint", "coord"),
    "boxes": ("clip", "time", "box"),
    "frames": ("clip", "time"),
    "person_id": ("clip",),
    "start_frame": ("clip",),
    "mid_frame": ("clip",),
}
SEGMENT_DTYPES = {"pose": np.float32, "confidence": np.float32, "keypoints": np.float32, "boxes": np.float32,
                  "frames": np.int32, "person_id": np.int32, "start_frame": np.int32, "mid_frame": np.int32}


def write_arrays_h5(path: str | os.PathLike, arrays: dict[str, np.ndarray], dims: dict[str, tuple[str, ...]],
                    attrs: dict[str, Any], chunk_rows: int = 256, compression: str | None = None) -> None:
    """Write named arrays sharing a leading clip axis, chunked along it, with dimension labels and attrs."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        for name, arr in arrays.items():
            chunks = None
            if arr.ndim and arr.shape[0] > 0:
                chunks = (min(chunk_rows, arr.shape[0]),) + arr.shape[1:]
            ds = f.create_dataset(name, data=arr, chunks=chunks, compression=compression)
            for i, label in enumerate(dims.get(name, ())):
                ds.dims[i].label = label


def write_segments(path: str | os.PathLike, arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    arrays = {k: np.asarray(arrays[k], dtype=SEGMENT_DTYPES[k]) for k in SEGMENT_DTYPES}
    write_arrays_h5(path, arrays, SEGMENT_DIMS, attrs)


def read_segments(path: str | os.PathLike, fields: tuple[str, ...] = tuple(SEGMENT_DTYPES)) -> tuple[
        dict[str, np.ndarray], dict[str, Any]]:
    with open_h5(path, "segments file") as f:
        return {k: f[k][()] for k in fields}, dict(f.attrs)


def segment_count(path: str | os.PathLike) -> int:
    with open_h5(path, "segments file") as f:
        return int(f["person_id"].shape[0])


# ------------------------------------------------------------------------------------------------ features HDF5
# results/{ds}/features/{video}.h5 — rows aligned 1:1, in order, with the rows of the video's segments file:
#   tokens      (N, t, h, w, C) float16  Video Swin stages 1-2 of the crop clip
#                                        dims: clip, time, height, width, channel
#   crop_boxes  (N, T, 4)       float32  widened, clipped box actually cropped   dims: clip, time, box
#   person_id, start_frame, mid_frame (N,) int32                                 dims: clip
#   scene       (C_s,)          float32  pooled scene feature                    dims: channel
#   scene_map   (h_s, w_s, C_s) float32  scene feature map                       dims: height, width, channel
# with t = T/2, h = H/8, w = W/8, C = 192 for a crop of H x W pixels; tokens are chunked one clip per chunk.
# That is layout "window" (features.layout: window; attrs layout = "window", or none in files from before layouts).
#
# Layout "track" (features.layout: track) stores each person's tokens once and a clip as a slice of them. Instead of
# tokens it has:
#   track_tokens     (M, h, w, C) float16  backbone over token sequences of the persons' frames, one row per
#                                          temporal patch (2 frames); chunked along time
#                                          dims: time, height, width, channel
#   token_frames     (M, 2)       int32    the two frames of each row                        dims: time, frame
#   clip_token_start (N,)         int64    clip n's tokens are track_tokens[s:s + t]          dims: clip
#   seq_person_id, seq_phase (S,) int32, seq_token_start, seq_tokens (S,) int64: one row per sequence   dims: sequence
# and the same crop_boxes, person_id, start_frame, mid_frame, scene, scene_map; attrs layout = "track",
# clip_tokens = t, track_chunk, track_context. A sequence is one person's frames (as the windows take them: detected
# frames in order, short gaps closed) from one of the temporal patch's two phases, so that every window, whichever
# frame it starts on, is t consecutive rows of one sequence. :class:`ClipTokens` reads clips from either layout.

FEATURE_DIMS = {
    "tokens": ("clip", "time", "height", "width", "channel"),
    "crop_boxes": ("clip", "time", "box"),
    "person_id": ("clip",),
    "start_frame": ("clip",),
    "mid_frame": ("clip",),
    "scene": ("channel",),
    "scene_map": ("height", "width", "channel"),
}
FEATURE_DTYPES = {"tokens": np.float16, "crop_boxes": np.float32, "person_id": np.int32, "start_frame": np.int32,
                  "mid_frame": np.int32, "scene": np.float32, "scene_map": np.float32}
FEATURE_ATTRS = ("backbone", "checkpoint_sha256", "crop", "seg_len", "stride", "mgenet_version", "config_hash",
                 "video", "split", "scene")
LAYOUTS = ("window", "track")
TRACK_DIMS = {
    "track_tokens": ("time", "height", "width", "channel"),
    "token_frames": ("time", "frame"),
    "clip_token_start": ("clip",),
    "seq_person_id": ("sequence",),
    "seq_phase": ("sequence",),
    "seq_token_start": ("sequence",),
    "seq_tokens": ("sequence",),
}
TRACK_DTYPES = {"track_tokens": np.float16, "token_frames": np.int32, "clip_token_start": np.int64,
                "seq_person_id": np.int32, "seq_phase": np.int32, "seq_token_start": np.int64, "seq_tokens": np.int64}
ALL_FEATURE_DIMS = {**FEATURE_DIMS, **TRACK_DIMS}
ALL_FEATURE_DTYPES = {**FEATURE_DTYPES, **TRACK_DTYPES}


def _label(ds: h5py.Dataset, name: str) -> None:
    for i, label in enumerate(ALL_FEATURE_DIMS[name]):
        ds.dims[i].label = label


class FeatureWriter:
    """An open features file being filled: clip rows may arrive in any order (see :func:`feature_writer`)."""

    def __init__(self, f: h5py.File, n_clips: int, token_shape: tuple[int, ...], compression: str | None,
                 compression_opts: int | None) -> None:
        self.f, self.n_clips, self.token_shape = f, n_clips, tuple(token_shape)
        # maxshape None on the clip axis lets a video with no segment keep the same one-clip chunking
        self.tokens = f.create_dataset("tokens", shape=(n_clips, *token_shape), maxshape=(None, *token_shape),
                                       dtype=np.float16, chunks=(1, *token_shape), compression=compression,
                                       compression_opts=compression_opts)
        _label(self.tokens, "tokens")
        self._written = np.zeros(n_clips, bool)

    def write_tokens(self, rows: np.ndarray, tokens: np.ndarray) -> None:
        """Store ``tokens`` (B, t, h, w, C) at clip rows ``rows`` (B,)."""
        rows = np.asarray(rows)
        if tokens.shape[1:] != self.token_shape or len(rows) != len(tokens):
            raise ValueError(f"tokens {tokens.shape} do not fit rows {rows.shape} of {self.token_shape}")
        tokens = np.asarray(tokens, dtype=np.float16)
        order = np.argsort(rows, kind="stable")
        rows, tokens = rows[order], tokens[order]
        # runs of consecutive rows go in one slice write (h5py's fancy indexing is far slower)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            self.tokens[rows[lo]:rows[hi - 1] + 1] = tokens[lo:hi]
        self._written[rows] = True

    def write_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Store the non-token datasets (crop_boxes, person_id, start_frame, mid_frame, scene, scene_map; and the
        track layout's index arrays)."""
        write_feature_arrays(self.f, arrays, self.n_clips)

    def check_complete(self) -> None:
        missing = [k for k in FEATURE_DTYPES if k not in self.f]
        if missing or not self._written.all():
            raise RuntimeError(f"features file incomplete: datasets {missing}, "
                               f"{int((~self._written).sum())} clips without tokens")


def write_feature_arrays(f: h5py.File, arrays: dict[str, np.ndarray], n_clips: int) -> None:
    """Datasets of a features file that are written whole, chunked along their first axis, labelled."""
    for name, arr in arrays.items():
        arr = np.asarray(arr, dtype=ALL_FEATURE_DTYPES[name])
        chunks = None
        axis = ALL_FEATURE_DIMS[name][0]
        if axis in ("clip", "sequence", "time"):
            if axis == "clip" and arr.shape[0] != n_clips:
                raise ValueError(f"{name} has {arr.shape[0]} rows, expected {n_clips}")
            chunks = (max(min(256, arr.shape[0]), 1), *arr.shape[1:])
        ds = f.create_dataset(name, data=arr, chunks=chunks, maxshape=(None, *arr.shape[1:]) if chunks else None)
        _label(ds, name)


class TrackFeatureWriter:
    """An open features file of layout ``track`` being filled: token rows arrive in runs, in any order."""

    def __init__(self, f: h5py.File, n_clips: int, n_tokens: int, token_shape: tuple[int, ...], clip_tokens: int,
                 compression: str | None, compression_opts: int | None) -> None:
        self.f, self.n_clips, self.token_shape = f, n_clips, tuple(token_shape)  # (h, w, C)
        # one chunk = one clip's worth of rows: a clip's slice touches at most two chunks
        chunk_rows = max(min(clip_tokens, n_tokens), 1)
        self.tokens = f.create_dataset("track_tokens", shape=(n_tokens, *token_shape), maxshape=(None, *token_shape),
                                       dtype=np.float16, chunks=(chunk_rows, *token_shape), compression=compression,
                                       compression_opts=compression_opts)
        _label(self.tokens, "track_tokens")
        self._written = np.zeros(n_tokens, bool)

    def write_tokens(self, start: int, tokens: np.ndarray) -> None:
        """Store ``tokens`` (n, h, w, C) at rows ``start .. start + n - 1`` of track_tokens."""
        if tokens.shape[1:] != self.token_shape or start < 0 or start + len(tokens) > len(self._written):
            raise ValueError(f"tokens {tokens.shape} at row {start} do not fit {self.tokens.shape}")
        self.tokens[start:start + len(tokens)] = np.asarray(tokens, dtype=np.float16)
        self._written[start:start + len(tokens)] = True

    def write_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        write_feature_arrays(self.f, arrays, self.n_clips)

    def check_complete(self) -> None:
        need = [k for k in ALL_FEATURE_DTYPES if k != "tokens"]
        missing = [k for k in need if k not in self.f]
        if missing or not self._written.all():
            raise RuntimeError(f"features file incomplete: datasets {missing}, "
                               f"{int((~self._written).sum())} token rows not written")


@contextlib.contextmanager
def feature_writer(path: str | os.PathLike, n_clips: int, token_shape: tuple[int, ...], attrs: dict[str, Any],
                   compression: str | None = None, compression_opts: int | None = None) -> Iterator[FeatureWriter]:
    """Open a features file for streaming writes; it appears at ``path`` only if the block completes it."""
    missing = [k for k in FEATURE_ATTRS if k not in attrs]
    if missing:
        raise ValueError(f"features attrs lack {missing}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        w = FeatureWriter(f, n_clips, token_shape, compression, compression_opts)
        yield w
        w.check_complete()


@contextlib.contextmanager
def track_feature_writer(path: str | os.PathLike, n_clips: int, n_tokens: int, token_shape: tuple[int, ...],
                         clip_tokens: int, attrs: dict[str, Any], compression: str | None = None,
                         compression_opts: int | None = None) -> Iterator[TrackFeatureWriter]:
    """Open a features file of layout ``track`` for streaming writes; it appears at ``path`` only if the block
    completes it."""
    missing = [k for k in FEATURE_ATTRS if k not in attrs]
    if missing:
        raise ValueError(f"features attrs lack {missing}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in {**attrs, "layout": "track", "clip_tokens": int(clip_tokens)}.items():
            f.attrs[k] = v
        w = TrackFeatureWriter(f, n_clips, n_tokens, token_shape, clip_tokens, compression, compression_opts)
        yield w
        w.check_complete()


class ClipTokens:
    """The clip tokens (N, t, h, w, C) of an open features file, whichever its layout, read a few rows at a time.

    A track-layout file is read by slices of ``track_tokens``: clips that overlap in time share one read, and
    nothing outside the asked clips' rows is read.
    """

    def __init__(self, f: h5py.File) -> None:
        self.layout = str(f.attrs.get("layout", "window"))
        name = f.filename
        if self.layout == "window":
            if "tokens" not in f:
                raise MgenetError(f"{name}: no dataset 'tokens'; re-run extract_features for this video.")
            self.ds = f["tokens"]
            self.shape = tuple(self.ds.shape)
        elif self.layout == "track":
            for k in ("track_tokens", "clip_token_start"):
                if k not in f:
                    raise MgenetError(f"{name}: a track-layout features file without {k!r}; re-run extract_features "
                                      f"for this video.")
            self.ds = f["track_tokens"]
            self.starts = f["clip_token_start"][()].astype(np.int64)
            self.t = int(f.attrs["clip_tokens"])
            self.shape = (len(self.starts), self.t, *self.ds.shape[1:])
        else:
            raise MgenetError(f"{name}: unknown features layout {self.layout!r} (known: {list(LAYOUTS)}); it was "
                              f"written by another mgenet version: re-run extract_features.")

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows: slice | np.ndarray) -> np.ndarray:
        """Tokens (n, t, h, w, C) float16 of clip ``rows`` (a slice, or increasing indices)."""
        if self.layout == "window":
            return self.ds[rows]
        starts = self.starts[rows]
        t = self.t
        out = np.empty((len(starts), *self.shape[1:]), np.float16)
        order = np.argsort(starts, kind="stable")
        s = starts[order]
        i = 0
        while i < len(s):  # clips whose rows overlap or touch form one span, read once
            lo, hi, j = s[i], s[i] + t, i + 1
            while j < len(s) and s[j] <= hi:
                hi, j = max(hi, s[j] + t), j + 1
            span = self.ds[lo:hi]
            out[order[i:j]] = span[(s[i:j] - lo)[:, None] + np.arange(t)]
            i = j
        return out


def write_features(path: str | os.PathLike, arrays: dict[str, np.ndarray], attrs: dict[str, Any],
                   compression: str | None = None) -> None:
    """Write a whole features file at once (all of FEATURE_DTYPES in ``arrays``)."""
    tokens = np.asarray(arrays["tokens"])
    with feature_writer(path, len(tokens), tokens.shape[1:], attrs, compression) as w:
        w.write_tokens(np.arange(len(tokens)), tokens)
        w.write_arrays({k: v for k, v in arrays.items() if k != "tokens"})


def read_features(path: str | os.PathLike, fields: tuple[str, ...] = tuple(FEATURE_DTYPES),
                  rows: slice | np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a features file (optionally only some clip ``rows`` of the clip-axis datasets). ``tokens`` are the clips'
    tokens (N, t, h, w, C) in either layout (a track-layout file's clips are cut from its track_tokens)."""
    with open_h5(path, "features file") as f:
        out = {}
        for k in fields:
            if k == "tokens":
                out[k] = ClipTokens(f).read(slice(None) if rows is None else rows)
                continue
            ds = f[k]
            out[k] = ds[rows] if rows is not None and ALL_FEATURE_DIMS[k][0] == "clip" else ds[()]
        return out, dict(f.attrs)


# ---------------------------------------------------------------------------------------------------- flow HDF5
# results/{ds}/flow/{split}.h5 — one group per video:
#   /{video}/latent (N, 2, T, 18) float32, /{video}/nll (N,) float32, plus person_id, start_frame, mid_frame (N,)

FLOW_DIMS = {"latent": ("clip", "coord", "time", "joint"), "nll": ("clip",), "person_id": ("clip",),
             "start_frame": ("clip",), "mid_frame": ("clip",)}


# ------------------------------------------------------------------------------------------------- score tables


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise missing_file(path, "score table")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError: a cut or foreign file
        raise unreadable_file(path, "score table", _first_line(e)) from e
