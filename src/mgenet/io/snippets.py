"""The snippets HDF5 file: one per video and snippet length, the pooled backbone vector of every snippet of whole
frames (``extract_snippets``, for the video-level baselines)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mgenet import MgenetError
from mgenet.io.common import create_h5, open_h5

# ------------------------------------------------------------------------------------------------ snippets HDF5
# results/{ds}/snippets/len{L}/{video}.h5 — one row per snippet of L consecutive frames (the last one padded):
#   features    (S, D) float32  backbone tokens mean-pooled over (t, h, w)   dims: snippet, channel
#   start_frame (S,)   int64    0, L, 2L, ...                                 dims: snippet
# attrs: snippet_len, frames (of the video), size, backbone, normalisation, pooling and provenance.

SNIPPET_DIMS = {"features": ("snippet", "channel"), "start_frame": ("snippet",)}


@dataclass
class Snippets:
    """A snippets file's contents: one vector per snippet and where each snippet starts."""

    features: np.ndarray  # (n_snippets, D) float32
    start_frame: np.ndarray  # (n_snippets,) int64
    snippet_len: int
    frames: int  # frames of the video
    attrs: dict[str, Any] = field(default_factory=dict, repr=False)


def snippet_starts(frames: int, snippet_len: int) -> np.ndarray:
    """First frame of each snippet: 0, L, 2L, ... (the last snippet may run past the video's end)."""
    return np.arange(0, frames, snippet_len, dtype=np.int64)


def write_snippets(path: str | os.PathLike, features: np.ndarray, start_frame: np.ndarray,
                   attrs: dict[str, Any]) -> None:
    """Write a snippets file atomically: vectors (S, D), their first frames (S,) and ``attrs`` (which must hold
    snippet_len and frames for :func:`read_snippets`)."""
    with create_h5(path) as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        for name, data in (("features", features), ("start_frame", start_frame)):
            ds = f.create_dataset(name, data=data)
            for i, label in enumerate(SNIPPET_DIMS[name]):
                ds.dims[i].label = label


def read_snippets(path: str | os.PathLike) -> Snippets:
    """Read a snippets file.

    Raises:
        MgenetError: missing, unreadable or inconsistent file (naming it and the rule that remakes it).
    """
    with open_h5(path, "snippets file") as f:
        for k in ("features", "start_frame"):
            if k not in f:
                raise MgenetError(f"{path}: snippets file without dataset {k!r}; delete it and rerun extract_snippets.")
        try:
            s = Snippets(features=f["features"][()].astype(np.float32), start_frame=f["start_frame"][()],
                         snippet_len=int(f.attrs["snippet_len"]), frames=int(f.attrs["frames"]), attrs=dict(f.attrs))
        except KeyError as e:
            raise MgenetError(f"{path}: snippets file without attribute {e}; delete it and rerun extract_snippets.") \
                from e
    if not np.array_equal(s.start_frame, snippet_starts(s.frames, s.snippet_len)) or len(s.features) != len(
            s.start_frame):
        raise MgenetError(f"{path}: its {len(s.features)} snippets do not tile its {s.frames} frames in snippets of "
                          f"{s.snippet_len}; delete it and rerun extract_snippets.")
    return s
