"""Import checkpoints of the official STG-NF code (Hirschorn & Avidan, ICCV 2023) into this project's flow.

STG-NF saves ``{"epoch", "state_dict", "optimizer", "args"}`` with ``args`` an ``argparse.Namespace``. The file is
read with ``torch.load(weights_only=True)`` with ``argparse.Namespace`` as the only type allowed beyond weights
(never ``weights_only=False``: a checkpoint is code that runs at load time otherwise). The architecture is read from
the state dict itself (its shapes say K, T, R, the kernel and the widths) and checked against ``args``; every key is
mapped by name onto :class:`mgenet.models.flow.STGNF`, and a file with a key left over on either side is refused
with the list, never loaded half.

Key layout of STG-NF (``models/STG_NF/model_pose.py``, ``stgcn.py``), per flow step k and coupling block b::

    flow.layers.k.actnorm.{bias,logs}
    flow.layers.k.block.b.gcn.conv.{weight,bias}          graph conv (1x1 conv, summed over the adjacency)
    flow.layers.k.block.b.tcn.{0,3}.*                     BatchNorm (running statistics are used in scoring)
    flow.layers.k.block.b.tcn.2.{weight,bias}             temporal conv
    flow.layers.k.block.b.residual.{0,1}.*                residual conv + BatchNorm, steps k >= 1
    flow.layers.k.edge_importance.b                       only with --edge_importance
    flow.layers.k.invconv.{lower,upper,log_s,p,sign_s}    only with flow_permutation invconv (LU form)
    prior_h, prior_h_normal, prior_h_abnormal             prior means: 0, R and -R on the first C channels
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from mgenet import MgenetError
from mgenet.models.flow import STGNF, FlowConfig

PathLike = str | os.PathLike

_STEP = r"flow\.layers\.(\d+)\."
_RULES: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(_STEP + r"actnorm\.(bias|logs)$"), "steps.{0}.actnorm.{1}"),
    (re.compile(_STEP + r"block\.(\d+)\.gcn\.conv\.(weight|bias)$"), "steps.{0}.coupling.blocks.{1}.gcn.{2}"),
    (re.compile(_STEP + r"block\.(\d+)\.(tcn|residual)\.(\d+)\.(\w+)$"), "steps.{0}.coupling.blocks.{1}.{2}.{3}.{4}"),
    (re.compile(_STEP + r"edge_importance\.(\d+)$"), "steps.{0}.coupling.blocks.{1}.edge_importance"),
)
_INVCONV = re.compile(_STEP + r"invconv\.(lower|upper|log_s|p|sign_s|weight)$")
_PRIORS = ("prior_h", "prior_h_normal", "prior_h_abnormal")


def read_stgnf(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any], int | None]:
    """The state dict, the training arguments (a plain dict) and the epoch of an STG-NF checkpoint.

    Raises:
        MgenetError: the file is missing, is not a torch file, holds types other than weights and
            ``argparse.Namespace``, or has no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise MgenetError(f"{path}: STG-NF checkpoint not found; give the path of a checkpoint saved by the official "
                          f"STG-NF code (e.g. checkpoints/ShanghaiTech_85_9.tar of its repository).")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a text file, a 3-byte file, any foreign bytes: torch's errors vary
        known = isinstance(e, (pickle.UnpicklingError, RuntimeError, OSError)) and str(e).strip()
        first = str(e).strip().splitlines()[0][:200] if known else "not a PyTorch file, or cut short"
        raise MgenetError(f"{path}: not readable as an STG-NF checkpoint with torch.load(weights_only=True), which "
                          f"allows weights and argparse.Namespace only ({first}). Give a checkpoint saved by the "
                          f"official STG-NF code, not a file of another kind.") from None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if isinstance(ckpt, dict) and {"model_config", "train_config", "state_dict"} <= set(ckpt):
        raise MgenetError(f"{path}: an mgenet flow checkpoint (train_flow's flow.pt), not an STG-NF one: it needs no "
                          f"import; copy it to results/<dataset>/models/flow.pt, or set flow.checkpoint to it (rule "
                          f"train_flow takes either kind).")
    if isinstance(state, dict) and not state:
        raise MgenetError(f"{path}: its 'state_dict' is empty (no weights); the file was saved before the model, or "
                          f"cut down; give the checkpoint saved by the official STG-NF code.")
    if not isinstance(state, dict):
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise MgenetError(f"{path}: no 'state_dict' in this file (it holds {found}); an STG-NF checkpoint is a dict "
                          f"with epoch, state_dict, optimizer and args.")
    args = ckpt.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    epoch = ckpt.get("epoch")
    return state, args, int(epoch) if isinstance(epoch, int) else None


def _arg(args: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` that STG-NF's args hold (its argument names changed between versions)."""
    for n in names:
        if args.get(n) is not None:
            return args[n]
    return None


def stgnf_config(state: dict[str, torch.Tensor], args: dict[str, Any], path: PathLike = "") -> FlowConfig:
    """The flow configuration an STG-NF state dict was trained with, read from its shapes and checked against
    its args.

    Raises:
        MgenetError: a setting this project's flow does not have (multi-level flows, a learned prior, a random
            channel shuffle, a partial graph, a headless skeleton), or shapes that contradict the args.
    """
    where = f"{path}: " if path else ""
    if any(k.startswith("learn_top_fn") for k in state):
        raise MgenetError(f"{where}a learned prior (learn_top) has no counterpart in mgenet's flow; it cannot be "
                          f"imported.")
    missing = [k for k in _PRIORS if k not in state]
    if missing:
        raise MgenetError(f"{where}no {', '.join(missing)} in the state dict: not an STG-NF checkpoint.")
    prior = state["prior_h"]
    if prior.dim() != 4 or prior.shape[1] != 4:
        raise MgenetError(f"{where}prior_h has shape {tuple(prior.shape)}; mgenet's flow takes 2 coordinates per "
                          f"joint (STG-NF without --model_confidence), i.e. (1, 4, T, V).")
    _, _, seg_len, joints = prior.shape
    if joints != 18:
        raise MgenetError(f"{where}the flow was trained on {joints} joints; mgenet's takes the 18-joint skeleton "
                          f"(STG-NF without --headless).")
    normal = state["prior_h_normal"]
    R = float(normal[0].flatten()[0])
    if not (torch.allclose(normal[:2], torch.full_like(normal[:2], R)) and not normal[2:].any()
            and not prior.any() and torch.allclose(state["prior_h_abnormal"][:2], torch.full_like(normal[:2], -R))):
        raise MgenetError(f"{where}prior buffers are not STG-NF's (0 for prior_h, R and -R on the mean half of "
                          f"prior_h_normal / prior_h_abnormal, 0 on the log-scale half).")
    steps = sorted({int(m.group(1)) for k in state if (m := re.match(_STEP, k))})
    if steps != list(range(len(steps))) or not steps:
        raise MgenetError(f"{where}flow steps {steps} are not numbered 0..K-1.")
    if any(f"flow.layers.{k}.actnorm.bias" not in state for k in steps):
        raise MgenetError(f"{where}a flow layer without actnorm (a squeeze or split of a multi-level flow, L > 1): "
                          f"mgenet's flow has one level (STG-NF's default L = 1).")
    blocks = sorted({int(m.group(2)) for k in state if (m := re.match(_STEP + r"block\.(\d+)\.", k))})
    if blocks not in ([0], [0, 1]):
        raise MgenetError(f"{where}coupling blocks {blocks} per step; STG-NF builds one (hidden_dim 0) or two.")
    gcn = state["flow.layers.0.block.0.gcn.conv.weight"]  # (width * K_A, 1, 1, 1)
    out_first = state["flow.layers.0.block.0.tcn.2.weight"].shape[0]
    subsets = gcn.shape[0] // out_first
    if subsets != 1:
        raise MgenetError(f"{where}the graph conv has {subsets} adjacency subsets; only STG-NF's uniform graph (one "
                          f"subset) maps onto mgenet's.")
    strategy = _arg(args, "adj_strategy", "strategy") or "uniform"
    hops = _arg(args, "max_hops", "max_hop")
    if strategy != "uniform" or (hops is not None and int(hops) < 8):
        raise MgenetError(f"{where}trained with graph strategy {strategy!r}, max_hops {hops}; mgenet imports the "
                          f"uniform graph with max_hops >= 8 (every joint averages over the body, STG-NF's default), "
                          f"where both skeleton graphs give the same adjacency.")
    perm = str(_arg(args, "flow_permutation") or "permute")
    has_invconv = any(_INVCONV.match(k) for k in state)
    if perm == "shuffle":
        raise MgenetError(f"{where}trained with flow_permutation shuffle, whose random channel order STG-NF does "
                          f"not save; it cannot be imported.")
    hidden = 0 if blocks == [0] else out_first
    cfg = FlowConfig(seg_len=seg_len, n_flows=len(steps), hidden_channels=hidden,
                     temporal_kernel=int(state["flow.layers.0.block.0.tcn.2.weight"].shape[2]), coupling="stgcn",
                     edge_importance=any(".edge_importance." in k for k in state),
                     permutation="invconv" if has_invconv else "reverse", graph_strategy="uniform", max_hop=8,
                     prior_mean=R)
    for name, want in (("seg_len", seg_len), ("K", len(steps)), ("R", R)):
        got = args.get(name)
        if got is not None and float(got) != float(want):
            raise MgenetError(f"{where}its args say {name} = {got} but its weights have {want}.")
    return cfg


def _invconv_weight(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """W of STG-NF's 1x1 conv, plain or in its LU form W = P L (U + diag(sign_s * exp(log_s)))."""
    if "weight" in parts:
        return parts["weight"].reshape(parts["weight"].shape[:2])
    c = parts["lower"].shape[0]
    lower = torch.tril(parts["lower"], -1) + torch.eye(c)
    upper = torch.triu(parts["upper"], 1) + torch.diag(parts["sign_s"] * torch.exp(parts["log_s"]))
    return parts["p"] @ lower @ upper


def import_stgnf(path: PathLike, seg_len: int | None = None) -> tuple[STGNF, dict[str, Any]]:
    """The official STG-NF checkpoint at ``path`` as this project's flow (eval mode, so BatchNorm uses its running
    statistics).

    Args:
        path: the checkpoint (``.tar`` / ``.pth.tar``) saved by STG-NF's trainer.
        seg_len: if given, the segment length the pipeline cuts; a checkpoint trained on another is refused.

    Returns:
        The model and a summary: ``source`` (path), ``epoch``, ``args`` (STG-NF's scalar args), ``n_keys``.

    Raises:
        MgenetError: unreadable file, an architecture mgenet's flow does not have, or keys that do not map (listed).
    """
    state, args, epoch = read_stgnf(path)
    cfg = stgnf_config(state, args, path)
    if seg_len is not None and seg_len != cfg.seg_len:
        raise MgenetError(f"{path}: the STG-NF checkpoint was trained on windows of {cfg.seg_len} frames, but "
                          f"segments.seg_len is {seg_len}; set segments.seg_len: {cfg.seg_len} (ShanghaiTech 24, "
                          f"UBnormal 16).")
    model = STGNF(cfg)
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    invconv: dict[int, dict[str, torch.Tensor]] = {}
    unmatched: list[str] = []
    for key, value in state.items():
        if key in _PRIORS:
            continue  # read into cfg.prior_mean
        if m := _INVCONV.match(key):
            invconv.setdefault(int(m.group(1)), {})[m.group(2)] = value
            continue
        for pattern, template in _RULES:
            if m := pattern.match(key):
                if key.split(".")[-2] == "edge_importance":
                    # STG-NF indexes the adjacency [subset, sending, receiving]; mgenet's rows are the receiving joint
                    value = value.transpose(-1, -2)
                mapped[template.format(*m.groups())] = value
                break
        else:
            unmatched.append(key)
    for k, parts in invconv.items():
        mapped[f"steps.{k}.mix.weight"] = _invconv_weight(parts)
    bad_shape = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in mapped.items()
                 if k in target and v.shape != target[k].shape]
    unmatched += [k for k in mapped if k not in target]
    # what STG-NF does not save: the adjacency (rebuilt from the config) and ActNorm's initialised flag
    unfilled = [k for k in target if k not in mapped and not k.endswith((".A", ".initialized"))]
    if unmatched or bad_shape or unfilled:
        lines = ([f"keys of the file that map to nothing in mgenet's flow: {sorted(unmatched)}"] if unmatched else [])
        lines += [f"shape mismatches: {bad_shape}"] if bad_shape else []
        lines += [f"mgenet flow keys the file does not fill: {unfilled}"] if unfilled else []
        raise MgenetError(f"{path}: cannot map this checkpoint onto mgenet's flow ({'; '.join(lines)}).")
    for k, v in mapped.items():
        target[k] = v.to(target[k].dtype)
    for k in target:
        if k.endswith(".initialized"):
            target[k] = torch.tensor(True)
    model.load_state_dict(target)
    plain = {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool)) or v is None}
    return model.eval(), {"source": str(path), "epoch": epoch, "args": plain, "n_keys": len(state)}
