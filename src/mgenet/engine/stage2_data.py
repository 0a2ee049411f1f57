"""Stage 2's training and scoring data: the cached Video Swin tokens of each video's person-segments paired with their
flow latents f_sk, streamed in seeded shuffle buffers."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mgenet import MgenetError
from mgenet.io import open_flow, read_clip_index, read_features
from mgenet.models.mgenet import SHAPE_FIELDS, MGENetConfig
from mgenet.runtime import seed_worker

PathLike = str | os.PathLike
Pair = tuple[PathLike, PathLike]  # (features/{video}.h5, flow/{split}.h5)

# ----------------------------------------------------------------------------------------------- streaming data


@dataclass
class Batch:
    """A batch of clips and their keys (row = index of the clip in its video's files)."""

    tokens: torch.Tensor  # (B, t, h, w, C_b) float16, as stored; float32 once on the device (``to``)
    f_sk: torch.Tensor  # (B, 2, T, V) float32
    scene: torch.Tensor  # (B, C_s) float32
    video: np.ndarray  # (B,) index into ClipSource.videos
    row: np.ndarray
    person_id: np.ndarray
    start_frame: np.ndarray
    mid_frame: np.ndarray

    def __len__(self) -> int:
        return len(self.row)

    def to(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens, f_sk, scene) on ``device``, tokens as float32. The tokens travel as float16 and widen there: on a
        GPU that halves the copy and takes the conversion off the CPU, which was most of the data path's time."""
        return (self.tokens.to(device, non_blocking=True).float(), self.f_sk.to(device, non_blocking=True),
                self.scene.to(device, non_blocking=True))


@dataclass
class VideoEntry:
    name: str
    features: str
    flow: str
    n: int
    scene: np.ndarray  # (C_s,) float32


class ClipSource(IterableDataset):
    """Clips from (features file, flow file) pairs, read a bounded buffer at a time.

    Opening the source checks every pair: the flow file has the video's group, and its rows are the features rows
    (same person_id and start_frame, row by row). Iterating yields buffers (dicts of arrays) in an order fixed by
    ``set_order``: a key shuffles blocks and rows (training), ``None`` keeps file order (scoring).
    """

    def __init__(self, pairs: Sequence[Pair], block_rows: int = 64, buffer_blocks: int = 8) -> None:
        self.buffer_blocks = buffer_blocks
        self.videos: list[VideoEntry] = []
        self.blocks: list[tuple[int, int, int]] = []  # (video index, start row, stop row)
        self.shape: dict[str, int] = {}
        self.order_key: tuple[int, ...] | None = None
        for features, flow in pairs:
            entry, shape = _index_pair(str(features), str(flow))
            if self.shape and shape != self.shape:
                raise MgenetError(f"{features}: clips of shape {shape} differ from the other videos' {self.shape}; "
                                  f"extract every video's features with the same crop size and seg_len.")
            self.shape = shape
            self.blocks += [(len(self.videos), s, min(s + block_rows, entry.n)) for s in range(0, entry.n, block_rows)]
            self.videos.append(entry)

    def __len__(self) -> int:
        return sum(v.n for v in self.videos)

    def set_order(self, key: tuple[int, ...] | None) -> None:
        """Shuffle with generators seeded by ``key`` (e.g. (seed, phase, epoch)); ``None``: file order."""
        self.order_key = key

    def _buffer(self, blocks: list[tuple[int, int, int]], rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("tokens", "f_sk", "scene", "video", "row", "person_id",
                                                               "start_frame", "mid_frame")}
        for vi, start, stop in sorted(blocks):  # reads in file order; rows are shuffled below
            v = self.videos[vi]
            # either layout: a track-layout file gives each clip as a slice of its person's token rows
            clips, _ = read_features(v.features, ("tokens", "person_id", "start_frame", "mid_frame"),
                                     rows=slice(start, stop))
            with open_flow(v.flow) as g:
                parts["f_sk"].append(g.latents(v.name, slice(start, stop)))
            parts["tokens"].append(clips["tokens"].astype(np.float16, copy=False))
            for k in ("person_id", "start_frame", "mid_frame"):
                parts[k].append(clips[k].astype(np.int64))
            parts["scene"].append(np.broadcast_to(v.scene, (stop - start, len(v.scene))))
            parts["video"].append(np.full(stop - start, vi, dtype=np.int64))
            parts["row"].append(np.arange(start, stop, dtype=np.int64))
        buf = {k: np.concatenate(p) for k, p in parts.items()}
        if rng is not None:
            perm = rng.permutation(len(buf["row"]))
            buf = {k: a[perm] for k, a in buf.items()}
        return buf

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        key = self.order_key
        order = (np.random.default_rng(list(key)).permutation(len(self.blocks)) if key is not None
                 else np.arange(len(self.blocks)))
        groups = [order[i:i + self.buffer_blocks] for i in range(0, len(order), self.buffer_blocks)]
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        for gi, group in enumerate(groups):
            if gi % n_workers == worker:  # the DataLoader interleaves workers round-robin, so the order is kept
                rng = np.random.default_rng([*key, gi]) if key is not None else None
                yield self._buffer([self.blocks[j] for j in group], rng)

    def batches(self, batch_size: int, key: tuple[int, ...] | None = None, num_workers: int = 0) -> Iterator[Batch]:
        """One pass as batches; rows left over from a buffer start the next batch, so only the last is short."""
        self.set_order(key)
        buffers: Iterator = iter(self) if num_workers == 0 else iter(DataLoader(
            self, batch_size=None, num_workers=num_workers, worker_init_fn=seed_worker))
        carry: dict[str, np.ndarray] | None = None
        for buf in buffers:
            buf = {k: np.asarray(a) for k, a in buf.items()}
            if carry is not None:
                buf = {k: np.concatenate([carry[k], a]) for k, a in buf.items()}
            n = len(buf["row"])
            for s in range(0, n - batch_size + 1, batch_size):
                yield _to_batch({k: a[s:s + batch_size] for k, a in buf.items()})
            n_full = n // batch_size * batch_size
            carry = {k: a[n_full:] for k, a in buf.items()} if n_full < n else None
        if carry is not None:
            yield _to_batch(carry)


def _to_batch(d: dict[str, np.ndarray]) -> Batch:
    return Batch(tokens=torch.from_numpy(np.ascontiguousarray(d["tokens"])),
                 f_sk=torch.from_numpy(np.ascontiguousarray(d["f_sk"])),
                 scene=torch.from_numpy(np.ascontiguousarray(d["scene"], dtype=np.float32)),
                 video=d["video"], row=d["row"], person_id=d["person_id"], start_frame=d["start_frame"],
                 mid_frame=d["mid_frame"])


def _index_pair(features: str, flow: str) -> tuple[VideoEntry, dict[str, int]]:
    """Open one pair, check it, and return its entry and clip shape (the model's data-shape fields)."""
    index, tokens_shape, attrs = read_clip_index(features)
    video = str(attrs.get("video", Path(features).stem))
    scene = index["scene"].astype(np.float32).reshape(-1)
    keys = (index["person_id"], index["start_frame"])
    with open_flow(flow) as g:
        if video not in g:
            raise MgenetError(f"{flow} has no group for video {video!r} of {features}; re-run encode_flow with the "
                              f"segments of this video (features and flow latents must come from the same segments).")
        latent_shape = g.latent_shape(video)
        flow_keys = tuple(g.keys(video, ("person_id", "start_frame")).values())
    n = tokens_shape[0]
    if (latent_shape[0] != n or not np.array_equal(keys[0], flow_keys[0])
            or not np.array_equal(keys[1], flow_keys[1])):
        raise MgenetError(f"{features} and {flow}[{video}] are not aligned: {n} vs {latent_shape[0]} clips, or their "
                          f"person_id/start_frame differ row by row. Both must come from the same segments file; "
                          f"re-run extract_features and encode_flow after build_segments.")
    if len(tokens_shape) != 5 or len(latent_shape) != 4:
        raise MgenetError(f"{features}: tokens {tokens_shape} / latents {latent_shape} are not (N, t, h, w, C) / "
                          f"(N, 2, T, V).")
    _, t, h, w, c = tokens_shape
    _, coords, seg_len, joints = latent_shape
    shape = {"t": t, "h": h, "w": w, "in_dim": c, "seg_len": seg_len, "c_mo": coords * joints,
             "scene_dim": len(scene)}
    return VideoEntry(video, features, flow, n, scene), shape


def resolve_model_config(cfg: MGENetConfig, shape: Mapping[str, int], where: str) -> MGENetConfig:
    """Fill the data-shape fields left at 0 from ``shape``; a set field that disagrees is an error."""
    if shape["seg_len"] % shape["t"]:
        raise MgenetError(f"{where}: flow latents of {shape['seg_len']} frames do not split into the features' "
                          f"{shape['t']} token steps; features and flow must use the same segments.seg_len.")
    for k in SHAPE_FIELDS:
        given = getattr(cfg, k)
        if given and given != shape[k]:
            raise MgenetError(f"{where}: the data have {k}={shape[k]} but the stage-2 model config sets {k}={given}; "
                              f"remove the setting (0 = from the data) or rebuild the features.")
    return replace(cfg, **{k: shape[k] for k in SHAPE_FIELDS})


