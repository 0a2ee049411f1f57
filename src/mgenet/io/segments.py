"""The segments HDF5 file: one per video, the per-person pose windows `build_segments` writes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mgenet.io.common import MissingFileError, create_h5, open_h5

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
    with create_h5(path) as f:
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




class SegmentsFile:
    """An open segments file, read a few rows at a time (see :func:`open_segments`)."""

    def __init__(self, f: h5py.File, path: str | os.PathLike) -> None:
        self.f = f
        self.video = str(f.attrs.get("video", Path(path).stem))  # files from before the attr: named by their stem

    @property
    def pose_shape(self) -> tuple[int, ...]:
        """(N, 2, T, 18) of the normalised poses."""
        return tuple(self.f["pose"].shape)

    def pose(self, rows: slice = slice(None)) -> np.ndarray:
        """Normalised poses (n, 2, T, 18) float32 of segment ``rows``."""
        return self.f["pose"][rows]

    def keys(self, names: tuple[str, ...] = ("person_id", "start_frame", "mid_frame")) -> dict[str, np.ndarray]:
        """The segments' keys (N,) as stored (int32)."""
        return {k: self.f[k][()] for k in names}


@contextlib.contextmanager
def open_segments(path: str | os.PathLike) -> Iterator[SegmentsFile]:
    """A segments file opened for reading; a missing or unreadable one is an error naming the rule that makes it."""
    if not Path(path).exists():
        raise MissingFileError(path, "segments file", otherwise="rule build_segments (`mgenet segments`) makes it.")
    with open_h5(path, "segments file") as f:
        yield SegmentsFile(f, path)
