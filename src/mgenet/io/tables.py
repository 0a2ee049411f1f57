"""The small tables: the manifest, ground-truth masks, the interval table, the weak split, anomalous-object
boxes, and the parquet score tables."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mgenet import MgenetError
from mgenet.io.common import MissingFileError, UnreadableFileError, atomic_path, first_line

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported inside the functions that use it: it takes about half a CPU-second to import, which the per-video
# jobs (import_pose, build_segments: one process per video, 874 on ShanghaiTech) read nothing but one manifest row with.

# ------------------------------------------------------------------------------------------------------- manifest

MANIFEST_COLUMNS = ["video", "split", "scene", "frames", "fps", "height", "width", "video_path", "pose_path",
                    "gt_path"]


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> None:
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    with atomic_path(path) as tmp:
        df[MANIFEST_COLUMNS].to_csv(tmp, index=False)


def csv_text(path: str | os.PathLike, what: str, otherwise: str = "") -> str:
    """The text of a CSV table that mgenet wrote (every row ends with a newline), checked: missing (the message
    names ``otherwise``, the fix), empty, cut short (a full disk, a copy) or not text is one error naming it."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, what, otherwise)
    raw = path.read_bytes()
    if not raw.strip():
        raise UnreadableFileError(path, what, "empty")
    if not raw.endswith(b"\n"):
        raise UnreadableFileError(path, what, "cut short: its last row is incomplete")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableFileError(path, what, f"not a CSV table: {first_line(e)[:120]}") from e


def _check_manifest_columns(path: Path, columns: Iterable[str]) -> None:
    lacking = [c for c in ("video", "split") if c not in set(columns)]
    if lacking:
        raise UnreadableFileError(path, "manifest", f"no {', '.join(lacking)} column: not a manifest")


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    import io

    import pandas as pd

    path = Path(path)
    text = csv_text(path, "manifest")
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"video": str, "split": str, "scene": str}, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise UnreadableFileError(path, "manifest", f"not a CSV table: {first_line(e)[:120]}") from e
    _check_manifest_columns(path, df.columns)
    return df


MANIFEST_NUMBERS = {"frames": int, "height": int, "width": int, "fps": float}


def manifest_row(path: str | os.PathLike, video: str) -> dict:
    """``video``'s row of the manifest at ``path``: the columns of :func:`read_manifest` with frames, height and width
    as int and fps as float (an empty cell stays ""). Read with the csv module, not pandas (see the note above), with
    :func:`read_manifest`'s checks: a file cut short, empty or of another kind is one error naming it.

    Raises:
        MgenetError: the manifest is missing or unreadable, or the video is not in it.
    """
    path = Path(path)
    rows = csv.DictReader(csv_text(path, "manifest").splitlines())
    try:
        _check_manifest_columns(path, rows.fieldnames or ())
        for row in rows:
            if row.get("video") == video:
                return {k: MANIFEST_NUMBERS[k](v) if k in MANIFEST_NUMBERS and v != "" else v
                        for k, v in row.items()}
    except (csv.Error, TypeError, ValueError) as e:  # a row cut short, or text of another kind
        raise UnreadableFileError(path, "manifest", f"not a CSV table: {first_line(e)[:120]}") from e
    raise MgenetError(f"{path}: video {video!r} is not in the manifest; rerun index_dataset.")


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
        if not text.strip():
            # UBnormal ships a tracks file for each anomalous video only: an empty one would make all its frames
            # normal without a word
            raise MgenetError(f"{path}: tracks file is empty, so every frame of its video would count as normal; "
                              f"restore its lines (track_id,start_frame,end_frame per anomalous object), or delete "
                              f"the file if the video has no anomaly.")
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
    import pandas as pd

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
    import pandas as pd

    path = Path(path)
    fix = "fix the file (README, 'AR-Net: the weak split')"
    if not path.is_file():
        raise MgenetError(f"{path}: weak split file not found; set dataset.weak_split to the CSV (video,split,label) "
                          f"or to \"\" for none (README, 'AR-Net: the weak split').")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as e:
        raise MgenetError(f"{path}: not a CSV table ({first_line(e)}); {fix}.") from e
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


# Per-frame boxes of the anomalous objects (RBDC / TBDC, mgenet.evaluation.regions): one row per object per frame it is
# anomalous in; ``track`` names the object within its video (the demo: its person id), x2 and y2 are exclusive pixel
# edges. Frames with no row hold no anomalous region.
ANOMALY_BOX_COLUMNS = ["video", "track", "frame", "x1", "y1", "x2", "y2"]


def write_anomaly_boxes(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df[ANOMALY_BOX_COLUMNS].to_csv(tmp, index=False)


def read_anomaly_boxes(path: str | os.PathLike) -> pd.DataFrame:
    """The anomalous objects' boxes (``ANOMALY_BOX_COLUMNS``), checked: boxes with x1 < x2 and y1 < y2, frames >= 0,
    no (video, track, frame) twice."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, "anomaly boxes")
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


# ------------------------------------------------------------------------------------------------- score tables


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, "score table")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError: a cut or foreign file
        raise UnreadableFileError(path, "score table", first_line(e)) from e


def write_summary(df: pd.DataFrame, out: str | os.PathLike, md: str | os.PathLike | None, title: str,
                  to_markdown: Callable[[pd.DataFrame], str]) -> None:
    """A summary table (ablations, seeds, comparisons) as CSV at ``out`` and, when ``md`` is given, as markdown under
    ``title``."""
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    if md:
        with atomic_path(md) as tmp:
            tmp.write_text(f"# {title}\n\n" + to_markdown(df))


def read_named_metrics(paths: Mapping[str, str | os.PathLike], what: str, target: str) -> dict[str, dict]:
    """{name: parsed metrics.json} of each run, in order; ``what`` names a run in errors (``ablation variant``,
    ``seed``) and ``target`` is the snakemake target that makes the files.

    Raises:
        MgenetError: a file is missing or is not a metrics.json.
    """
    metrics = {}
    for name, path in paths.items():
        if not Path(path).exists():
            raise MissingFileError(path, f"metrics of {what} {name!r}", otherwise=f"run `snakemake {target}`.")
        try:
            metrics[name] = json.loads(Path(path).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UnreadableFileError(path, f"metrics of {what} {name!r}", f"not JSON, or cut short: {first_line(e)}",
                                      fix=f"delete it and run `snakemake {target}` again") from e
        if not isinstance(metrics[name], dict) or "scores" not in metrics[name]:
            raise UnreadableFileError(path, f"metrics of {what} {name!r}", "not an mgenet metrics.json (no scores)",
                                      fix=f"give the metrics.json of `snakemake {target}`")
    return metrics
