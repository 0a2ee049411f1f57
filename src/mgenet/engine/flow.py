"""Stage 1 loops: train the flow on training segments, save/load it, and encode segments to latents and NLLs.

Training streams segments from many per-video HDF5 files with flat memory: the files are indexed into blocks of rows,
the blocks are shuffled per epoch by a seeded generator, and a bounded buffer of blocks is read, flipped (STG-NF's
augmentation doubles the set) and shuffled before it is cut into batches.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mgenet import MgenetError
from mgenet.config import FromDict
from mgenet.io import atomic_path, flow_writer, load_torch, open_segments, provenance
from mgenet.models.flow import STGNF, FlowConfig
from mgenet.models.graph import FLIP_PERMUTATION
from mgenet.runtime import as_device, resolve_device, seed_everything, seed_worker

PathLike = str | os.PathLike
LR_SCHEDULES = ("stgnf", "exponential")


@dataclass
class FlowTrainConfig(FromDict):
    """Optimisation of stage 1; defaults are STG-NF's (ShanghaiTech).

    Attributes:
        epochs: passes over the (flip-doubled) training set.
        batch_size: segments per optimiser step.
        lr: Adamax learning rate.
        lr_decay: multiplicative learning-rate decay per epoch.
        lr_schedule: ``stgnf`` sets lr * lr_decay^e after epoch e (0-based), so epochs 1 and 2 both run at lr, as
            STG-NF's ``adjust_lr``; ``exponential`` runs epoch e at lr * lr_decay^e.
        weight_decay: Adamax weight decay. STG-NF's args say 5e-5 but its optimizer is built with the learning rate
            alone (``init_optimizer(..., lr=...)``), so it trains with none.
        grad_clip: max global gradient norm.
        flip_augment: add every segment's horizontal mirror to the training set.
        flip_swap_joints: the mirror also swaps left and right joints; STG-NF's only negates x.
        seed: seeds torch, numpy, random and the data order.
        device: ``auto`` (cuda if available), ``cpu``, ``cuda`` or ``cuda:N``.
        num_workers: DataLoader processes reading HDF5 (0 reads in the training process).
        block_rows: rows read per HDF5 slice; matches the segments files' chunking.
        buffer_blocks: blocks shuffled together; peak memory is about buffer_blocks * block_rows * 2 segments.
    """

    epochs: int = 8
    batch_size: int = 256
    lr: float = 5e-4
    lr_decay: float = 0.99
    lr_schedule: str = "stgnf"
    weight_decay: float = 0.0
    grad_clip: float = 100.0
    flip_augment: bool = True
    flip_swap_joints: bool = False
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    block_rows: int = 256
    buffer_blocks: int = 16

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")

    def epoch_lr(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        if self.lr_schedule == "stgnf":
            return self.lr * self.lr_decay ** max(epoch - 1, 0)
        return self.lr * self.lr_decay ** epoch



def flip_pose(pose: np.ndarray, swap_joints: bool = False) -> np.ndarray:
    """Horizontal mirror of normalised segments (N, 2, T, 18): negate x, as STG-NF does (it negates pixel x before
    normalising, which negates normalised x). ``swap_joints`` also swaps left and right joints, so the mirrored body
    keeps correct joint labels."""
    out = pose[..., list(FLIP_PERMUTATION)].copy() if swap_joints else pose.copy()
    out[:, 0] *= -1
    return out


# ----------------------------------------------------------------------------------------------- streaming data


class SegmentStream(IterableDataset):
    """Shuffled training segments from many files, read a bounded buffer at a time.

    Each epoch, every row of every file is yielded exactly once (twice with ``flip``: as is and mirrored). The order
    depends only on (seed, epoch), not on the number of workers. Iterating yields whole shuffled buffers
    (rows, 2, T, 18); :meth:`batches` cuts them into batches.
    """

    def __init__(self, paths: Sequence[PathLike], flip: bool, seed: int, block_rows: int = 256,
                 buffer_blocks: int = 16, swap_joints: bool = False) -> None:
        self.flip = flip
        self.swap_joints = swap_joints
        self.seed = seed
        self.buffer_blocks = buffer_blocks
        self.epoch = 0
        self.paths: list[str] = []  # files with at least one segment
        self.blocks: list[tuple[int, int, int]] = []  # (index into paths, start row, stop row)
        self.shape: tuple[int, ...] | None = None  # (C, T, V), shared by every file
        for path in paths:
            with open_segments(path) as f:
                n, *shape = f.pose_shape
            if n == 0:
                continue
            if self.shape is None:
                self.shape = tuple(shape)
            elif tuple(shape) != self.shape:
                raise MgenetError(f"{path}: poses of shape {tuple(shape)}, but {self.paths[0]} has {self.shape}; "
                                  f"all segments must be built with the same seg_len.")
            self.blocks += [(len(self.paths), s, min(s + block_rows, n)) for s in range(0, n, block_rows)]
            self.paths.append(str(path))
        self.n_rows = sum(stop - start for _, start, stop in self.blocks)

    def __len__(self) -> int:
        """Segments per epoch, flip included."""
        return self.n_rows * (2 if self.flip else 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _buffer(self, blocks: list[tuple[int, int, int]], rng: np.random.Generator) -> np.ndarray:
        parts = []
        for i, file_blocks in itertools.groupby(sorted(blocks), key=lambda b: b[0]):  # one open per file
            with open_segments(self.paths[i]) as f:
                parts += [f.pose(slice(start, stop)) for _, start, stop in file_blocks]
        pose = np.concatenate(parts).astype(np.float32, copy=False)
        if self.flip:
            pose = np.concatenate([pose, flip_pose(pose, self.swap_joints)])
        return pose[rng.permutation(len(pose))]  # shuffled within the buffer

    def __iter__(self) -> Iterator[np.ndarray]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.blocks))
        groups = [order[i:i + self.buffer_blocks] for i in range(0, len(order), self.buffer_blocks)]
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        for g, group in enumerate(groups):
            if g % n_workers == worker:  # the DataLoader interleaves workers round-robin, so order is kept
                rng = np.random.default_rng([self.seed, self.epoch, g])
                yield self._buffer([self.blocks[j] for j in group], rng)

    def batches(self, batch_size: int, num_workers: int = 0) -> Iterator[torch.Tensor]:
        """One epoch of batches (B, 2, T, 18); rows left over from a buffer start the next batch, so only the
        epoch's last batch is short, and a set smaller than one batch is one short batch (STG-NF's DataLoader keeps
        its last batch: no ``drop_last``)."""
        buffers: Iterator = iter(self) if num_workers == 0 else iter(DataLoader(
            self, batch_size=None, num_workers=num_workers, worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(self.seed)))
        carry: torch.Tensor | None = None
        for buf in buffers:
            buf = torch.as_tensor(buf)
            if carry is not None:
                buf = torch.cat([carry, buf])
            n_full = len(buf) // batch_size * batch_size
            if n_full:  # a buffer smaller than a batch (a small training set) is all carried: split() of 0 rows
                yield from buf[:n_full].split(batch_size)  # would yield one empty batch
            carry = buf[n_full:] if n_full < len(buf) else None
        if carry is not None:
            yield carry


# ------------------------------------------------------------------------------------------------------ training


def _check_shape(stream: SegmentStream, cfg: FlowConfig) -> None:
    want = (cfg.in_channels, cfg.seg_len, cfg.n_joints)
    if stream.shape != want:
        raise MgenetError(f"segments hold poses of shape (N, {', '.join(map(str, stream.shape or ()))}) but the flow "
                          f"expects (N, {', '.join(map(str, want))}); make flow.seg_len match segments.seg_len.")


def train_flow(segment_paths: Sequence[PathLike], model_cfg: FlowConfig, train_cfg: FlowTrainConfig,
               log: Callable[[str], None] = print) -> tuple[STGNF, list[dict[str, float]]]:
    """Fit the flow by maximum likelihood on training segments.

    Args:
        segment_paths: per-video segments files (``mgenet.io`` layout); files without segments are skipped.
        model_cfg: architecture.
        train_cfg: optimisation.
        log: receives one line per epoch.

    Returns:
        The trained model (eval mode) and one dict per epoch: epoch, nll (mean bits/dim), lr, seconds,
        segments_per_s.

    Raises:
        MgenetError: no training segment at all, or segments of the wrong shape.
    """
    seed_everything(train_cfg.seed)
    device = resolve_device(train_cfg.device)
    stream = SegmentStream(segment_paths, train_cfg.flip_augment, train_cfg.seed, train_cfg.block_rows,
                           train_cfg.buffer_blocks, train_cfg.flip_swap_joints)
    if stream.n_rows == 0:
        raise MgenetError(f"no training segments in the {len(segment_paths)} segments file(s) given; the training "
                          f"videos yielded no person track of seg_len={model_cfg.seg_len} frames. Check the pose "
                          f"files, or lower segments.seg_len.")
    _check_shape(stream, model_cfg)
    model = STGNF(model_cfg).to(device)
    opt = torch.optim.Adamax(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    history: list[dict[str, float]] = []
    for epoch in range(train_cfg.epochs):
        model.train()  # BatchNorm on batch statistics, ActNorm initialised by the first batch
        stream.set_epoch(epoch)
        lr = train_cfg.epoch_lr(epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        t0, total, n = time.perf_counter(), 0.0, 0
        for x in stream.batches(train_cfg.batch_size, train_cfg.num_workers):
            x = x.to(device, non_blocking=True)  # (B, C, T, V)
            _, nll = model.nll(x)
            loss = nll.mean()
            value = loss.item()
            if not math.isfinite(value):
                raise MgenetError(f"flow training diverged (NLL {value}) in epoch {epoch + 1}; "
                                  f"lower the flow learning rate or check the segments for extreme values.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            opt.step()
            total += value * len(x)
            n += len(x)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "nll": total / n, "lr": lr, "seconds": seconds, "segments_per_s": n / seconds}
        history.append(row)
        log(f"epoch {epoch + 1}/{train_cfg.epochs}: nll {row['nll']:.4f} bits/dim, lr {lr:.3g}, "
            f"{n} segments in {seconds:.1f} s ({row['segments_per_s']:.0f}/s)")
    return model.eval(), history


# --------------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: PathLike, model: STGNF, model_cfg: FlowConfig, train_cfg: FlowTrainConfig,
                    history: list[dict[str, float]], extra: Mapping[str, Any] | None = None) -> None:
    """Write ``{"model_config", "train_config", "state_dict", "history", **extra}`` atomically.

    ``extra`` must hold only plain types (str, numbers, lists, dicts) so ``weights_only`` loading accepts it.
    """
    ckpt = {"model_config": asdict(model_cfg), "train_config": asdict(train_cfg),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "history": history, **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_checkpoint(path: PathLike, device: str | torch.device = "cpu") -> tuple[STGNF, dict[str, Any]]:
    """Rebuild the flow from a checkpoint, in eval mode on ``device``; returns it and the checkpoint dict."""
    device = as_device(device)
    ckpt = load_torch(path, "flow checkpoint", map_location=device, keys=("model_config", "state_dict"),
                      otherwise="rule train_flow (`mgenet train-flow`) makes it.")
    if "coupling" not in ckpt["model_config"]:
        raise MgenetError(f"{path}: a flow checkpoint of an earlier mgenet, whose flow was not STG-NF's; delete it "
                          f"and rerun (rule train_flow trains the flow again).")
    model = STGNF(FlowConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


# ------------------------------------------------------------------------------------------------------ encoding


@torch.inference_mode()
def encode_flow(model: STGNF, segment_paths: Sequence[PathLike], out_path: PathLike, batch_size: int = 1024,
                device: str | torch.device = "cpu", attrs: Mapping[str, Any] | None = None) -> None:
    """Write latents f_sk and NLLs (bits/dim) of every segment, one group per video (``mgenet.io.flow``).

    Reads and writes ``batch_size`` rows at a time, so memory does not grow with the videos' length or number.

    Args:
        model: the trained flow.
        segment_paths: per-video segments files; a file with no segments gives empty datasets.
        out_path: the flow HDF5 to write (atomically).
        batch_size: segments per forward pass.
        device: where to run the model.
        attrs: provenance added to the file's attrs (config hash, checkpoint sha256, ...).
    """
    device = as_device(device)
    model = model.to(device).eval()
    cfg = model.cfg
    file_attrs = provenance(**{"stage": "encode_flow", "nll_units": "bits/dim", "seg_len": cfg.seg_len,
                               "n_flows": cfg.n_flows, "n_videos": len(segment_paths), **(attrs or {})})
    with flow_writer(out_path, file_attrs) as out:
        for path in segment_paths:
            with open_segments(path) as src:
                n, *shape = src.pose_shape
                if tuple(shape) != (cfg.in_channels, cfg.seg_len, cfg.n_joints):
                    raise MgenetError(f"{path}: poses of shape {tuple(shape)} but the flow was trained on "
                                      f"{(cfg.in_channels, cfg.seg_len, cfg.n_joints)}; rebuild segments or "
                                      f"retrain the flow with the same seg_len.")
                group = out.add_video(src.video, tuple(shape), src.keys(), path)
                for start in range(0, n, batch_size):
                    x = torch.from_numpy(src.pose(slice(start, start + batch_size))).to(device, torch.float32)
                    z, s = model.nll(x)  # (B, C, T, V), (B,)
                    group.write(start, z.cpu().numpy(), s.cpu().numpy())
