"""Frame access for feature extraction: decord for video files, OpenCV for frame folders.

Frames are always fetched in large batches of sorted indices (decord's ``get_batch`` decodes forward from the
nearest keyframe once per batch), never one seek per frame. Every reader returns RGB uint8 (n, H, W, 3).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from mgenet import MgenetError
from mgenet.io.video import frame_files

log = logging.getLogger(__name__)


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

    def get(self, indices: np.ndarray) -> np.ndarray:
        import decord

        try:
            return self._vr.get_batch([int(i) for i in indices]).asnumpy()
        except (RuntimeError, decord.DECORDError, IndexError) as e:
            raise MgenetError(f"{self.path}: decoding frames {int(indices[0])}-{int(indices[-1])} failed "
                              f"({_first_line(e)}); the file is truncated or corrupt.") from e

    def close(self) -> None:
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
