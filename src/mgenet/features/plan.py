"""Which frames and crop boxes each clip (window layout) or track chunk (track layout) reads, planned from a video's
segments before any frame is decoded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mgenet import MgenetError
from mgenet.features.crops import bad_boxes
from mgenet.features.swin import SwinConfig

# ----------------------------------------------------------------------------------------------------- planning


@dataclass
class CropPlan:
    """Which crops to cut from which frame, and which crops make each clip."""

    crop_frame: np.ndarray  # (K,) frame of each unique crop, sorted
    crop_box: np.ndarray  # (K, 4) its whole-pixel box
    clip_crops: np.ndarray  # (N, T) index of the crop of each clip step
    clip_last: np.ndarray  # (N,) last frame a clip needs
    frames: np.ndarray  # sorted unique frames to decode


def plan_crops(frames: np.ndarray, crop_boxes: np.ndarray) -> CropPlan:
    """Deduplicate the (frame, box) crops of all clips: with test stride 1 a crop is shared by up to T windows.

    Clips of different lengths come padded to the longest with frame -1; their padding gets crop index -1.
    """
    n, t = frames.shape
    valid = frames.reshape(-1) >= 0
    keys = np.concatenate([frames.reshape(-1, 1).astype(np.int64),
                           crop_boxes.reshape(-1, 4).astype(np.int64)], axis=1)[valid]  # (N*T, 5)
    if len(keys):
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)  # sorted by frame first
    else:
        uniq, inverse = np.zeros((0, 5), np.int64), np.zeros(0, np.int64)
    clip_crops = np.full(n * t, -1, np.int64)
    clip_crops[valid] = inverse.reshape(-1)
    return CropPlan(crop_frame=uniq[:, 0], crop_box=uniq[:, 1:], clip_crops=clip_crops.reshape(n, t),
                    clip_last=frames.max(axis=1) if n else np.zeros(0, np.int64),
                    frames=np.unique(uniq[:, 0]))


@dataclass
class TrackPlan:
    """Token sequences of a video's persons and where each clip lies in them (features.layout: track).

    A sequence is one run of one person's frames, as the windows take them (the person's frames in order; a window
    skips missing frames, so a sequence closes the same gaps), in one of the two phases of the 2-frame temporal
    patch: phase p pairs the run's frames (p, p+1), (p+2, p+3), ... A window starting at run position r is then
    t = T/2 consecutive token rows of the phase-(r mod 2) sequence, from row (r - r mod 2) / 2. A run is a set of
    windows chained by shared frames; frames no window uses are not part of any sequence.
    """

    seq_person: np.ndarray  # (S,) person id
    seq_phase: np.ndarray  # (S,) 0 or 1
    seq_frames: list[np.ndarray]  # S x (2 n_s,) frame numbers, in order
    seq_boxes: list[np.ndarray]  # S x (2 n_s, 4) crop boxes
    seq_token_start: np.ndarray  # (S,) first row of the sequence in track_tokens
    seq_tokens: np.ndarray  # (S,) n_s token rows
    clip_token_start: np.ndarray  # (N,) first row of each clip

    @property
    def n_tokens(self) -> int:
        return int(self.seq_tokens.sum())

    def token_frames(self) -> np.ndarray:
        """(M, 2) the two frames of every token row."""
        parts = [f.reshape(-1, 2) for f in self.seq_frames]
        return np.concatenate(parts) if parts else np.zeros((0, 2), np.int32)


def plan_tracks(frames: np.ndarray, person_id: np.ndarray, crop_boxes: np.ndarray, segments_path: str | Path = "",
                patch_t: int = 2) -> TrackPlan:
    """Cut the windows' persons into token sequences (see :class:`TrackPlan`).

    Args:
        frames: (N, T) frame of each window step, T a multiple of ``patch_t``.
        person_id: (N,) person of each window.
        crop_boxes: (N, T, 4) crop box of each step; a person's frame must have one box in every window holding it.
    Raises:
        MgenetError: T not a multiple of the temporal patch, a window whose frames are not consecutive among its
            person's frames, or one person-frame cropped with two boxes.
    """
    n, T = frames.shape
    if T % patch_t:
        raise MgenetError(f"{segments_path}: seg_len {T} is not a multiple of the backbone's temporal patch "
                          f"({patch_t} frames), so a window is not a whole number of token rows; use an even "
                          f"segments.seg_len or features.layout: window.")
    t = T // patch_t
    clip_start = np.zeros(n, np.int64)
    seq_person, seq_phase, seq_frames, seq_boxes, seq_tokens = [], [], [], [], []
    total = 0
    for pid in np.unique(person_id):
        rows = np.flatnonzero(person_id == pid)
        f = frames[rows]  # (n_p, T)
        used, first, inverse = np.unique(f.reshape(-1), return_index=True, return_inverse=True)
        boxes = crop_boxes[rows].reshape(-1, 4)
        box_of = boxes[first]  # (U, 4)
        differ = np.flatnonzero((boxes != box_of[inverse.reshape(-1)]).any(axis=1))
        if len(differ):
            frame = int(f.reshape(-1)[differ[0]])
            raise MgenetError(f"{segments_path}: person {int(pid)}, frame {frame} has different boxes in two "
                              f"windows; features.layout: track crops each person-frame once. Rebuild the segments "
                              f"file (build_segments) or use features.layout: window.")
        pos = np.searchsorted(used, f[:, 0])  # run position of each window's first frame
        if not np.array_equal(used[np.minimum(pos[:, None] + np.arange(T), len(used) - 1)], f):
            raise MgenetError(f"{segments_path}: a window of person {int(pid)} skips frames that another window of "
                              f"the person uses, so it is not a slice of the person's frames; rebuild the segments "
                              f"file (build_segments) or use features.layout: window.")
        order = np.argsort(pos, kind="stable")
        runs, end = [], -1
        for i in order:  # windows chained by shared frames make one run
            if pos[i] >= end:
                runs.append([])
            runs[-1].append(i)
            end = max(end, pos[i] + T)
        for run in runs:
            run = np.asarray(run)
            a = int(pos[run].min())
            rel = pos[run] - a
            for phase in np.unique(rel % patch_t):
                w = run[rel % patch_t == phase]
                offs = (pos[w] - a - phase) // patch_t
                n_tok = int(offs.max()) + t
                lo = a + int(phase)
                seq_person.append(int(pid))
                seq_phase.append(int(phase))
                seq_frames.append(used[lo:lo + patch_t * n_tok].astype(np.int32))
                seq_boxes.append(box_of[lo:lo + patch_t * n_tok])
                seq_tokens.append(n_tok)
                clip_start[rows[w]] = total + offs
                total += n_tok
    seq_tokens_arr = np.asarray(seq_tokens, np.int64)
    return TrackPlan(seq_person=np.asarray(seq_person, np.int32), seq_phase=np.asarray(seq_phase, np.int32),
                     seq_frames=seq_frames, seq_boxes=seq_boxes,
                     seq_token_start=np.concatenate([[0], np.cumsum(seq_tokens_arr)[:-1]]).astype(np.int64)
                     if len(seq_tokens) else np.zeros(0, np.int64),
                     seq_tokens=seq_tokens_arr, clip_token_start=clip_start)


def track_context(swin: SwinConfig = SwinConfig()) -> int:
    """Token rows of context a chunk of a sequence needs on each side for its kept rows to equal one pass over the
    whole sequence: 2w for temporal windows of w rows.

    The four blocks of stages 1-2 alternate regular windows [kw, kw + w) and windows shifted by w/2. Going back from
    a row through blocks 4, 3, 2, 1, the rows it depends on widen to the windows around them: a row of the kept part
    of a chunk that starts on a multiple of w depends on rows at most 2w before or after it, and every window of the
    chunk lies where the whole sequence's pass puts it (tests/features/test_track_layout.py checks the equality).
    """
    return 2 * swin.window_size[0]


def chunk_sequences(seq_tokens: np.ndarray, chunk_tokens: int, context: int) -> np.ndarray:
    """Backbone passes over the sequences: rows (sequence, compute_lo, compute_hi, keep_lo, keep_hi), in token rows.

    A sequence of at most ``chunk_tokens + context`` rows is one pass; a longer one is cut into kept pieces of
    ``chunk_tokens`` rows, each computed with ``context`` rows more on each side (where the sequence has them).
    """
    out = []
    for s, n in enumerate(seq_tokens.tolist()):
        if n <= chunk_tokens + context:
            out.append((s, 0, n, 0, n))
            continue
        for lo in range(0, n, chunk_tokens):
            hi = min(lo + chunk_tokens, n)
            out.append((s, max(0, lo - context), min(n, hi + context), lo, hi))
    return np.asarray(out, np.int64).reshape(-1, 5)


def check_segments(segments_path: Path, source: Path, n_frames: int, width: int, height: int,
                   seg: dict[str, np.ndarray], crop_boxes: np.ndarray) -> None:
    """Fail before any work on frames the video does not have or boxes that cannot be cropped."""
    frames = seg["frames"]
    if frames.size and (frames.max() >= n_frames or frames.min() < 0):
        row, step = np.unravel_index(int(np.argmax(frames)), frames.shape)
        raise MgenetError(f"{source}: the video has {n_frames} frames but {segments_path} (cut from the pose file) "
                          f"needs frame {int(frames.max())} (person {int(seg['person_id'][row])}). The video is "
                          f"truncated or the pose file belongs to another video.")
    bad = bad_boxes(seg["boxes"], crop_boxes)
    if bad.any():
        row, step = (int(v) for v in np.argwhere(bad)[0])
        raise MgenetError(f"{segments_path}: person {int(seg['person_id'][row])}, frame {int(frames[row, step])}: box "
                          f"{np.round(seg['boxes'][row, step], 1).tolist()} is empty, not finite or entirely outside "
                          f"the {width}x{height} frame ({int(bad.sum())} such boxes in all). Fix or drop these "
                          f"detections in the pose file.")


