"""Named evaluation protocols of the literature: the test split with some videos left out, scored as the top level of
metrics.json is (``protocols`` in metrics.json, one entry per protocol that applies).

A protocol is one entry of :data:`PROTOCOLS`. Definitions looked for in public code (issue 26):

- ``shanghaitech_hr``: STG-NF's ``--dataset ShanghaiTech-HR``, the human-related ShanghaiTech of Morais et al. (CVPR
  2019): the test set without the six videos whose anomalies involve no person (``SHANGHAITECH_HR_SKIP`` in
  orhir/STG-NF ``dataset.py``, applied by its ``utils/scoring_utils.py``).
- HR-Avenue is not a list of videos: MoCoDAD (aleflabo/MoCoDAD ``utils/eval_utils.py``, ``get_avenue_mask``) masks
  frame ranges inside Avenue test clips 01, 02, 03, 06 and 16, and there is no Avenue layout here. HR-UBnormal's
  frames come from mask files shipped with MoCoDAD's data (``hr_bool_masks/``), not from code. Neither is an entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Protocol:
    """A named protocol: which datasets it applies to, which test videos it leaves out, and where it comes from."""

    name: str  # its key under metrics.json `protocols`
    title: str  # as the report shows it
    layouts: tuple[str, ...]  # dataset.layout values it applies to
    leaves_out: tuple[str, ...]  # test videos, SS_CCCC (matched by scene and clip number, as STG-NF does)
    source: str

    def left_out(self, videos: list[str]) -> list[str]:
        """The videos of ``videos`` this protocol leaves out (sorted)."""
        keys = {_scene_clip(v) for v in self.leaves_out}
        return sorted(v for v in videos if _scene_clip(v) in keys)


def _scene_clip(video: str) -> tuple[int, int] | str:
    m = re.fullmatch(r"(\d+)_(\d+)", str(video))
    return (int(m.group(1)), int(m.group(2))) if m else str(video)


PROTOCOLS: tuple[Protocol, ...] = (
    Protocol(
        name="shanghaitech_hr",
        title="ShanghaiTech-HR (human-related)",
        layouts=("stgnf",),
        leaves_out=("01_0130", "01_0135", "01_0136", "06_0144", "06_0145", "12_0152"),
        source="STG-NF (github.com/orhir/STG-NF, dataset.py SHANGHAITECH_HR_SKIP, --dataset ShanghaiTech-HR); "
               "HR-ShanghaiTech of Morais et al., CVPR 2019",
    ),
)


def applicable(layout: str, videos: list[str]) -> list[Protocol]:
    """The protocols for a dataset of ``layout`` whose test videos are ``videos``: those of the layout that leave
    out at least one of them (a protocol that leaves out nothing would only repeat the top level)."""
    return [p for p in PROTOCOLS if layout in p.layouts and p.left_out(videos)]


def protocol_metrics(frames: pd.DataFrame, layout: str, dataset: str, bootstrap: int = 0, seed: int = 0) -> dict:
    """``metrics.json`` ``protocols``: for each applicable protocol, the top level's figures
    (:func:`mgenet.evaluation.metrics.compute_metrics`) on the test frames of the videos it keeps, plus
    ``left_out`` (the videos it left out) and ``source``. Empty when none applies.

    Args:
        frames: the frame score table of the test split, without weakly supervised columns (as the top level).
    """
    from mgenet.evaluation.metrics import compute_metrics

    names = frames["video"].astype(str)
    out = {}
    for p in applicable(layout, sorted(names.unique())):
        dropped = p.left_out(sorted(names.unique()))
        sub = frames[~names.isin(dropped)].reset_index(drop=True)
        if sub.empty:
            continue
        out[p.name] = {**compute_metrics(sub, dataset, bootstrap, seed), "title": p.title, "left_out": dropped,
                       "source": p.source}
    return out
