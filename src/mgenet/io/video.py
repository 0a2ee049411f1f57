"""Video probing: frame count, fps and size of a video file or a folder of frame images."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2

from mgenet import MgenetError

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv")
FRAME_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    height: int
    width: int


def frame_files(folder: Path) -> list[Path]:
    """A frame folder's images in frame order, checking that their numbers run without a gap.

    Frames are addressed by position (pose frame keys and ground-truth masks index them), so a missing image would
    shift every later frame against the ground truth; it is refused instead.

    Raises:
        MgenetError: no image, an image without a number, a number given twice, or a missing number.
    """
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_EXTS]
    if not files:
        raise MgenetError(f"{folder}: frame folder holds no {'/'.join(FRAME_EXTS)} images.")
    numbered = []
    for p in files:
        m = re.search(r"(\d+)(?!.*\d)", p.stem)  # the last run of digits: 000123.jpg, frame_12.png
        if m is None:
            raise MgenetError(f"{p}: frame file name has no frame number; name frames by their index (000000.jpg).")
        numbered.append((int(m.group(1)), p.name, p))
    numbered.sort()
    for (prev, _, _), (cur, _, path) in zip(numbered, numbered[1:]):
        if cur == prev:
            raise MgenetError(f"{path}: frame number {cur} appears twice in {folder}; keep one image per frame.")
        if cur != prev + 1:
            raise MgenetError(f"{folder}: frame {prev + 1} is missing (frames {numbered[0][0]}..{numbered[-1][0]}, "
                              f"next after {prev} is {cur}). Restore it (e.g. duplicate its neighbour) so that frame "
                              f"indices keep matching the ground truth.")
    return [p for _, _, p in numbered]


def probe(path: str | Path) -> VideoInfo:
    """Frame count, fps and size of a video file or a frame folder.

    Raises:
        MgenetError: the file is missing, unreadable or has no frames.
    """
    path = Path(path)
    if not path.exists():
        raise MgenetError(f"{path}: video not found.")
    if path.is_dir():
        files = frame_files(path)
        first = cv2.imread(str(files[0]))
        if first is None:
            raise MgenetError(f"{files[0]}: unreadable frame image.")
        return VideoInfo(len(files), 25.0, first.shape[0], first.shape[1])
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MgenetError(f"{path}: cannot open the video (corrupt file or unsupported codec). "
                              f"Re-encode it, e.g. `ffmpeg -i in -c:v libx264 out.mp4`.")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        ok, frame = cap.read()
        if not ok or n <= 0:
            raise MgenetError(f"{path}: the video has no decodable frame (truncated or corrupt file).")
        return VideoInfo(n, fps, frame.shape[0], frame.shape[1])
    finally:
        cap.release()
