"""Stage 2 loops: stream (features, flow latent) pairs, train MGENet level by level, and score test segments.

Training runs three phases in order (arXiv 2312.04119 §3.5):
    level1    the RGB encoder and H_B learn f_sk from appearance (L_mo), the behaviour and scene memories are written
    level2    the RGB encoder and memories are frozen; the mask encoder learns f_u from visible tokens (L_app)
    matching  one pass (the paper's "final epoch") writes the behaviour-scene matching memory, all else frozen; it
              starts from random items or (``matching_init: kmeans``) from k-means++ centres of training queries W^r
After every epoch a checkpoint with the model, optimiser, RNG states and position goes to ``<out>.partial``
(atomically); a restarted run continues from it and ends with the same weights as an uninterrupted one. Data order and
masks are drawn from generators seeded by (seed, phase, epoch, batch), never from a global RNG, so resuming needs no
replay.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from mgenet import MgenetError
from mgenet.config import FromDict
from mgenet.engine.stage2_data import ClipSource, Pair, PathLike, resolve_model_config
from mgenet.io import load_torch, provenance, save_torch, sha256_file
from mgenet.models.masking import clip_mask_pairs, keep_indices, random_masks
from mgenet.models.memory import MM_FORMS, kmeans_pp
from mgenet.models.mgenet import LEVEL1_VARIANTS, MGENet, MGENetConfig
from mgenet.runtime import as_device, autocast, grad_scaler, resolve_device, seed_everything
from mgenet.scoring.components import KEY_COLUMNS

PHASES = ("level1", "level2", "matching")
SCORE_COLUMNS = KEY_COLUMNS + ["mo", "app", "mm"] + [c for c in LEVEL1_VARIANTS if c != "mo"]
OPTIMIZERS = ("adamw", "sgd")
# k-means of M^r: at most this many float32 values of training queries W^r are held at once (1 GiB): every clip on
# the demo, ~1,400 of them at the paper's sizes (W^r of 1536 tokens x 128 items), drawn uniformly.
KMEANS_FLOATS = 2 ** 28
KMEANS_STREAM = 10 ** 6  # third part of the RNG key of the k-means sample, beside (seed, phase, epoch) of data order
Precision = Callable[[], AbstractContextManager]  # a fresh autocast context per forward (``mgenet.runtime.autocast``)


@dataclass
class Stage2TrainConfig(FromDict):
    """Optimisation of stage 2.

    Attributes:
        level1_epochs: epochs of level 1 (RGB encoder + H_B).
        level2_epochs: epochs of level 2 (mask encoder).
        matching_epochs: passes that write the matching memory (the paper: the final epoch, 1).
        batch_size: clips per step.
        optimizer: ``adamw`` (default) or ``sgd`` (the paper's, with ``momentum``).
        lr: learning rate of both levels.
        momentum: SGD momentum (the paper: 0.5).
        weight_decay: decoupled weight decay (AdamW) / L2 (SGD).
        grad_clip: max global gradient norm; 0 disables.
        seed: seeds the model's initialisation, the data order and the masks.
        device: ``auto`` (cuda if available), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling); ignored on CPU.
        num_workers: DataLoader processes reading HDF5 (0 reads in the training process).
        block_rows: rows per HDF5 read.
        buffer_blocks: blocks shuffled together; a buffer holds block_rows * buffer_blocks clips (float16 tokens).
    """

    level1_epochs: int = 10
    level2_epochs: int = 10
    matching_epochs: int = 1
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.5
    weight_decay: float = 0.05
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    block_rows: int = 64
    buffer_blocks: int = 8

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if min(self.level1_epochs, self.level2_epochs, self.matching_epochs) < 0 or self.batch_size < 1:
            raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {self}")


@dataclass
class Stage2Config(FromDict):
    """Everything ``train_stage2`` needs: ``{"model": MGENetConfig fields, "train": Stage2TrainConfig fields}``."""

    model: MGENetConfig = field(default_factory=MGENetConfig)
    train: Stage2TrainConfig = field(default_factory=Stage2TrainConfig)

    SECTION: ClassVar[str] = "stage-2"

    def __post_init__(self) -> None:
        if not isinstance(self.model, MGENetConfig):  # a config mapping (None: the defaults)
            self.model = MGENetConfig.from_dict(dict(self.model or {}))
        if not isinstance(self.train, Stage2TrainConfig):
            self.train = Stage2TrainConfig.from_dict(dict(self.train or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"model": asdict(self.model), "train": asdict(self.train)}


# ------------------------------------------------------------------------------------------------------ training


def _set_phase(model: MGENet, phase: str) -> list[torch.nn.Parameter]:
    """Freeze everything but the phase's modules (dropping gradients left by the previous phase); return their
    parameters."""
    model.requires_grad_(False).eval()
    for p in model.parameters():
        p.grad = None
    modules = {"level1": model.level1_modules(), "level2": model.level2_modules(), "matching": []}[phase]
    for m in modules:
        m.requires_grad_(True).train()
    return [p for m in modules for p in m.parameters()]


def _optimizer(params: list[torch.nn.Parameter], tc: Stage2TrainConfig) -> torch.optim.Optimizer:
    if tc.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    return torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]], "random": random.getstate()}


def _set_rng_state(s: Mapping[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    np.random.set_state((s["numpy"][0], np.array(s["numpy"][1], dtype=np.uint32), *s["numpy"][2:]))
    random.setstate(s["random"])


def _run_epoch(model: MGENet, source: ClipSource, phase: str, key: tuple[int, ...], tc: Stage2TrainConfig,
               device: torch.device, opt: torch.optim.Optimizer | None, precision: Precision,
               scaler: torch.amp.GradScaler | None, params: list[torch.nn.Parameter]) -> dict[str, Any]:
    """One epoch of one phase; returns its history row: phase, epoch, the clip-weighted mean of each loss term,
    seconds, clips_per_s."""
    t0 = time.perf_counter()
    cfg = model.cfg
    frozen = [p for m in model.level1_modules() for p in m.parameters()]
    sums: dict[str, float] = {}
    n = 0
    for bi, batch in enumerate(source.batches(tc.batch_size, key, tc.num_workers)):
        tokens, f_sk, scene = batch.to(device)
        if phase == "matching":
            with precision():
                terms = {"l_sep_r": model.matching_step(tokens, scene)}
        else:
            with precision():
                if phase == "level1":
                    terms = model.level1_losses(tokens, f_sk, scene)
                else:
                    masks = random_masks(len(batch), cfg.h, cfg.w, cfg.mask, np.random.default_rng([*key, bi]))
                    terms = model.level2_losses(tokens, keep_indices(masks, cfg.t).to(device))
            loss = terms["loss"]
            if not math.isfinite(loss.detach().item()):
                raise MgenetError(f"stage-2 {phase} diverged (loss {loss.item()}) in batch {bi + 1}; lower "
                                  f"stage2.train.lr or check the features and flow latents for extreme values.")
            assert opt is not None
            opt.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler else loss).backward()
            if phase == "level2" and any(p.grad is not None for p in frozen):
                raise RuntimeError("a gradient reached the frozen RGB encoder in level 2")
            if scaler:
                scaler.unscale_(opt)
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if phase == "level1":  # MNAD's write, after the step, with the step's queries
                model.behaviour_memory.update(terms["e_b"].detach().flatten(0, 1))
                model.scene_memory.update(model.scene_query(scene))
        for k, v in terms.items():
            if k != "e_b":
                sums[k] = sums.get(k, 0.0) + v.detach().item() * len(batch)
        n += len(batch)
    seconds = time.perf_counter() - t0
    return {"phase": phase, "epoch": key[-1] + 1, **{k: v / max(n, 1) for k, v in sums.items()}, "seconds": seconds,
            "clips_per_s": n / seconds}


@torch.no_grad()
def init_matching(model: MGENet, source: ClipSource, seed: int, batch_size: int, device: torch.device,
                  precision: Precision) -> int:
    """Start M^r from k-means++ centres of training queries W^r (``matching_init: kmeans``).

    The clips are a uniform sample of at most ``KMEANS_FLOATS`` values' worth (every clip on the demo), drawn, like
    the seeding, from generators keyed by (``seed``, the matching phase), so a fixed seed gives the same items.
    With fewer clips than items, the remaining items keep their random start.

    Returns:
        The number of queries the centres were computed from.
    """
    mem = model.matching_memory
    n_items, length = mem.cfg.n_items, mem.cfg.behaviour_len + mem.cfg.scene_len
    rng = np.random.default_rng([seed, PHASES.index("matching"), KMEANS_STREAM])
    n = len(source)
    keep = np.zeros(n, dtype=bool)
    keep[rng.choice(n, size=min(n, max(n_items, KMEANS_FLOATS // length)), replace=False)] = True
    queries, offset = [], 0
    for batch in source.batches(batch_size):  # file order: the sample does not depend on the batch size
        rows = np.flatnonzero(keep[offset:offset + len(batch)])
        offset += len(batch)
        if len(rows):
            idx = torch.from_numpy(rows)
            tokens, _, scene = batch.to(device)
            with precision():
                queries.append(model.matching_query(tokens[idx.to(device)], scene[idx.to(device)]).float().cpu())
    q = torch.cat(queries)
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    centres = kmeans_pp(q, min(n_items, len(q)), generator)
    items = mem.items.detach().cpu().clone()
    items[:len(centres)] = centres
    mem.start_from(items)
    return len(q)


def _written(model: MGENet) -> str:
    n = {"behaviour": model.cfg.n_behaviour, "scene": model.cfg.n_scene, "matching": model.cfg.n_matching}
    return ", ".join(f"{k} {v}/{n[k]}" for k, v in model.items_written().items())


def train_stage2(train_pairs: Sequence[Pair], cfg: Stage2Config, out_ckpt: PathLike,
                 log: Callable[[str], None] = print, stop_after: int | None = None,
                 attrs: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Train stage 2 on training clips and write its checkpoint.

    Args:
        train_pairs: (features file, flow file) per training video; videos without clips are skipped.
        cfg: model and optimisation settings; the model's data shapes left at 0 are taken from the files.
        out_ckpt: the final checkpoint; ``<out_ckpt>.partial`` holds the progress, and a run that finds it resumes.
        log: receives one line per epoch.
        stop_after: stop after this many epochs of this call (leaving the partial checkpoint), as a kill would.
        attrs: provenance stored in the checkpoint (config hash, input hashes, ...).

    Returns:
        One dict per epoch run so far (resumed epochs included): phase, epoch, the loss terms, seconds, clips_per_s.

    Raises:
        MgenetError: no training clip, misaligned or inconsistent inputs, a partial checkpoint of another config,
            or divergence.
    """
    tc = cfg.train
    device = resolve_device(tc.device)
    source = ClipSource(train_pairs, tc.block_rows, tc.buffer_blocks)
    if not len(source):
        raise MgenetError(f"no training clips in the {len(train_pairs)} features file(s) given; the training videos "
                          f"yielded no person segment. Check the pose and segments stages.")
    resolved = Stage2Config(resolve_model_config(cfg.model, source.shape, str(train_pairs[0][0])), tc)
    config = resolved.to_dict()
    seed_everything(tc.seed)
    model = MGENet(resolved.model).to(device)
    if resolved.model.centre_scene:  # each training video counts once, however many clips it has
        model.scene_centre.copy_(torch.from_numpy(np.mean([v.scene for v in source.videos if v.n], axis=0)))
    precision, scaler = functools.partial(autocast, device, tc.amp), grad_scaler(device, tc.amp)
    partial = Path(f"{out_ckpt}.partial")
    phase_i, epoch0, history, opt_state = 0, 0, [], None
    if partial.exists():
        # RNG states must stay on the CPU
        ck = load_torch(partial, "partial stage-2 checkpoint", keys=("config", "state_dict", "phase", "epoch"),
                        fix="delete it to start training from the first epoch")
        if ck["config"] != config:
            raise MgenetError(f"{partial} was written with another stage-2 config; delete it to start over, or "
                              f"restore the settings it was made with.")
        model.load_state_dict(ck["state_dict"])
        phase_i, epoch0, history, opt_state = ck["phase"], ck["epoch"], ck["history"], ck["optimizer"]
        if scaler and ck["scaler"]:
            scaler.load_state_dict(ck["scaler"])
        _set_rng_state(ck["rng"])
        log(f"resuming from {partial}: {PHASES[phase_i]} after epoch {epoch0}")
    n_epochs = {"level1": tc.level1_epochs, "level2": tc.level2_epochs, "matching": tc.matching_epochs}
    total = sum(n_epochs.values())
    ran = 0
    for pi in range(phase_i, len(PHASES)):
        phase = PHASES[pi]
        start = epoch0 if pi == phase_i else 0
        if phase == "matching" and start == 0 and resolved.model.matching_init == "kmeans":
            _set_phase(model, phase)
            n_q = init_matching(model, source, tc.seed, tc.batch_size, device, precision)
            log(f"matching memory: {resolved.model.n_matching} items started at k-means++ centres of {n_q} training "
                f"queries W^r")
        if start >= n_epochs[phase]:
            continue
        params = _set_phase(model, phase)
        opt = _optimizer(params, tc) if params else None
        if opt is not None and pi == phase_i and start > 0 and opt_state is not None:
            opt.load_state_dict(opt_state)
        for epoch in range(start, n_epochs[phase]):
            row = _run_epoch(model, source, phase, (tc.seed, pi, epoch), tc, device, opt, precision, scaler, params)
            row["items_written"] = model.items_written()
            history.append(row)
            terms = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k.startswith("l"))
            log(f"{phase} epoch {epoch + 1}/{n_epochs[phase]}: {terms}; {len(source)} clips in {row['seconds']:.1f} s "
                f"({row['clips_per_s']:.0f}/s); memory items ever written: {_written(model)}")
            ckpt = {"config": config, "state_dict": _cpu_state(model), "history": history, "phase": pi,
                    "epoch": epoch + 1, "optimizer": opt.state_dict() if opt else None,
                    "scaler": scaler.state_dict() if scaler else None, "rng": _rng_state()}
            save_torch(ckpt, partial)
            ran += 1
            if stop_after is not None and ran >= stop_after and len(history) < total:
                log(f"stopping after {ran} epoch(s) as asked; rerun to resume from {partial}")
                return history
    final = {"config": config, "state_dict": _cpu_state(model), "history": history,
             "items_written": model.items_written(),
             "provenance": provenance(stage="train_stage2", n_videos=len(source.videos), n_clips=len(source),
                                      **(attrs or {}))}
    log(f"memory items ever written: {_written(model)} (matching memory started {resolved.model.matching_init})")
    save_torch(final, out_ckpt)
    partial.unlink(missing_ok=True)
    return history


def rewrite_matching(ckpt: PathLike, train_pairs: Sequence[Pair], out_ckpt: PathLike, seed: int,
                     device: str | torch.device = "auto", log: Callable[[str], None] = print) -> None:
    """Write the matching memory M^r of a trained model again, from the random start and clip order of ``seed``.

    M^r is written once, after both levels, starting from random items (the paper's final-round update) or from
    k-means++ centres of training queries (``matching_init: kmeans``, its sample and seeding drawn from ``seed``):
    which items come to hold which behaviour-scene pairs depends on that start and on the order the clips arrive
    in. Every other
    weight is kept, so S_mo and S_app stay as they were and only S_mm changes. With ``seed`` = the training seed
    this redoes the checkpoint's M^r (the items are drawn as ``train_stage2`` draws them and the clips come in the
    same order; on a CPU the result is bit for bit the same, on a GPU the write's scatter-add may differ in the last
    bits); other seeds show how much S_mm depends on the start (``snakemake matching_seeds``).

    Args:
        ckpt: a final checkpoint of ``train_stage2``.
        train_pairs: the training videos' (features file, flow file), as given to ``train_stage2``.
        out_ckpt: the checkpoint to write: ``ckpt`` with the new M^r and ``matching_seed`` recorded.
        seed: seed of the items' random start and of the clip order of the matching passes.
        device: where to run the encoders.
        log: receives one line per matching pass.

    Raises:
        MgenetError: a missing checkpoint, no training clip, or clips that do not fit the model.
    """
    device = as_device(device)
    model, ck = load_stage2(ckpt, device)
    tc = Stage2TrainConfig.from_dict(ck["config"]["train"])
    source = ClipSource(train_pairs, tc.block_rows, tc.buffer_blocks)
    if not len(source):
        raise MgenetError(f"no training clips in the {len(train_pairs)} features file(s) given; give the training "
                          f"videos' features, as for train-stage2.")
    resolve_model_config(model.cfg, source.shape, str(train_pairs[0][0]))
    seed_everything(seed)  # the model is built as train_stage2 builds it, so its items are that run's start
    model.matching_memory.start_from(MGENet(model.cfg).matching_memory.items)
    _set_phase(model, "matching")
    precision = functools.partial(autocast, device, tc.amp)
    if model.cfg.matching_init == "kmeans":
        n_q = init_matching(model, source, seed, tc.batch_size, device, precision)
        log(f"matching memory (seed {seed}): items started at k-means++ centres of {n_q} training queries W^r")
    history = [r for r in ck["history"] if r["phase"] != "matching"]
    for epoch in range(tc.matching_epochs):
        row = _run_epoch(model, source, "matching", (seed, PHASES.index("matching"), epoch), tc, device, None,
                         precision, None, [])
        row["items_written"] = model.items_written()
        history.append(row)
        log(f"matching pass {epoch + 1}/{tc.matching_epochs} (seed {seed}): l_sep_r {row['l_sep_r']:.4g}; "
            f"{len(source)} clips in {row['seconds']:.1f} s; M^r items ever written "
            f"{row['items_written']['matching']}/{model.cfg.n_matching}")
    trained = ck.get("provenance", {})
    out = {"config": ck["config"], "state_dict": _cpu_state(model), "history": history,
           "items_written": model.items_written(),
           "provenance": {**provenance(config_hash=trained.get("config_hash", ""), stage="rewrite_matching",
                                       matching_seed=seed, n_clips=len(source)),
                          "trained": dict(trained), "rewritten_from": str(ckpt),
                          "rewritten_from_sha256": sha256_file(ckpt)}}
    save_torch(out, out_ckpt)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def load_stage2(path: PathLike, device: str | torch.device = "cpu") -> tuple[MGENet, dict[str, Any]]:
    """Rebuild the model from a final checkpoint, in eval mode on ``device``; returns it and the checkpoint."""
    device = as_device(device)
    ck = load_torch(path, "stage-2 checkpoint", map_location=device, keys=("config", "state_dict"))
    model = MGENet(MGENetConfig.from_dict(ck["config"]["model"]))
    state = dict(ck["state_dict"])
    state.setdefault("scene_centre", torch.zeros_like(model.scene_centre))  # checkpoints from before centring
    for name in ("behaviour_memory", "scene_memory", "matching_memory"):  # from before the writes were counted: 0
        state.setdefault(f"{name}.writes", torch.zeros_like(getattr(model, name).writes))
    model.load_state_dict(state)
    return model.to(device).eval(), ck


# ------------------------------------------------------------------------------------------------------- scoring


@torch.no_grad()
def score_stage2(ckpt: PathLike, test_pairs: Sequence[Pair], batch_size: int = 256,
                 device: str | torch.device = "auto", only_mm: bool = False,
                 mm_form: str = "two_sided") -> pd.DataFrame:
    """Score every test segment with the stage-2 model.

    S_app's two complementary masks of a clip are seeded by (training seed, video, row), so a clip's scores do not
    depend on the batch size or on the other videos.

    Args:
        ckpt: the checkpoint of ``train_stage2``.
        test_pairs: (features file, flow file) per test video.
        batch_size: clips per forward pass (also rows per HDF5 read).
        device: where to run the model.
        only_mm: compute S_mm alone (no mask-encoder passes), e.g. for a model whose matching memory alone was
            written again (``rewrite_matching``).
        mm_form: S_mm's form: ``two_sided`` (Eq. 15) or ``one_sided`` (see ``mgenet.models.memory``); a scoring-time
            setting, the model is the same.

    Returns:
        One row per segment, in file order: video, person_id, start_frame, mid_frame, ``mo``, ``app``, ``mm``
        (Eq. 13-15, higher = more anomalous) and Table 3's level-1 measurements ``mo_fsk``, ``mo_frgb``,
        ``mo_sum``, ``mo_sim`` (see ``mgenet.models.mgenet.LEVEL1_VARIANTS``; ``mo`` is f_sk - f_rgb). With
        ``only_mm``: the keys and ``mm``.
    """
    if mm_form not in MM_FORMS:
        raise MgenetError(f"stage2.mm_form {mm_form!r} is not one of {list(MM_FORMS)}.")
    device = as_device(device)
    model, ck = load_stage2(ckpt, device)
    cfg = model.cfg
    source = ClipSource(test_pairs, block_rows=batch_size, buffer_blocks=1)
    if len(source):
        resolve_model_config(cfg, source.shape, str(test_pairs[0][0]))  # the test clips must fit the model
    precision = functools.partial(autocast, device, bool(ck["config"]["train"]["amp"]))
    seed = int(ck["config"]["train"]["seed"])
    names = [v.name for v in source.videos]
    columns = KEY_COLUMNS + ["mm"] if only_mm else SCORE_COLUMNS
    parts: list[pd.DataFrame] = []
    for batch in source.batches(batch_size):
        tokens, f_sk, scene = batch.to(device)
        videos = [names[i] for i in batch.video]
        with precision():
            if only_mm:
                s = {"mm": model.matching_score(tokens, scene, mm_form)}
            else:
                m1, m2 = clip_mask_pairs(seed, videos, batch.row, cfg.h, cfg.w, cfg.mask)
                s = model.scores(tokens, f_sk, scene, keep_indices(m1, cfg.t).to(device),
                                 keep_indices(m2, cfg.t).to(device), mm_form)
        parts.append(pd.DataFrame({"video": np.array(videos, dtype=object), "person_id": batch.person_id,
                                   "start_frame": batch.start_frame, "mid_frame": batch.mid_frame,
                                   **{k: s[k].double().cpu().numpy() for k in columns[4:]}}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "video" else np.int64 if c in KEY_COLUMNS
                                          else np.float64) for c in columns})
    return pd.concat(parts, ignore_index=True)[columns]
