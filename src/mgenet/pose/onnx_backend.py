"""Second backend: a user-supplied top-down COCO-17 keypoint model in ONNX (``pose.backend: onnx``).

Top-down models (SimpleBaseline, HRNet, ViTPose, RTMPose exported by mmpose / rtmlib, ...) take a person crop
(N, 3, H, W) and return either heatmaps (N, 17, h, w) or SimCC vectors (N, 17, W·k) and (N, 17, H·k). Both are
recognised from the model's output shapes. People are found by the same detectors as the default backend
(``pose.detector``), each region cropped to the model's aspect ratio, all crops of a frame run as one batch.
The file comes from ``pose.weights`` (relative paths are relative to the working directory, i.e. the workflow
root: ``resources/weights/...``); nothing is downloaded.
"""

from __future__ import annotations

import cv2
import numpy as np

from mgenet import MgenetError
from mgenet.pose.backends import FramePoses, PoseBackend, PoseConfig
from mgenet.pose.detectors import make_detector
from mgenet.pose.regions import Region, hard_nms, project
from mgenet.pose.runtimes import OnnxModel

IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
IMAGENET_STD = np.array([58.395, 57.12, 57.375], np.float32)


def decode_heatmaps(hm: np.ndarray, in_w: int, in_h: int) -> np.ndarray:
    """Argmax of each heatmap, shifted a quarter cell towards the higher neighbour (SimpleBaseline's decoding).

    Args:
        hm: (N, K, h, w) heatmaps.
    Returns:
        (N, K, 3): x, y in continuous crop pixels of the (in_w × in_h) input, the peak value as score.
    """
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(-1)
    score = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    ys, xs = np.divmod(idx, w)
    fx, fy = xs.astype(np.float64), ys.astype(np.float64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    inner_x = (xs > 0) & (xs < w - 1)
    inner_y = (ys > 0) & (ys < h - 1)
    dx = hm[ni, ki, ys, np.minimum(xs + 1, w - 1)] - hm[ni, ki, ys, np.maximum(xs - 1, 0)]
    dy = hm[ni, ki, np.minimum(ys + 1, h - 1), xs] - hm[ni, ki, np.maximum(ys - 1, 0), xs]
    fx += np.where(inner_x, 0.25 * np.sign(dx), 0.0)
    fy += np.where(inner_y, 0.25 * np.sign(dy), 0.0)
    x = (fx + 0.5) * in_w / w  # a cell's centre, in input pixels
    y = (fy + 0.5) * in_h / h
    return np.stack([x, y, np.clip(score, 0.0, 1.0)], axis=-1)


def decode_simcc(sx: np.ndarray, sy: np.ndarray, in_w: int, in_h: int) -> np.ndarray:
    """SimCC decoding (RTMPose): argmax of each axis' classification vector over ``split`` bins per pixel.

    Args:
        sx: (N, K, in_w · split), sy: (N, K, in_h · split).
    Returns:
        (N, K, 3): x, y in continuous crop pixels, score = the lower of the two maxima.
    """
    split_x, split_y = sx.shape[-1] / in_w, sy.shape[-1] / in_h
    x = (sx.argmax(-1) + 0.5) / split_x
    y = (sy.argmax(-1) + 0.5) / split_y
    score = np.minimum(sx.max(-1), sy.max(-1))
    return np.stack([x, y, np.clip(score, 0.0, 1.0)], axis=-1)


class OnnxTopDownBackend(PoseBackend):
    name = "onnx"

    def __init__(self, cfg: PoseConfig, threads: int = 1):
        super().__init__(cfg, threads)
        if not cfg.weights:
            raise MgenetError("pose.backend is onnx but pose.weights is empty: set it to your ONNX keypoint model, "
                              "e.g. resources/weights/rtmpose-m.onnx (see resources/weights/README.md).")
        self.model = OnnxModel(cfg.weights, threads)
        _, c, h, w = self.model.input_shape
        if not all(isinstance(v, int) for v in (c, h, w)) or c != 3:
            raise MgenetError(f"{cfg.weights}: input must be (N, 3, H, W) with a fixed H and W, got "
                              f"{self.model.input_shape}.")
        self.in_h, self.in_w = h, w
        outs = self.model.output_shapes
        if len(outs) == 1 and len(outs[0]) == 4 and outs[0][1] == 17:
            self.kind = "heatmap"
        elif len(outs) >= 2 and len(outs[0]) == 3 and len(outs[1]) == 3 and outs[0][1] == outs[1][1] == 17:
            self.kind = "simcc"
        else:
            raise MgenetError(f"{cfg.weights}: outputs {outs} are neither COCO-17 heatmaps (N, 17, h, w) nor SimCC "
                              f"vectors (N, 17, W·k), (N, 17, H·k).")
        if cfg.input_norm not in ("imagenet", "unit"):
            raise MgenetError(f"pose.input_norm {cfg.input_norm!r}: use imagenet or unit.")
        self.batch_fixed = isinstance(self.model.input_shape[0], int)
        self.detector = make_detector(cfg, threads)

    def reset(self) -> None:
        super().reset()
        if hasattr(self.detector, "reset"):
            self.detector.reset()

    def _normalise(self, crops: np.ndarray) -> np.ndarray:
        x = crops.astype(np.float32)
        x = (x - IMAGENET_MEAN) / IMAGENET_STD if self.cfg.input_norm == "imagenet" else x / 255.0
        return x.transpose(0, 3, 1, 2)  # (N, 3, H, W)

    def keypoints(self, rgb: np.ndarray, regions: list[Region]) -> np.ndarray:
        """(N, 17, 3) keypoints in frame pixels for each region."""
        crops, maps = zip(*(r.crop(rgb, self.in_w, self.in_h) for r in regions))
        x = self._normalise(np.stack(crops))
        if self.batch_fixed:  # a model exported with batch 1 runs crop by crop
            outs = [np.concatenate(o) for o in zip(*(self.model(x[i:i + 1]) for i in range(len(x))))]
        else:
            outs = self.model(x)
        if self.kind == "heatmap":
            kp = decode_heatmaps(outs[0], self.in_w, self.in_h)
        else:
            kp = decode_simcc(outs[0], outs[1], self.in_w, self.in_h)
        for i, m in enumerate(maps):
            kp[i, :, :2] = project(kp[i, :, :2], m)
        return kp.astype(np.float32)

    def __call__(self, frame_bgr: np.ndarray, hints: list[Region] | None = None) -> FramePoses:
        with self.timed("detect"):
            regions = [*(hints or []), *(self.detector(frame_bgr) if self.detect_now(hints) else [])]
        if not regions:
            return FramePoses.empty()
        boxes = np.stack([r.box() for r in regions])
        keep = hard_nms(boxes, np.array([2.0 if i < len(hints or []) else r.score for i, r in enumerate(regions)]),
                        0.5)[: self.cfg.max_persons]
        regions = [regions[i] for i in keep]
        with self.timed("keypoints"):
            kp = self.keypoints(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB), regions)
        score = kp[:, :, 2].mean(1)
        height = kp[:, :, 1].max(1) - kp[:, :, 1].min(1)
        ok = (score >= self.cfg.min_pose_score) & (height >= self.cfg.min_person_height)
        return FramePoses(kp[ok], score[ok].astype(np.float32), [r for r, k in zip(regions, ok) if k])
