"""Video probing: frame count, fps and size of a video file or a folder of frame images."""

from __future__ import annotations

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
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_EXTS)


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
        if not files:
            raise MgenetError(f"{path}: frame folder holds no {'/'.join(FRAME_EXTS)} images.")
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
