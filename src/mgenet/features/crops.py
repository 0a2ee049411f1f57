"""Human-centric crops: the person's box widened by 20% each side, clipped to the frame, resized to H x W."""

from __future__ import annotations

import cv2
import numpy as np
import torch

# mmaction2's Kinetics-400 data preprocessor for Video Swin (RGB, 0-255 scale)
KINETICS_MEAN = (123.675, 116.28, 103.53)
KINETICS_STD = (58.395, 57.12, 57.375)


def widen_boxes(boxes: np.ndarray, width: int, height: int, widen: float = 0.2) -> np.ndarray:
    """The pixel boxes to crop: ``boxes`` widened by ``widen`` of their size on each side, rounded outwards to whole
    pixels and clipped to the frame.

    Args:
        boxes: (..., 4) x1, y1, x2, y2 in pixels.
    Returns:
        (..., 4) float32 whole-pixel boxes; an empty box (x2 <= x1 or y2 <= y1) where the input lies outside the frame.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    x1, y1, x2, y2 = np.moveaxis(boxes, -1, 0)
    dx, dy = widen * (x2 - x1), widen * (y2 - y1)
    out = np.stack([np.floor(x1 - dx), np.floor(y1 - dy), np.ceil(x2 + dx), np.ceil(y2 + dy)], axis=-1)
    out[..., 0::2] = out[..., 0::2].clip(0, width)
    out[..., 1::2] = out[..., 1::2].clip(0, height)
    return out.astype(np.float32)


def bad_boxes(boxes: np.ndarray, crop_boxes: np.ndarray) -> np.ndarray:
    """Mask (...,) of boxes that cannot be cropped: not finite, of zero size, or entirely outside the frame."""
    boxes = np.asarray(boxes, dtype=np.float64)
    finite = np.isfinite(boxes).all(-1)
    with np.errstate(invalid="ignore"):
        sized = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
        inside = (crop_boxes[..., 2] > crop_boxes[..., 0]) & (crop_boxes[..., 3] > crop_boxes[..., 1])
    return ~(finite & sized & inside)


def crop_resize(frame: np.ndarray, box: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """Cut a whole-pixel ``box`` out of ``frame`` (H, W, 3) and resize it to ``size`` = (h, w), into ``out`` if given.

    Shrinking uses area averaging (no aliasing on large, near-camera persons), enlarging bilinear interpolation.
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    patch = frame[y1:y2, x1:x2]
    h, w = size
    interp = cv2.INTER_AREA if (y2 - y1) > h and (x2 - x1) > w else cv2.INTER_LINEAR
    resized = cv2.resize(patch, (w, h), dst=out, interpolation=interp)
    if out is not None and not np.shares_memory(resized, out):  # OpenCV writes into a fitting dst; be sure
        out[...] = resized
        return out
    return resized


def normalise_clips(clips: torch.Tensor) -> torch.Tensor:
    """uint8 RGB clips (B, T, H, W, 3) -> float (B, 3, T, H, W) with the Kinetics-400 mean and std."""
    x = clips.permute(0, 4, 1, 2, 3).float()  # (B, 3, T, H, W)
    mean = torch.tensor(KINETICS_MEAN, device=x.device).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD, device=x.device).view(1, 3, 1, 1, 1)
    return (x - mean) / std
