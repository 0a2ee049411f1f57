"""Per-segment component scores of the test set (S_nf now; stage 2 adds S_mo, S_app, S_mm)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd

from mgenet import MgenetError

KEY_COLUMNS = ["video", "person_id", "start_frame", "mid_frame"]


def segment_table(flow_h5: str | os.PathLike) -> pd.DataFrame:
    """One row per test person-window: keys and ``nf`` = the flow's NLL (higher = more anomalous)."""
    if not os.path.exists(flow_h5):
        raise MgenetError(f"{flow_h5}: flow scores not found; they are made by rule encode_flow.")
    parts = []
    with h5py.File(flow_h5, "r") as f:
        for video in sorted(f):
            g = f[video]
            n = g["nll"].shape[0]
            parts.append(pd.DataFrame({
                "video": np.full(n, video, dtype=object),
                "person_id": g["person_id"][()].astype(np.int64),
                "start_frame": g["start_frame"][()].astype(np.int64),
                "mid_frame": g["mid_frame"][()].astype(np.int64),
                "nf": g["nll"][()].astype(np.float64),
            }))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(KEY_COLUMNS + ["nf"], [object, np.int64, np.int64, np.int64, np.float64])})
    return pd.concat(parts, ignore_index=True)
