"""What every engine shares at run time: the device (``device: auto`` -> cuda if available), seeding of torch, numpy
and ``random`` (DataLoader workers too), and mixed precision (autocast, GradScaler)."""

from __future__ import annotations

import functools
import logging
import random
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch

from mgenet import MgenetError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available, else cpu (said once, at info level); an explicit cuda device without CUDA is
    an error naming the setting and the fix."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        _say_auto_is_cpu()
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        why = "a CPU-only build" if torch.version.cuda is None else "no GPU visible: did the job ask for one?"
        raise MgenetError(f"device: {name} asks for a CUDA GPU, but torch {torch.__version__} has none here ({why}); "
                          f"set device: auto (the GPU when there is one, else the CPU) or device: cpu in the config.")
    return device


def as_device(device: str | torch.device) -> torch.device:
    """A device given by name (resolved as :func:`resolve_device` does) or already resolved."""
    return resolve_device(device) if isinstance(device, str) else device


@functools.cache
def _say_auto_is_cpu() -> None:
    logging.getLogger("mgenet").info("device: auto -> cpu (torch %s sees no CUDA GPU)", torch.__version__)


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy and ``random``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """A DataLoader worker's ``worker_init_fn``: numpy and ``random`` seeded from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# -------------------------------------------------------------------------------------------- mixed precision

AMP_MODES = ("auto", "bf16", "fp16", "off")


def amp_dtype(device: torch.device, amp: str | bool) -> torch.dtype | None:
    """The autocast dtype of a setting on ``device``, or None for full precision.

    Args:
        amp: one of :data:`AMP_MODES`, or a bool (True = ``auto``, False = ``off``). ``auto`` is bfloat16 where the
            GPU supports it, else float16. Autocast is CUDA only: the CPU always runs in float32, so CPU results do
            not depend on the setting.
    """
    mode = ("auto" if amp else "off") if isinstance(amp, bool) else amp
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return torch.bfloat16 if mode == "bf16" else torch.float16


def autocast(device: torch.device, amp: str | bool) -> AbstractContextManager:
    """A context of mixed precision as :func:`amp_dtype` chooses it; a no-op where that is full precision."""
    dtype = amp_dtype(device, amp)
    return nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def grad_scaler(device: torch.device, amp: str | bool) -> torch.amp.GradScaler | None:
    """The loss scaler that training under :func:`autocast` needs: float16 only (bfloat16 has float32's range)."""
    return torch.amp.GradScaler("cuda") if amp_dtype(device, amp) == torch.float16 else None


def autocast_off(x: torch.Tensor) -> torch.autocast:
    """A region where autocast is off for ``x``'s device, so code that needs float32 keeps it under AMP."""
    return torch.autocast(x.device.type, enabled=False)
