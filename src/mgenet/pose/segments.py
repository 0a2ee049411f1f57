"""Per-person pose windows (segments), as STG-NF cuts them."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np

from mgenet.config import FromDict
from mgenet.io import PoseDict, agreed_attrs
from mgenet.pose.skeleton import boxes_from_keypoints, coco17_to_openpose18, normalize_segments


# STG-NF divides every dataset's pixel coordinates by ShanghaiTech's 856x480 before centring and scaling by the std of
# y (utils/data_utils.py, whatever the video's size), so x and y keep one fixed relative scale across datasets.
STGNF_FRAME_SIZE = (856, 480)
NORM_SIZES = ("stgnf", "frame")


@dataclass(frozen=True)
class SegmentConfig(FromDict):
    """How tracks are cut into windows and normalised; ``norm_size`` is ``stgnf`` (divide by 856x480, STG-NF) or
    ``frame`` (divide by the video's own width and height)."""

    seg_len: int = 24
    train_stride: int = 6
    test_stride: int = 1
    max_missing: int = 2
    keep_last_window: bool = False
    norm_size: str = "stgnf"

    def __post_init__(self) -> None:
        if self.norm_size not in NORM_SIZES:
            raise ValueError(f"segments.norm_size must be one of {NORM_SIZES}, got {self.norm_size!r}")


    def stride(self, split: str) -> int:
        return self.train_stride if split in ("train", "abnormal_train") else self.test_stride

    def to_dict(self) -> dict:
        return asdict(self)


# What a training segments file's provenance tells of the settings it was cut with (its ``stride`` is train_stride).
SEGMENT_TRAINED_WITH = ("seg_len", "max_missing", "keep_last_window", "stride", "norm_size")


def segment_training_settings(paths: list[str | os.PathLike]) -> dict:
    """The segment settings the training segments files were cut with, read from their provenance: ``seg_len``,
    ``max_missing``, ``keep_last_window``, ``train_stride``; settings a file does not record are left out.

    The flow checkpoint stores this, so that a new video is cut into windows the way the flow was trained on
    (``mgenet score-video``). ``test_stride`` is not a property of training: it says how densely a test video is
    scored.

    Raises:
        MgenetError: the files were cut with different settings.
    """
    attrs = agreed_attrs(paths, SEGMENT_TRAINED_WITH, "training segments")
    if "stride" in attrs:
        attrs["train_stride"] = attrs.pop("stride")
    return attrs



def window_starts(frames: list[int], seg_len: int, stride: int, max_missing: int,
                  keep_last: bool = False) -> list[int]:
    """Indices into a person's sorted frame list where a valid window starts.

    STG-NF makes ``ceil((n - seg_len) / stride)`` windows, which drops the last possible one (and every window of a
    person seen for exactly ``seg_len`` frames); ``keep_last`` makes ``floor((n - seg_len) / stride) + 1`` instead.
    A window is kept if at least ``seg_len - max_missing`` of the frame numbers ``start .. start + seg_len - 1``
    are among its ``seg_len`` frames (short tracking gaps are bridged, long ones are not).
    """
    n = len(frames)
    if n < seg_len:
        return []
    count = (n - seg_len) // stride + 1 if keep_last else math.ceil((n - seg_len) / stride)
    starts = []
    for i in range(count):
        start = i * stride
        window = frames[start:start + seg_len]
        expected = range(window[0], window[0] + seg_len)
        if len(set(window).intersection(expected)) >= seg_len - max_missing:
            starts.append(start)
    return starts


def build_segments(poses: PoseDict, width: int, height: int, split: str, cfg: SegmentConfig) -> dict[str, np.ndarray]:
    """Cut every person's track into windows and normalise them.

    Returns:
        The arrays of the segments file (see ``mgenet.io.SEGMENT_DIMS``); zero rows when nobody qualifies.
    """
    T = cfg.seg_len
    stride = cfg.stride(split)
    kps, pids, frame_rows = [], [], []
    for pid in sorted(poses):
        track = poses[pid]
        frames = sorted(track)
        starts = window_starts(frames, T, stride, cfg.max_missing, cfg.keep_last_window)
        if not starts:
            continue
        person = np.stack([track[f] for f in frames])  # (n, 17, 3)
        for s in starts:
            kps.append(person[s:s + T])
            pids.append(pid)
            frame_rows.append(frames[s:s + T])
    if not kps:
        return {
            "pose": np.zeros((0, 2, T, 18), np.float32), "confidence": np.zeros((0, T, 18), np.float32),
            "keypoints": np.zeros((0, T, 18, 2), np.float32), "boxes": np.zeros((0, T, 4), np.float32),
            "frames": np.zeros((0, T), np.int32), "person_id": np.zeros(0, np.int32),
            "start_frame": np.zeros(0, np.int32), "mid_frame": np.zeros(0, np.int32),
        }
    kp18 = coco17_to_openpose18(np.stack(kps))  # (N, T, 18, 3)
    frames_arr = np.asarray(frame_rows, dtype=np.int32)  # (N, T)
    size = STGNF_FRAME_SIZE if cfg.norm_size == "stgnf" else (width, height)
    pose = normalize_segments(kp18[..., :2], *size)  # (N, T, 18, 2)
    return {
        "pose": pose.transpose(0, 3, 1, 2),  # (N, 2, T, 18)
        "confidence": kp18[..., 2],
        "keypoints": kp18[..., :2],
        "boxes": boxes_from_keypoints(kp18),
        "frames": frames_arr,
        "person_id": np.asarray(pids, dtype=np.int32),
        "start_frame": frames_arr[:, 0],
        "mid_frame": frames_arr[:, 0] + T // 2,  # STG-NF: start key + seg_len / 2
    }


def segment_video(row: dict, pose_path: str | os.PathLike, out: str | os.PathLike, cfg: SegmentConfig,
                  config_hash: str = "") -> dict[str, np.ndarray]:
    """Cut the tracks of one video (its manifest ``row``) read from ``pose_path`` into windows, written to ``out``
    with their provenance (the settings, but for the stride of the other split)."""
    import logging

    from mgenet.io import provenance, read_alphapose, write_segments

    poses = read_alphapose(pose_path)
    arrays = build_segments(poses, int(row["width"]), int(row["height"]), row["split"], cfg)
    attrs = provenance(config_hash, video=row["video"], split=row["split"], scene=str(row["scene"]),
                       frames=int(row["frames"]), width=int(row["width"]), height=int(row["height"]),
                       stride=cfg.stride(row["split"]), **{k: v for k, v in cfg.to_dict().items()
                                                           if not k.endswith("stride")})
    write_segments(out, arrays, attrs)
    logging.getLogger("mgenet").info("%s: %d segments of %d frames from %d tracks -> %s", row["video"],
                                     len(arrays["person_id"]), cfg.seg_len, len(poses), out)
    return arrays
