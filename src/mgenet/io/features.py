"""The features HDF5 file: one per video, Video Swin tokens of the human-centric crops in the `window` or
`track` layout (DESIGN §3)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from mgenet import MgenetError
from mgenet.io.common import create_h5, open_h5

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
FEATURE_LAYOUTS = ("window", "track")
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
    with create_h5(path) as f:
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
    with create_h5(path) as f:
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
            self.frames_ds = f.get("token_frames")
            self.starts = f["clip_token_start"][()].astype(np.int64)
            self.t = int(f.attrs["clip_tokens"])
            self.shape = (len(self.starts), self.t, *self.ds.shape[1:])
        else:
            raise MgenetError(f"{name}: unknown features layout {self.layout!r} (known: {list(FEATURE_LAYOUTS)}); it "
                              f"was written by another mgenet version: re-run extract_features.")

    def __len__(self) -> int:
        return self.shape[0]

    def track_rows(self, clip: int) -> slice:
        """The rows of ``track_tokens`` that make clip ``clip`` (track layout)."""
        start = int(self.starts[clip])
        return slice(start, start + self.t)

    def token_frames(self, clip: int) -> np.ndarray:
        """The frames (2 t,) that clip ``clip``'s token rows cover, in order (track layout)."""
        return self.frames_ds[self.track_rows(clip)].reshape(-1)

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


def read_clip_index(path: str | os.PathLike, fields: tuple[str, ...] = ("person_id", "start_frame", "scene")) -> tuple[
        dict[str, np.ndarray], tuple[int, ...], dict[str, Any]]:
    """What pairs a features file with other files without reading its tokens: ``fields`` (the clips' keys and the
    scene feature), the clips' token shape (N, t, h, w, C) in either layout, and the file's attrs.

    Raises:
        MgenetError: a clip key or the scene feature is missing, or the layout is unknown.
    """
    with open_h5(path, "features file") as f:
        for k in ("person_id", "start_frame", "mid_frame", "scene"):
            if k not in f:
                raise MgenetError(f"{path}: no dataset {k!r}; re-run extract_features for this video.")
        return {k: f[k][()] for k in fields}, ClipTokens(f).shape, dict(f.attrs)


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


