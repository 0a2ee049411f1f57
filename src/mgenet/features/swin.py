"""F_B: the representation layers of Video Swin-T (patch embedding, stage 1, patch merging, stage 2).

The layers are mmaction2's own ``SwinTransformer3D`` modules (imported lazily: importing mmaction2 takes seconds),
so a Kinetics-400 checkpoint in mmaction2's recognizer format loads by name, strictly, after ``backbone.`` is
stripped. Parameter names are mmaction2's: ``patch_embed.*``, ``layers.0.*`` (stage 1 and its patch merging),
``layers.1.blocks.*`` (stage 2). Stage 2's own merging (``layers.1.downsample``), stages 3-4, the final norm and the
classification head are in the file but not used here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mgenet import MgenetError
from mgenet.io import sha256_file

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "swin_tiny_patch244_window877_kinetics400_1k.pth"
CHECKPOINT_SOURCE = (
    "the Video Swin Transformer release (https://github.com/SwinTransformer/storage/releases/download/v1.0.4/"
    f"{CHECKPOINT_NAME}, linked from github.com/SwinTransformer/Video-Swin-Transformer, Kinetics-400 Swin-T) or "
    "mmaction2's model zoo (configs/recognition/swin, the swin-tiny-p244-w877 Kinetics-400 file)"
)
BACKBONE_NAME = "mmaction2 SwinTransformer3D swin-tiny p244 w877: patch_embed + stage 1 + patch merging + stage 2"
# stage-1/2 parameters live under these prefixes of the backbone's state dict; stage 2's merging belongs to stage 3
USED_PREFIXES = ("patch_embed.", "layers.0.", "layers.1.")
UNUSED_PREFIXES = ("layers.1.downsample.",)


@dataclass(frozen=True)
class SwinConfig:
    """Video Swin-T, as the K400 checkpoint was trained (mmaction2 ``arch='tiny'``, first two stages)."""

    embed_dims: int = 96
    depths: tuple[int, int] = (2, 2)
    num_heads: tuple[int, int] = (3, 6)
    patch_size: tuple[int, int, int] = (2, 4, 4)
    window_size: tuple[int, int, int] = (8, 7, 7)

    @property
    def out_dims(self) -> int:
        return 2 * self.embed_dims  # after one patch merging

    def token_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(t, h, w, C) of the tokens of a clip of ``frames`` x ``height`` x ``width`` pixels."""
        pt, ph, pw = self.patch_size
        t, h, w = -(-frames // pt), -(-height // ph), -(-width // pw)  # patch embedding pads up
        return t, -(-h // 2), -(-w // 2), self.out_dims


class SwinStages12(nn.Module):
    """Patch embedding, stage 1 with its patch merging, and stage 2 of mmaction2's SwinTransformer3D."""

    def __init__(self, patch_embed: nn.Module, layers: nn.ModuleList, cfg: SwinConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = patch_embed
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens of a batch of normalised clips.

        Args:
            x: (B, 3, T, H, W) clips, normalised with the Kinetics-400 mean and std.
        Returns:
            (B, t, h, w, C) tokens, t = T/2, h = H/8, w = W/8, C = 192.
        """
        x = self.patch_embed(x)  # (B, 96, T/2, H/4, W/4)
        x = self.layers[0](x.contiguous(), do_downsample=True)  # (B, T/2, H/8, W/8, 192): stage 1 + merging
        x = x.permute(0, 4, 1, 2, 3)  # (B, 192, t, h, w), the layout BasicLayer takes
        return self.layers[1](x.contiguous(), do_downsample=False)  # (B, t, h, w, 192): stage 2


def _mmaction_swin() -> type:
    """mmaction2's SwinTransformer3D class (slow, noisy import: done only where the backbone is built)."""
    with warnings.catch_warnings():
        # mmcv-lite has no compiled ops; mmaction2 warns about it on import, and Swin needs none of them
        warnings.filterwarnings("ignore", message=".*mmcv-lite.*")
        warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
        try:
            from mmaction.models.backbones.swin import SwinTransformer3D
        except ImportError as e:
            raise MgenetError(f"cannot import mmaction2's SwinTransformer3D ({e}). Install the pinned versions: "
                              f"pip install --no-deps mmaction2==1.1.0 mmengine==0.10.7 mmcv-lite==2.0.1 "
                              f"(see requirements.txt).") from e
    return SwinTransformer3D


@contextlib.contextmanager
def quiet_mmengine() -> Iterator[None]:
    """Silence mmengine's INFO records (``init_weights`` logs one per initialised tensor)."""
    from mmengine.logging import MMLogger

    mm_log = MMLogger.get_current_instance()
    level = mm_log.level
    mm_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        mm_log.setLevel(level)


def build_swin_stages12(cfg: SwinConfig = SwinConfig(), seed: int | None = None) -> SwinStages12:
    """Build stages 1-2 with mmaction2's modules; ``seed`` gives mmaction2's own (seeded) random initialisation."""
    cls = _mmaction_swin()
    if seed is not None:
        torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.meshgrid.*")
        full = cls(arch={"embed_dims": cfg.embed_dims, "depths": list(cfg.depths), "num_heads": list(cfg.num_heads)},
                   pretrained=None, pretrained2d=False, patch_size=cfg.patch_size, window_size=cfg.window_size,
                   drop_path_rate=0.0, out_indices=(1,))
    if seed is not None:
        with quiet_mmengine():
            full.init_weights()  # mmaction2's init: truncated normal (std 0.02) Linear weights, unit LayerNorms
    model = SwinStages12(full.patch_embed, full.layers, cfg)
    return model.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------- checkpoints


def _numpy_safe_globals() -> list[Any]:
    """numpy types that mmcv/mmengine checkpoints pickle into ``meta`` (scalars, dtypes, small arrays).

    Files written under numpy 1.x name them ``numpy.core.multiarray.*``; numpy 2 moved them to ``numpy._core``, so both
    spellings are allow-listed.
    """
    from numpy._core import multiarray

    out: list[Any] = [np.dtype, np.ndarray, multiarray.scalar, multiarray._reconstruct]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(multiarray.scalar, f"{mod}.scalar"), (multiarray._reconstruct, f"{mod}._reconstruct")]
    out += [type(np.dtype(t)) for t in ("f8", "f4", "f2", "i8", "i4", "i2", "i1", "u1", "u8", "b1", "U1")]
    return out


def _reason(e: BaseException) -> str:
    """The informative line of a torch.load error (its weights_only message is mostly boilerplate)."""
    if isinstance(e, (KeyError, IndexError, TypeError, AttributeError)):  # the unpickler's, on a non-pickle file
        return "not a pickle file"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if "load key" in ln or "Unsupported" in ln or "zip" in ln.lower():
            return ln[:200]
    return (lines[0] if lines else type(e).__name__)[:200]


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The backbone state dict of an mmaction2 / Video Swin checkpoint, ``backbone.`` stripped.

    Loads with ``weights_only=True``. When the file's ``meta`` holds numpy objects (mmcv 1.x checkpoints such as the
    K400 release do), it retries, still ``weights_only``, with numpy's scalar and dtype types allow-listed, and logs
    that it did. Anything else in the pickle is refused.

    Raises:
        MgenetError: unreadable file, disallowed pickle content, or no Swin backbone weights in it.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if zipfile.is_zipfile(path):
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        else:  # the legacy format names only the first offending global, in the message
            unsafe = re.findall(r"GLOBAL ([\w.]+)", str(e))
        if not unsafe:
            raise MgenetError(f"{path}: not a readable PyTorch checkpoint ({_reason(e)}). Download it again "
                              f"from {CHECKPOINT_SOURCE}.") from e
        if all(g.startswith("numpy.") for g in unsafe):
            log.warning("%s: its meta holds numpy objects (%s); loading again with torch.load(weights_only=True) "
                        "and numpy's scalar/dtype types allow-listed", path, ", ".join(sorted(set(unsafe))))
            try:
                with torch.serialization.safe_globals(_numpy_safe_globals()):
                    ckpt = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as e2:
                raise MgenetError(f"{path}: cannot be read with weights_only=True even with numpy types allowed "
                                  f"({_reason(e2)}).") from e2
        else:
            raise MgenetError(
                f"{path}: the checkpoint pickles objects other than tensors and numpy values "
                f"({', '.join(unsafe)}), which weights_only loading refuses. Re-save only "
                f"its weights: python -c \"import torch; c = torch.load('{path}', weights_only=False); "
                f"torch.save({{'state_dict': c['state_dict']}}, 'clean.pth')\" (only for a file you trust).") from e
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        # a text or other non-pickle file fails inside the unpickler with any of these (KeyError: 101 for "e...")
        raise MgenetError(f"{path}: not a readable PyTorch checkpoint ({_reason(e)}). "
                          f"Download it again from {CHECKPOINT_SOURCE}.") from e
    state = ckpt
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model", "module"):
            if isinstance(ckpt.get(key), dict):
                state = ckpt[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MgenetError(f"{path}: no state dict of tensors found (looked at 'state_dict', 'model' and the top "
                          f"level).")
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        k = k.removeprefix("module.")
        if k.startswith("backbone."):
            out[k.removeprefix("backbone.")] = v
        elif not k.startswith(("cls_head.", "head.", "neck.", "data_preprocessor.")):
            out[k] = v  # a bare backbone state dict
    if not any(k.startswith("patch_embed.") for k in out):
        sample = ", ".join(list(state)[:5])
        raise MgenetError(f"{path}: not a Video Swin checkpoint: no 'backbone.patch_embed.*' weights (first keys: "
                          f"{sample}). Expected {CHECKPOINT_NAME} from {CHECKPOINT_SOURCE}.")
    return out


def load_stages12(model: SwinStages12, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load the stage-1/2 weights of a backbone state dict strictly.

    Returns:
        The names of the checkpoint's keys left unused (stages 3-4, final norm), for the log.
    Raises:
        MgenetError: naming every missing key, every unexpected stage-1/2 key and every shape mismatch.
    """
    used = {k: v for k, v in state.items() if k.startswith(USED_PREFIXES) and not k.startswith(UNUSED_PREFIXES)}
    unused = sorted(set(state) - set(used))
    own = model.state_dict()
    missing = sorted(set(own) - set(used))
    unexpected = sorted(set(used) - set(own))
    shapes = [f"{k}: checkpoint {tuple(used[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(used)) if used[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
        raise MgenetError(f"{source}: its weights do not match Video Swin-T stages 1-2 (patch 2x4x4, window 8x7x7, "
                          f"embed 96). {' | '.join(parts)}. Expected {CHECKPOINT_NAME} from {CHECKPOINT_SOURCE}.")
    model.load_state_dict(used, strict=True)
    return unused


def load_backbone(weights: str, seed: int, cfg: SwinConfig = SwinConfig()) -> tuple[SwinStages12, str]:
    """The backbone F_B with its weights, and their provenance (checkpoint sha256 or ``random:<seed>``).

    Args:
        weights: path of the K400 checkpoint, or ``random`` for mmaction2's seeded random initialisation (the demo and
            the tests: no download is possible there).
    """
    if weights == "random":
        model = build_swin_stages12(cfg, seed=seed)
        log.info("backbone: %s, random weights (seed %d) -- features carry no Kinetics-400 knowledge", BACKBONE_NAME,
                 seed)
        return model, f"random:{seed}"
    path = Path(weights)
    if not path.is_file():
        raise MgenetError(f"{path}: Video Swin checkpoint not found. Download {CHECKPOINT_NAME} from "
                          f"{CHECKPOINT_SOURCE} into resources/weights/ (see README, 'Features and weights'), or set "
                          f"features.weights: random for the demo.")
    state = read_checkpoint(path)
    model = build_swin_stages12(cfg, seed=seed)
    unused = load_stages12(model, state, str(path))
    digest = sha256_file(path)
    n_used = len(model.state_dict())
    log.info("backbone: %s; %d stage-1/2 tensors loaded strictly from %s (sha256 %s); %d unused (stages 3-4, "
             "final norm)", BACKBONE_NAME, n_used, path, digest[:12], len(unused))
    return model, digest
