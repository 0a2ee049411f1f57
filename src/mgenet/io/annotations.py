"""UBnormal's object annotations, as UBnormal ships them beside its videos under the dataset root::

    Scene{N}/{video}.mp4
    Scene{N}/{video}_annotations/{video}_{frame:04d}_gt.png   per-frame object masks: pixel value = object id, 0 none
    Scene{N}/{video}_annotations/{video}_tracks.txt           one anomalous object a line: id,start,end (frames, the
                                                              end included, as UBnormal's own ground-truth script
                                                              reads it); floats such as ``3.0`` are accepted
    Scene{N}/{video}_annotations/{video}_new_tracks.txt       (some videos) corrected tracks, read instead when present,
                                                              as UBnormal's RBDC / TBDC script does

One reader serves both uses: the labels of STG-NF's supervised setting (:mod:`mgenet.pose.labels`) and the per-frame
boxes of the anomalous objects for RBDC / TBDC (:func:`anomaly_boxes`). Only normal videos have no annotation folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from mgenet.io.common import MgenetError, MissingFileError, UnreadableFileError, first_line

PNG_FRAME = re.compile(r"(\d+)(?:_gt)?\.png$")
FIX = "restore the folder from UBnormal's download (Scene<N>/<video>_annotations/, beside the video)"


def find_annotation_dirs(root: str | os.PathLike) -> dict[str, Path]:
    """Every ``{video}_annotations`` folder under ``root`` (UBnormal keeps them in ``Scene{N}/``), by video name.
    The walk does not enter them (UBnormal's hold about 230,000 PNGs in all), nor ``pose/`` or ``gt/``."""
    found: dict[str, Path] = {}
    for folder, dirs, _ in os.walk(root):
        keep = []
        for d in sorted(dirs):
            if d.endswith("_annotations"):
                found.setdefault(d[: -len("_annotations")], Path(folder) / d)
            elif not d.startswith(".") and not (Path(folder) == Path(root) and d in ("pose", "gt")):
                keep.append(d)
        dirs[:] = keep
    return found


@dataclass(frozen=True)
class Track:
    """One anomalous object of a video: its mask value and its frames ``start..end`` (both included)."""

    object_id: int
    start: int
    end: int


class ObjectAnnotations:
    """One video's annotation folder: the anomalous objects' tracks and the per-frame object masks.

    Masks are cropped to the smallest height and width among the folder's PNGs, as STG-NF does ("FIX shape bug" in
    its ``get_ab_labels``): a few UBnormal videos mix mask sizes, and the crop keeps one frame size for the video.

    Raises (at construction):
        MissingFileError / UnreadableFileError: the folder, its tracks file or a PNG is missing or unreadable; one
            line naming it.
    """

    def __init__(self, folder: str | os.PathLike, video: str | None = None) -> None:
        self.folder = Path(folder)
        self.video = video or self.folder.name.removesuffix("_annotations")
        if not self.folder.is_dir():
            raise MissingFileError(self.folder, f"UBnormal annotation folder of {self.video}", otherwise=FIX + ".")
        try:
            names = sorted(os.listdir(self.folder))
        except OSError as e:
            raise UnreadableFileError(self.folder, "UBnormal annotation folder", first_line(e), FIX) from None
        self.frame_files: dict[int, Path] = {}
        for name in names:
            if name.lower().endswith(".png"):
                m = PNG_FRAME.search(name)
                if m is None:
                    raise UnreadableFileError(self.folder / name, "UBnormal annotation mask",
                                              "its name carries no frame number (want <video>_<frame>_gt.png)", FIX)
                self.frame_files[int(m.group(1))] = self.folder / name
        if not self.frame_files:
            raise UnreadableFileError(self.folder, "UBnormal annotation folder", "it holds no mask PNG", FIX)
        self.tracks = self._read_tracks()

    def _tracks_path(self) -> Path:
        for name in (f"{self.video}_new_tracks.txt", f"{self.video}_tracks.txt"):
            if (self.folder / name).is_file():
                return self.folder / name
        raise MissingFileError(self.folder / f"{self.video}_tracks.txt", "UBnormal tracks file", otherwise=FIX + ".")

    def _read_tracks(self) -> list[Track]:
        path = self._tracks_path()
        tracks = []
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UnreadableFileError(path, "UBnormal tracks file", first_line(e), FIX) from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                i, start, end = (int(float(v)) for v in line.strip().split(","))
            except ValueError:
                raise UnreadableFileError(path, "UBnormal tracks file", f"line {n} is not id,start,end: {line!r}",
                                          FIX) from None
            if start < 0 or end < start:
                raise UnreadableFileError(path, "UBnormal tracks file", f"line {n} has end before start: {line!r}",
                                          FIX)
            tracks.append(Track(i, start, end))
        return tracks

    def _open(self, path: Path):  # a PIL image
        from PIL import Image

        try:
            return Image.open(path)
        except (OSError, ValueError) as e:
            raise UnreadableFileError(path, "UBnormal annotation mask", first_line(e), FIX) from None

    @cached_property
    def shape(self) -> tuple[int, int]:
        """(height, width) every mask is cropped to: the smallest of the folder's PNGs (read from their headers)."""
        sizes = []
        for path in self.frame_files.values():
            with self._open(path) as im:
                sizes.append(im.size)  # (width, height)
        return min(h for _, h in sizes), min(w for w, _ in sizes)

    def mask(self, frame: int) -> np.ndarray | None:
        """The object-id mask (H, W) uint8 of ``frame``, cropped to :attr:`shape`; ``None`` when the folder has no PNG
        for that frame."""
        path = self.frame_files.get(frame)
        if path is None:
            return None
        h, w = self.shape
        try:
            with self._open(path) as im:
                return np.asarray(im.convert("L"))[:h, :w]  # grey levels, as STG-NF reads them
        except OSError as e:  # a truncated PNG fails when decoded, not when opened
            raise UnreadableFileError(path, "UBnormal annotation mask", first_line(e), FIX) from None

    def boxes(self) -> pd.DataFrame:
        """Each anomalous object's box in every frame of its track where its mask is non-empty: columns
        ``track, frame, x1, y1, x2, y2`` (x2, y2 exclusive). As UBnormal's RBDC / TBDC script: the bounding box of
        the mask's largest 8-connected part (by box area)."""
        import cv2

        rows = []
        for track in self.tracks:
            for frame in range(track.start, track.end + 1):
                mask = self.mask(frame)
                if mask is None:
                    continue
                n, _, stats, _ = cv2.connectedComponentsWithStats((mask == track.object_id).astype(np.uint8),
                                                                  connectivity=8)
                if n <= 1:
                    continue  # the object is out of view in this frame
                x, y, w, h = max((tuple(s[:4]) for s in stats[1:]), key=lambda s: s[2] * s[3])
                rows.append((str(track.object_id), frame, x, y, x + w, y + h))
        return pd.DataFrame(rows, columns=["track", "frame", "x1", "y1", "x2", "y2"])


def anomaly_boxes(videos: list[str], folders: dict[str, Path], root: str | os.PathLike) -> pd.DataFrame:
    """The boxes of every anomalous object of ``videos`` (the ``ANOMALY_BOX_COLUMNS`` table). A video named
    ``abnormal_*`` must have its annotation folder; a normal video has none and adds no row.

    Raises:
        MissingFileError: an anomalous video whose annotation folder is missing, naming where it was looked for.
    """
    parts = []
    for video in videos:
        if video not in folders:
            if video.startswith("abnormal"):
                m = re.search(r"scene_(\d+)", video)
                where = Path(root) / (f"Scene{m.group(1)}" if m else "") / f"{video}_annotations"
                raise MissingFileError(where, f"UBnormal annotation folder of {video}", otherwise=FIX + ".")
            continue
        df = ObjectAnnotations(folders[video], video).boxes()
        parts.append(df.assign(video=video))
    if not parts:
        return pd.DataFrame(columns=["video", "track", "frame", "x1", "y1", "x2", "y2"])
    return pd.concat(parts, ignore_index=True)[["video", "track", "frame", "x1", "y1", "x2", "y2"]]


def check_has_annotations(videos: list[str], folders: dict[str, Path], root: str | os.PathLike) -> None:
    """Every anomalous training video has its annotation folder (the supervised setting labels its windows)."""
    missing = [v for v in videos if v not in folders]
    if missing:
        raise MgenetError(f"{root}: no annotation folder for {len(missing)} anomalous training video(s) of "
                          f"pose/abnormal_train, e.g. Scene<N>/{missing[0]}_annotations; {FIX}.")
