"""What every engine shares at run time: the device (``device: auto`` -> cuda if available), seeding of torch, numpy
and ``random`` (DataLoader workers too), and mixed precision (autocast, GradScaler)."""

from __future__ import annotations

import functools
import logging
import random

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
