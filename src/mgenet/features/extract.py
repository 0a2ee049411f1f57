"""``extract_features``: the tokens of every person-segment's crop clip and the video's scene feature, streamed.

One pass over the video in frame order: decode batches of frames, cut every crop the segments need from them (a
(frame, box) crop shared by overlapping windows is cut once), assemble clips as soon as their last frame is decoded,
run the backbone on batches of clips and write their tokens. On a GPU the decoding runs in a background thread,
overlapping the backbone. A crop is dropped once every clip using it is assembled, so memory holds a decode batch,
the crops of the windows still open (about seg_len frames per person) and a clip batch or two: it does not grow with
the video.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from mgenet import MgenetError, __version__
from mgenet.config import FromDict
from mgenet.features.crops import crop_resize, normalise_clips, widen_boxes
from mgenet.features.decode import FrameReader, even_frames, median_image, open_frames
from mgenet.features.plan import (
    CropPlan,
    TrackPlan,
    check_segments,
    chunk_sequences,
    plan_crops,
    plan_tracks,
    track_context,
)
from mgenet.features.swin import BACKBONE_NAME, CHECKPOINT_NAME, SwinConfig, SwinStages12
from mgenet.io import FEATURE_LAYOUTS, agreed_attrs, feature_writer, provenance, read_segments, track_feature_writer
from mgenet.runtime import AMP_MODES, autocast

log = logging.getLogger(__name__)

COMPRESSIONS = ("none", "lzf", "gzip")
# The provenance of a features file that says how its tokens were made; stage 2 keeps it beside its model, so that a
# new video's features are made the same way (``mgenet score-video``).
FEATURE_TRAINED_WITH = ("backbone", "weights", "checkpoint_sha256", "crop", "widen", "scene_size", "scene_frames",
                        "seg_len", "layout", "track_chunk")


def check_image_size(key: str, size: tuple[int, int]) -> None:
    """An [H, W] the Swin stages 1-2 take (config ``key``, for the error): both positive multiples of 8."""
    h, w = size
    if h <= 0 or w <= 0 or h % 8 or w % 8:
        raise MgenetError(f"{key} {[h, w]}: height and width must be positive multiples of 8 (patch 4 x 4, then one "
                          f"2 x 2 patch merging: tokens are H/8 x W/8).")


@dataclass(frozen=True)
class FeatureConfig(FromDict):
    """Settings of ``extract_features`` (config.yaml ``features`` plus the global ``seed`` and ``device``)."""

    weights: str = f"resources/weights/{CHECKPOINT_NAME}"
    layout: str = "track"
    track_chunk: int = 256
    crop: tuple[int, int] = (128, 64)  # [choice] H x W; DESIGN §4
    widen: float = 0.2
    batch_size: int = 32
    decode_chunk: int = 64
    compression: str = "none"
    compression_level: int = 4
    scene_frames: int = 32
    scene_size: tuple[int, int] = (224, 224)
    amp: str = "auto"
    prefetch: str | bool = "auto"
    seed: int = 0
    device: str = "auto"

    SECTION: ClassVar[str] = "features"

    def __post_init__(self) -> None:
        for k in ("crop", "scene_size"):  # JSON and YAML give lists
            object.__setattr__(self, k, tuple(int(v) for v in getattr(self, k)))
        self.validate()

    def validate(self) -> None:
        for name in ("crop", "scene_size"):
            check_image_size(f"features.{name}", getattr(self, name))
        if self.layout not in FEATURE_LAYOUTS:
            raise MgenetError(f"features.layout {self.layout!r}: use one of {list(FEATURE_LAYOUTS)}.")
        step = SwinConfig().patch_size[0] * SwinConfig().window_size[0]
        if self.track_chunk <= 0 or self.track_chunk % step:
            raise MgenetError(f"features.track_chunk {self.track_chunk}: use a positive multiple of {step} frames (one "
                              f"temporal attention window), so that every chunk's windows line up with the track's.")
        if self.compression not in COMPRESSIONS:
            raise MgenetError(f"features.compression {self.compression!r}: use one of {list(COMPRESSIONS)}.")
        if self.amp not in AMP_MODES:
            raise MgenetError(f"features.amp {self.amp!r}: use auto, bf16, fp16 or off.")
        if self.prefetch not in ("auto", True, False):
            raise MgenetError(f"features.prefetch {self.prefetch!r}: use auto, true or false.")

    def use_prefetch(self, device: torch.device) -> bool:
        """Decode in a background thread? auto: on a GPU only. With the backbone on the CPU the overlap gains ~1%,
        and a decoder thread beside torch's CPU forward made glibc's heap grow with the video (0.7 GB flat without
        it, 3.4 GB and rising after 20,000 frames with it; cause not pinned down)."""
        return self.prefetch is True or (self.prefetch == "auto" and device.type == "cuda")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def h5_compression(self) -> tuple[str | None, int | None]:
        if self.compression == "none":
            return None, None
        return self.compression, (self.compression_level if self.compression == "gzip" else None)


# ---------------------------------------------------------------------------------------------------- streaming


class CropSlab:
    """Crops live in slots of one preallocated array (grown by doubling), not in an array each.

    Each crop lives for about T frames while decode batches and backbone temporaries come and go around it; one slab
    with reused slots keeps these long-lived small pieces from scattering over the allocator's heap.
    """

    def __init__(self, n_keys: int, size: tuple[int, int], capacity: int = 256) -> None:
        self.data = np.empty((capacity, *size, 3), np.uint8)
        self.free_slots = list(range(capacity - 1, -1, -1))
        self.slot_of = np.full(n_keys, -1, np.int64)
        self.held = 0

    def __len__(self) -> int:
        return self.held

    def new(self, key: int) -> np.ndarray:
        """The slot of crop ``key``, to be written in place."""
        if not self.free_slots:
            n = len(self.data)
            self.data = np.concatenate([self.data, np.empty_like(self.data)])
            self.free_slots = list(range(2 * n - 1, n - 1, -1))
        self.slot_of[key] = self.free_slots.pop()
        self.held += 1
        return self.data[self.slot_of[key]]

    def gather(self, keys: np.ndarray) -> np.ndarray:
        """The crops of ``keys`` (...,) copied into one array (..., h, w, 3); zeros where a key is -1 (padding)."""
        valid = keys >= 0
        if valid.all():
            return self.data[self.slot_of[keys]]
        out = np.zeros((*keys.shape, *self.data.shape[1:]), self.data.dtype)
        out[valid] = self.data[self.slot_of[keys[valid]]]
        return out

    def free(self, key: int) -> None:
        self.free_slots.append(int(self.slot_of[key]))
        self.slot_of[key] = -1
        self.held -= 1


class ClipStream:
    """Decodes frames in order, cuts the crops and yields clip batches as soon as they are complete.

    Iterating yields ``("scene", background image)`` first, then ``(rows, clips)``: segment rows (B,) and their uint8
    RGB crop clips (B, T, h, w, 3). A crop is dropped as soon as every clip using it has been assembled.
    """

    def __init__(self, reader: FrameReader, plan: CropPlan, cfg: FeatureConfig, scene_idx: np.ndarray,
                 batch_size: int | None = None) -> None:
        self.reader, self.plan, self.cfg, self.scene_idx = reader, plan, cfg, scene_idx
        self.batch_size = batch_size or cfg.batch_size
        self.decode_s = 0.0
        self.crop_s = 0.0
        self.peak_crops = 0

    def __iter__(self) -> Iterator[tuple[Any, np.ndarray]]:
        p, cfg = self.plan, self.cfg
        t0 = time.perf_counter()
        scene = self.reader.get(self.scene_idx)
        self.decode_s += time.perf_counter() - t0
        yield "scene", median_image(scene)
        del scene
        refs = np.bincount(p.clip_crops[p.clip_crops >= 0], minlength=len(p.crop_frame))
        crops = CropSlab(len(p.crop_frame), cfg.crop)
        order = np.argsort(p.clip_last, kind="stable")  # clips in the order they become complete
        next_clip, ready = 0, []
        crop_lo = 0
        n_chunks = max(-(-len(p.frames) // cfg.decode_chunk), 1)
        for c in range(n_chunks):
            idx = p.frames[c * cfg.decode_chunk:(c + 1) * cfg.decode_chunk]
            t0 = time.perf_counter()
            batch = self.reader.get(idx) if len(idx) else None
            t1 = time.perf_counter()
            self.decode_s += t1 - t0
            last = int(idx[-1]) if len(idx) else -1
            crop_hi = int(np.searchsorted(p.crop_frame, last, side="right"))
            pos = np.searchsorted(idx, p.crop_frame[crop_lo:crop_hi])
            for k, i in zip(range(crop_lo, crop_hi), pos):
                crop_resize(batch[i], p.crop_box[k], cfg.crop, out=crops.new(k))  # (h, w, 3)
            crop_lo = crop_hi
            del batch
            self.crop_s += time.perf_counter() - t1
            self.peak_crops = max(self.peak_crops, len(crops))
            while next_clip < len(order) and p.clip_last[order[next_clip]] <= last:
                ready.append(order[next_clip])
                next_clip += 1
            final = c == n_chunks - 1
            while len(ready) >= self.batch_size or (final and ready):
                rows = np.asarray(ready[:self.batch_size])
                ready = ready[self.batch_size:]
                ids = p.clip_crops[rows]  # (B, T)
                clips = crops.gather(ids)  # (B, T, h, w, 3) uint8
                ids = ids[ids >= 0]
                np.subtract.at(refs, ids, 1)
                for k in np.unique(ids):
                    if refs[k] == 0:
                        crops.free(k)
                yield rows, clips


_DONE = object()


def in_background(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, ``depth`` items ahead; its exceptions surface here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(e)
        else:
            put(_DONE)

    thread = threading.Thread(target=work, daemon=True, name="mgenet-decode")
    thread.start()
    try:
        while (item := q.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


@torch.inference_mode()
def backbone_on_device(model: SwinStages12, clips: np.ndarray | torch.Tensor, device: torch.device,
                       amp: str = "auto") -> torch.Tensor:
    """Tokens (B, t, h, w, C) of uint8 RGB clips (B, T, H, W, 3), left on ``device`` in autocast's dtype."""
    x = torch.as_tensor(clips)
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)  # uint8 travels: 4x less than float
    x = normalise_clips(x)
    with autocast(device, amp):
        return model(x)


@torch.inference_mode()
def run_backbone(model: SwinStages12, clips: np.ndarray | torch.Tensor, device: torch.device,
                 amp: str = "auto") -> torch.Tensor:
    """Tokens (B, t, h, w, C) float16 on the CPU of uint8 RGB clips (B, T, H, W, 3)."""
    return backbone_on_device(model, clips, device, amp).to(torch.float16).cpu()


def scene_feature(model: SwinStages12, background: np.ndarray, size: tuple[int, int], device: torch.device,
                  amp: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The scene feature e_s of a background image (H, W, 3) uint8: pooled (C_s,) and its map (h_s, w_s, C_s).

    The image is resized to ``size`` and fed as a still clip of two frames (one temporal patch).
    """
    h, w = size
    img = cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA)
    clip = np.repeat(img[None, None], model.cfg.patch_size[0], axis=1)  # (1, 2, h, w, 3)
    tokens = run_backbone(model, clip, device, amp)[0, 0].float()  # (h_s, w_s, C_s)
    return tokens.mean(dim=(0, 1)).numpy(), tokens.numpy()


@dataclass
class FeatureStats:
    clips: int = 0
    frames_decoded: int = 0
    crops: int = 0
    peak_crops: int = 0
    backbone_frames: int = 0
    token_bytes: int = 0
    seconds: float = 0.0
    forward_s: float = 0.0
    scene_s: float = 0.0
    decode_s: float = 0.0
    crop_s: float = 0.0
    write_s: float = 0.0
    wait_s: float = 0.0

    def summary(self) -> str:
        return (f"{self.clips} clips in {self.seconds:.1f} s ({self.clips / max(self.seconds, 1e-9):.1f} clips/s); "
                f"{self.frames_decoded} frames decoded, {self.crops} unique crops (peak {self.peak_crops} held); "
                f"{self.backbone_frames} frames through the backbone, {self.token_bytes / 1e6:.1f} MB of tokens; "
                f"forward {self.forward_s:.1f} s, scene feature {self.scene_s:.1f} s, "
                f"decode {self.decode_s:.1f} s, crop {self.crop_s:.1f} s, "
                f"write {self.write_s:.1f} s, getting clips {self.wait_s:.1f} s")


@dataclass
class _TrackUnits:
    """The backbone passes of a track-layout extraction (see :func:`chunk_sequences`) and their padded frames."""

    plan: TrackPlan
    chunks: np.ndarray  # (U, 5) sequence, compute_lo, compute_hi, keep_lo, keep_hi (token rows)
    frames: np.ndarray  # (U, L) frames of each pass, -1 after its end
    boxes: np.ndarray  # (U, L, 4)

    @classmethod
    def build(cls, plan: TrackPlan, cfg: FeatureConfig, swin: SwinConfig) -> _TrackUnits:
        pt = swin.patch_size[0]
        chunks = chunk_sequences(plan.seq_tokens, cfg.track_chunk // pt, track_context(swin))
        length = int((chunks[:, 2] - chunks[:, 1]).max()) * pt if len(chunks) else pt
        frames = np.full((len(chunks), length), -1, np.int64)
        boxes = np.zeros((len(chunks), length, 4), np.float32)
        for u, (sq, c0, c1, _, _) in enumerate(chunks):
            frames[u, :(c1 - c0) * pt] = plan.seq_frames[sq][c0 * pt:c1 * pt]
            boxes[u, :(c1 - c0) * pt] = plan.seq_boxes[sq][c0 * pt:c1 * pt]
        return cls(plan, chunks, frames, boxes)


def extract_video_features(source: str | Path, segments_path: str | Path, out: str | Path, cfg: FeatureConfig,
                           model: SwinStages12, device: torch.device, attrs: dict[str, Any],
                           threads: int = 1, progress: Callable[[int], None] | None = None) -> FeatureStats:
    """Write ``out``: the tokens of every segment's crop clip (features.layout: window) or of every person's token
    sequences (track), and the video's scene feature.

    Args:
        source: the video file or frame folder.
        segments_path: the video's segments file; the features' rows follow its rows.
        attrs: provenance to store (video, split, scene, config_hash, checkpoint_sha256).
        threads: decoder threads (decord / image reads).
        progress: called with the number of clips (window) or token rows (track) written after each batch.
    Raises:
        MgenetError: unreadable video, frames the video lacks, uncroppable boxes. No file is left at ``out``.
    """
    t_start = time.perf_counter()
    source, segments_path = Path(source), Path(segments_path)
    seg, seg_attrs = read_segments(segments_path, ("boxes", "frames", "person_id", "start_frame", "mid_frame"))
    n, T = seg["frames"].shape
    pt = model.cfg.patch_size[0]
    reader = open_frames(source, threads)
    try:
        crop_boxes = widen_boxes(seg["boxes"], reader.width, reader.height, cfg.widen)
        check_segments(segments_path, source, reader.n_frames, reader.width, reader.height, seg, crop_boxes)
        token_shape = model.cfg.token_shape(T, *cfg.crop)  # (t, h, w, C) of a clip
        units: _TrackUnits | None = None
        if cfg.layout == "track":
            tplan = plan_tracks(seg["frames"], seg["person_id"], crop_boxes, segments_path, pt)
            units = _TrackUnits.build(tplan, cfg, model.cfg)
            plan = plan_crops(units.frames, units.boxes)
            # as many frames per forward as window batches hold
            batch = max(1, cfg.batch_size * T // units.frames.shape[1])
            token_bytes = tplan.n_tokens * int(np.prod(token_shape[1:])) * 2
        else:
            plan = plan_crops(seg["frames"], crop_boxes)
            batch = cfg.batch_size
            token_bytes = n * int(np.prod(token_shape)) * 2
        log.info("%s: %d clips of %d frames -> %s layout, tokens %s float16 per clip, %.1f MB before compression; "
                 "%d frames to decode, %d unique crops", source, n, T, cfg.layout, token_shape, token_bytes / 1e6,
                 len(plan.frames), len(plan.crop_frame))
        all_attrs = provenance(
            attrs.get("config_hash", ""), backbone=BACKBONE_NAME, crop=list(cfg.crop), widen=cfg.widen,
            seg_len=int(T), stride=int(seg_attrs.get("stride", 0)), scene_size=list(cfg.scene_size),
            scene_frames=int(cfg.scene_frames), frames=int(reader.n_frames), width=int(reader.width),
            height=int(reader.height), normalisation="kinetics400 mean/std, RGB 0-255", layout=cfg.layout,
            **({"track_chunk": int(cfg.track_chunk), "track_context": int(track_context(model.cfg))}
               if units is not None else {}),
            **{k: v for k, v in attrs.items() if k != "config_hash"})
        all_attrs.setdefault("mgenet_version", __version__)
        compression, level = cfg.h5_compression()
        stats = FeatureStats(clips=n, frames_decoded=len(plan.frames), crops=len(plan.crop_frame),
                             token_bytes=token_bytes)
        stream = ClipStream(reader, plan, cfg, even_frames(reader.n_frames, cfg.scene_frames), batch)
        items = in_background(stream) if cfg.use_prefetch(device) else iter(stream)
        if units is None:
            writer = feature_writer(out, n, token_shape, all_attrs, compression, level)
        else:
            writer = track_feature_writer(out, n, units.plan.n_tokens, token_shape[1:], token_shape[0], all_attrs,
                                          compression, level)
        try:
            with writer as w:
                scene = scene_map = None
                while True:
                    t0 = time.perf_counter()
                    item = next(items, None)
                    t1 = time.perf_counter()
                    stats.wait_s += t1 - t0
                    if item is None:
                        break
                    if isinstance(item[0], str):  # the background image, first
                        scene, scene_map = scene_feature(model, item[1], cfg.scene_size, device, cfg.amp)
                        stats.scene_s += time.perf_counter() - t1
                        continue
                    rows, clips = item
                    if units is None:
                        tokens = run_backbone(model, clips, device, cfg.amp).numpy()
                        stats.backbone_frames += clips.shape[0] * clips.shape[1]
                        t2 = time.perf_counter()
                        stats.forward_s += t2 - t1
                        w.write_tokens(rows, tokens)
                        stats.write_s += time.perf_counter() - t2
                        done = len(rows)
                    else:
                        done = _track_batch(model, units, rows, clips, w, device, cfg.amp, stats)
                    if progress is not None:
                        progress(done)
                t0 = time.perf_counter()
                arrays = {"crop_boxes": crop_boxes, "person_id": seg["person_id"], "start_frame": seg["start_frame"],
                          "mid_frame": seg["mid_frame"], "scene": scene, "scene_map": scene_map}
                if units is not None:
                    tp = units.plan
                    arrays.update({"token_frames": tp.token_frames(), "clip_token_start": tp.clip_token_start,
                                   "seq_person_id": tp.seq_person, "seq_phase": tp.seq_phase,
                                   "seq_token_start": tp.seq_token_start, "seq_tokens": tp.seq_tokens})
                w.write_arrays(arrays)
                stats.write_s += time.perf_counter() - t0
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
    finally:
        reader.close()
    stats.decode_s, stats.crop_s, stats.peak_crops = stream.decode_s, stream.crop_s, stream.peak_crops
    stats.seconds = time.perf_counter() - t_start
    return stats


def _track_batch(model: SwinStages12, units: _TrackUnits, rows: np.ndarray, clips: np.ndarray, w: Any,
                 device: torch.device, amp: str, stats: FeatureStats) -> int:
    """Run the backbone on a batch of sequence chunks (padded frames (B, L, h, w, 3)) and store their kept rows;
    chunks of one length share a forward (padding would change the attention windows)."""
    pt = model.cfg.patch_size[0]
    ch = units.chunks[rows]
    lengths = (ch[:, 2] - ch[:, 1]) * pt
    written = 0
    for length in np.unique(lengths):
        g = np.flatnonzero(lengths == length)
        t1 = time.perf_counter()
        tokens = run_backbone(model, clips[g, :length], device, amp).numpy()  # (b, length / pt, h, w, C)
        t2 = time.perf_counter()
        stats.forward_s += t2 - t1
        stats.backbone_frames += len(g) * int(length)
        for i, (sq, c0, _, k0, k1) in enumerate(ch[g]):
            w.write_tokens(int(units.plan.seq_token_start[sq] + k0), tokens[i, k0 - c0:k1 - c0])
            written += int(k1 - k0)
        stats.write_s += time.perf_counter() - t2
    return written


def feature_training_settings(paths: list[str | Path]) -> dict[str, Any]:
    """How the training videos' features were made (:data:`FEATURE_TRAINED_WITH`, from their provenance; settings a
    file does not record are left out).

    Raises:
        MgenetError: the files were made with different settings (another backbone checkpoint, crop size, ...).
    """
    return agreed_attrs(list(paths), FEATURE_TRAINED_WITH, "training features")

