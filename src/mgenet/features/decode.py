"""Frame access for feature extraction: decord and PyAV for video files, OpenCV for frame folders.

Frames are always fetched in large batches of sorted indices, never one seek per frame. Every reader returns RGB
uint8 (n, H, W, 3). A video file's batches that continue forward from the previous one (the extraction's chunks)
are decoded by one PyAV decoder running forward through the file; others (the scene frames spread over the video, a
jump far ahead) by decord's ``get_batch``, which decodes forward from the nearest keyframe. Both give the same pixels
(FFmpeg's decoder and RGB conversion); the forward decoder is there for memory: decord's ``get_batch`` kept growing
the process over a long video (245 -> 476 -> 615 MB over one and two passes of 3,000 320x240 frames, measured here),
a forward PyAV decoder stays flat.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from mgenet import MgenetError
from mgenet.io.video import frame_files

log = logging.getLogger(__name__)

FORWARD_MAX_GAP = 256  # frames the forward decoder may decode and skip to reach a batch (beyond: decord seeks)


class FrameReader(Protocol):
    path: Path
    n_frames: int
    height: int
    width: int

    def get(self, indices: np.ndarray) -> np.ndarray:
        """RGB uint8 frames (n, H, W, 3) at sorted ``indices``."""
        ...

    def close(self) -> None: ...


class DecordReader:
    """A video file through decord (mp4, avi, ... whatever its bundled FFmpeg decodes)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import decord

        self.path = path
        try:
            self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
            self.n_frames = len(self._vr)
            first = self._vr[0].asnumpy() if self.n_frames else None
        except (RuntimeError, decord.DECORDError) as e:  # decord raises these for unreadable or truncated files
            raise MgenetError(f"{path}: cannot decode the video ({_first_line(e)}); the file is truncated, corrupt "
                              f"or in an unsupported codec. Re-encode it, e.g. `ffmpeg -i in -c:v libx264 out.mp4`.") \
                from e
        if first is None:
            raise MgenetError(f"{path}: the video has no decodable frame (truncated or corrupt file).")
        self.height, self.width = first.shape[:2]
        self._vr.seek(0)
        self._container = self._frames = None  # the forward PyAV decoder, opened on the first forward batch
        self._pos = 0  # the index of the frame it decodes next

    def get(self, indices: np.ndarray) -> np.ndarray:
        import decord

        idx = [int(i) for i in indices]
        if self._forward_fits(idx):
            return self._forward(idx)
        try:
            return self._vr.get_batch(idx).asnumpy()
        except (RuntimeError, decord.DECORDError, IndexError) as e:
            raise MgenetError(f"{self.path}: decoding frames {idx[0]}-{idx[-1]} failed "
                              f"({_first_line(e)}); the file is truncated or corrupt.") from e

    def _forward_fits(self, idx: list[int]) -> bool:
        """A dense ascending batch no further ahead of the forward decoder than it is long (else decord seeks)."""
        if not idx or any(b <= a for a, b in pairwise(idx)):
            return False
        if self._frames is not None and idx[0] < self._pos and idx[0] <= FORWARD_MAX_GAP:
            self._close_forward()  # back near the start (another pass): decode from the start again
        start = self._pos if self._frames is not None else 0
        return idx[0] >= start and idx[0] - start <= max(FORWARD_MAX_GAP, len(idx)) and \
            idx[-1] - idx[0] < 4 * len(idx)

    def _forward(self, idx: list[int]) -> np.ndarray:
        import av

        if self._frames is None:
            try:
                self._container = av.open(str(self.path))
                stream = self._container.streams.video[0]
                stream.thread_type = "AUTO"
                self._frames = self._container.decode(stream)
            except (av.error.FFmpegError, IndexError) as e:
                raise MgenetError(f"{self.path}: cannot decode the video with PyAV ({_first_line(e)}); the file "
                                  f"is truncated or corrupt.") from e
            self._pos = 0
        out = np.empty((len(idx), self.height, self.width, 3), np.uint8)
        k = 0
        try:
            while k < len(idx):
                frame = next(self._frames, None)
                if frame is None:
                    raise MgenetError(f"{self.path}: frame {idx[k]} is beyond the {self._pos} frames PyAV decodes; "
                                      f"the file is truncated or corrupt.")
                if self._pos == idx[k]:
                    out[k] = frame.to_ndarray(format="rgb24")
                    k += 1
                self._pos += 1
        except av.error.FFmpegError as e:
            raise MgenetError(f"{self.path}: decoding frames {idx[0]}-{idx[-1]} failed ({_first_line(e)}); the file "
                              f"is truncated or corrupt.") from e
        return out

    def _close_forward(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._frames = None
        self._pos = 0

    def close(self) -> None:
        self._close_forward()
        del self._vr


class FolderReader:
    """A folder of frame images (ShanghaiTech ships its test set as JPEG folders), read by a small thread pool."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = path
        self.files = frame_files(path)  # numbered without a gap, else an error naming the missing frame
        self.n_frames = len(self.files)
        first = self._read(0)
        self.height, self.width = first.shape[:2]
        self._pool = ThreadPoolExecutor(max(threads, 1))  # cv2.imread releases the GIL

    def _read(self, i: int) -> np.ndarray:
        img = cv2.imread(str(self.files[i]), cv2.IMREAD_COLOR)
        if img is None:
            raise MgenetError(f"{self.files[i]}: unreadable frame image (frame {i} of {self.path}).")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def get(self, indices: np.ndarray) -> np.ndarray:
        frames = list(self._pool.map(self._read, (int(i) for i in indices)))
        shapes = {f.shape for f in frames}
        if len(shapes) != 1 or frames[0].shape[:2] != (self.height, self.width):
            raise MgenetError(f"{self.path}: frame images differ in size ({sorted(shapes)}).")
        return np.stack(frames)

    def close(self) -> None:
        self._pool.shutdown()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def open_frames(path: str | Path, threads: int = 1) -> FrameReader:
    """Open a video file or a frame folder.

    Raises:
        MgenetError: naming the path, when it is missing, unreadable or holds no frame.
    """
    path = Path(path)
    if not path.exists():
        raise MgenetError(f"{path}: video not found (is the manifest's video_path still valid?).")
    if path.is_dir():
        return FolderReader(path, threads)
    return DecordReader(path, threads)


def iter_batches(reader: FrameReader, frames: np.ndarray, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(indices, frames) for the sorted unique ``frames``, ``chunk`` at a time."""
    frames = np.unique(frames)
    for lo in range(0, len(frames), chunk):
        idx = frames[lo:lo + chunk]
        yield idx, reader.get(idx)


def even_frames(n_frames: int, k: int) -> np.ndarray:
    """``k`` frame indices spread evenly over a video (all of them when it is shorter)."""
    if n_frames <= k:
        return np.arange(n_frames)
    return np.unique(np.linspace(0, n_frames - 1, k).round().astype(int))


def median_image(frames: np.ndarray, rows: int = 64) -> np.ndarray:
    """Per-pixel median of (n, H, W, 3) uint8 frames, computed in strips of ``rows`` to bound the memory."""
    out = np.empty(frames.shape[1:], np.uint8)
    for lo in range(0, frames.shape[1], rows):
        out[lo:lo + rows] = np.median(frames[:, lo:lo + rows], axis=0).round().astype(np.uint8)
    return out
