"""Stage 2's file-level jobs, as `mgenet train-stage2 / rewrite-matching` run them."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from mgenet import MgenetError, __version__
from mgenet.config import FromDict

if TYPE_CHECKING:
    from mgenet.engine.stage2 import Stage2Config

log = logging.getLogger("mgenet")


@dataclass
class Stage2Settings(FromDict):
    """``stage2_params``: the stage2 section's model and train, the global seed and device. The section's keys that do
    not shape training ride along when a caller sends the whole section, and are left out of the config hash."""

    SECTION: ClassVar[str] = "stage-2"
    IGNORED: ClassVar[tuple[str, ...]] = ("enabled", "score_batch_size", "mm_form")

    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"

    def hashed(self, params: dict) -> dict:
        """The part of ``params`` (as sent) that the checkpoint's config hash covers: all but :attr:`IGNORED`."""
        return {k: v for k, v in params.items() if k not in self.IGNORED}

    def config(self) -> Stage2Config:
        """The engine's Stage2Config: model and train, the seed and device into train."""
        from mgenet.engine.stage2 import Stage2Config

        try:
            return Stage2Config.from_dict({"model": self.model or {},
                                           "train": {**(self.train or {}), "seed": int(self.seed),
                                                     "device": self.device}})
        except (TypeError, ValueError) as e:
            raise MgenetError(f"--params: bad stage-2 setting: {e}") from e


def train_stage2_job(features: list[str], flow: str, out: str | os.PathLike, s: Stage2Settings,
                     config_hash: str = "", stop_after: int | None = None) -> None:
    """Train stage 2 on the training videos' ``features`` files and their ``flow`` latents (one flow file, a group
    per video), resuming from ``<out>.partial``; the checkpoint records how the features were made, so that a new
    video's are made alike."""
    from mgenet.engine.stage2 import train_stage2
    from mgenet.features.extract import feature_training_settings

    cfg = s.config()
    pairs = [(f, flow) for f in features]  # the engine finds each video's group in the flow file
    t0 = time.time()
    made_with = feature_training_settings([f for f in features if Path(f).exists()])  # the engine names missing files
    history = train_stage2(pairs, cfg, out, log=log.info, stop_after=stop_after,
                           attrs={"config_hash": config_hash, "mgenet_version": __version__, "features": made_with})
    if not Path(out).exists():
        log.info("stopped after %d epoch(s) in %.1f s; rerun the same command to resume from %s.partial",
                 len(history), time.time() - t0, out)
        return
    log.info("stage-2 checkpoint (%d epochs, %d training videos) -> %s in %.1f s", len(history), len(pairs),
             out, time.time() - t0)


def rewrite_matching_job(model: str, features: list[str], flow: str, out: str | os.PathLike, seed: int,
                         device: str = "auto") -> None:
    """A trained model's matching memory M^r written again from another seed's random start and clip order."""
    from mgenet.engine.stage2 import rewrite_matching

    t0 = time.time()
    rewrite_matching(model, [(f, flow) for f in features], out, seed, device=device, log=log.info)
    log.info("matching memory of %s written again from seed %d -> %s in %.1f s", model, seed, out, time.time() - t0)
