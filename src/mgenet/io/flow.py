"""The flow HDF5 file: one per split, the flow's latent f_sk and NLL per segment (writer and readers)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import h5py
import numpy as np

from mgenet import MgenetError
from mgenet.io.common import create_h5, open_h5

# ---------------------------------------------------------------------------------------------------- flow HDF5
# results/{ds}/flow/{split}.h5 — one group per video (attrs segments_file: the segments file it was encoded from):
#   /{video}/latent (N, 2, T, 18) float32, /{video}/nll (N,) float32 (bits/dim), plus person_id, start_frame,
#   mid_frame (N,) int32; rows in the order of the video's segments file. Latent and NLL are chunked 256 rows.

FLOW_DIMS = {"latent": ("clip", "coord", "time", "joint"), "nll": ("clip",), "person_id": ("clip",),
             "start_frame": ("clip",), "mid_frame": ("clip",)}
FLOW_KEYS = ("person_id", "start_frame", "mid_frame")  # a segment's identity, as in its segments file
FLOW_CHUNK_ROWS = 256


class FlowVideoWriter:
    """One video's group of a flow file being written: its latents and NLLs arrive a batch of rows at a time."""

    def __init__(self, latent: h5py.Dataset, nll: h5py.Dataset) -> None:
        self.latent, self.nll = latent, nll

    def write(self, start: int, latent: np.ndarray, nll: np.ndarray) -> None:
        """Rows ``start:start + len(latent)``: latents (B, 2, T, V) and NLLs (B,)."""
        self.latent[start:start + len(latent)] = latent
        self.nll[start:start + len(nll)] = nll


class FlowWriter:
    """An open flow file being written (see :func:`flow_writer`)."""

    def __init__(self, f: h5py.File, path: str | os.PathLike) -> None:
        self.f, self.path, self.seen = f, path, set()

    def add_video(self, video: str, shape: tuple[int, ...], keys: Mapping[str, np.ndarray],
                  source: str | os.PathLike) -> FlowVideoWriter:
        """Create ``video``'s group for ``len(keys['person_id'])`` segments of pose shape ``shape`` (C, T, V).

        Args:
            keys: the segments' person_id, start_frame and mid_frame, stored as int32.
            source: the segments file the rows come from (stored in the group's attrs, named in errors).

        Raises:
            MgenetError: a video name given twice, or one with '/' (it names an HDF5 group).
        """
        if video in self.seen or "/" in video:
            raise MgenetError(f"{source}: video name {video!r} is repeated or contains '/'; "
                              f"each video needs a unique name for its group in {self.path}.")
        self.seen.add(video)
        n = len(keys["person_id"])
        g = self.f.create_group(video)
        g.attrs["segments_file"] = str(source)
        chunks = (min(max(n, 1), FLOW_CHUNK_ROWS),)
        latent = g.create_dataset("latent", shape=(n, *shape), dtype=np.float32,
                                  chunks=(chunks[0], *shape) if n else None)
        nll = g.create_dataset("nll", shape=(n,), dtype=np.float32, chunks=chunks if n else None)
        for name in FLOW_KEYS:
            g.create_dataset(name, data=np.asarray(keys[name]).astype(np.int32))
        for name, labels in FLOW_DIMS.items():
            for i, label in enumerate(labels):
                g[name].dims[i].label = label
        return FlowVideoWriter(latent, nll)


@contextlib.contextmanager
def flow_writer(path: str | os.PathLike, attrs: Mapping[str, Any]) -> Iterator[FlowWriter]:
    """Write a flow file atomically: groups are added with :meth:`FlowWriter.add_video`; the file appears at
    ``path`` only when the block ends without error."""
    with create_h5(path) as f:
        f.attrs.update(attrs)
        yield FlowWriter(f, path)


class FlowFile:
    """An open flow file, read a video (group) at a time (see :func:`open_flow`)."""

    def __init__(self, f: h5py.File) -> None:
        self.f = f

    def videos(self) -> list[str]:
        """The videos it holds, sorted."""
        return sorted(self.f)

    def __contains__(self, video: str) -> bool:
        return video in self.f

    def latent_shape(self, video: str) -> tuple[int, ...]:
        """(N, 2, T, V) of ``video``'s latents."""
        return tuple(self.f[video]["latent"].shape)

    def latents(self, video: str, rows: slice = slice(None)) -> np.ndarray:
        """Latents f_sk (n, 2, T, V) float32 of ``video``'s segment ``rows``."""
        return self.f[video]["latent"][rows].astype(np.float32, copy=False)

    def nll(self, video: str) -> np.ndarray:
        """NLLs (N,) float32 (bits/dim) of ``video``'s segments."""
        return self.f[video]["nll"][()]

    def keys(self, video: str, names: tuple[str, ...] = FLOW_KEYS) -> dict[str, np.ndarray]:
        """Segment keys (N,) of ``video`` as stored (int32)."""
        return {k: self.f[video][k][()] for k in names}


@contextlib.contextmanager
def open_flow(path: str | os.PathLike, what: str = "flow latents") -> Iterator[FlowFile]:
    """A flow file opened for reading; a missing or unreadable file is an error naming it (``what`` it is)."""
    with open_h5(path, what) as f:
        yield FlowFile(f)
