"""Per-segment component scores of the test set: S_nf from the flow file, joined with stage 2's S_mo, S_app, S_mm."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mgenet import MgenetError
from mgenet.io import open_flow

KEY_COLUMNS = ["video", "person_id", "start_frame", "mid_frame"]


def segment_table(flow_h5: str | os.PathLike) -> pd.DataFrame:
    """One row per test person-window: keys and ``nf`` = the flow's NLL (higher = more anomalous)."""
    parts = []
    with open_flow(flow_h5, "flow scores") as f:
        for video in f.videos():
            nll, keys = f.nll(video), f.keys(video)
            parts.append(pd.DataFrame({
                "video": np.full(len(nll), video, dtype=object),
                **{k: keys[k].astype(np.int64) for k in ("person_id", "start_frame", "mid_frame")},
                "nf": nll.astype(np.float64),
            }))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(KEY_COLUMNS + ["nf"], [object, np.int64, np.int64, np.int64, np.float64])})
    return pd.concat(parts, ignore_index=True)


JOIN_KEYS = ["video", "person_id", "start_frame"]


def join_stage2(nf: pd.DataFrame, stage2: pd.DataFrame) -> pd.DataFrame:
    """Add stage 2's score columns to the S_nf table, one-to-one on (video, person_id, start_frame).

    Both tables come from the same segments files (the flow file's rows and the features files' rows), so every
    segment must appear in both exactly once; anything else means one of them is stale.

    Args:
        nf: :func:`segment_table` of the test split.
        stage2: ``mgenet.engine.stage2.score_stage2`` of the test videos' features.

    Returns:
        ``nf``'s rows in its order, with every non-key column of ``stage2`` added (mo, app, mm and the level-1
        variants).

    Raises:
        MgenetError: duplicate keys, segments present in one table only, or a mid_frame that differs.
    """
    for name, df in (("flow", nf), ("stage 2", stage2)):
        dup = df.duplicated(JOIN_KEYS)
        if dup.any():
            r = df.loc[dup].iloc[0]
            raise MgenetError(f"{name} scores hold segment (video {r.video!r}, person {r.person_id}, start "
                              f"{r.start_frame}) more than once; rebuild its segments.")
    both = nf[JOIN_KEYS].merge(stage2[JOIN_KEYS], on=JOIN_KEYS, how="outer", indicator=True)
    for side, where in (("left_only", "the stage-2 scores (features)"), ("right_only", "the flow latents")):
        lonely = both[both["_merge"] == side]
        if len(lonely):
            videos = sorted(lonely["video"].astype(str).unique())[:5]
            raise MgenetError(f"{len(lonely)} test segment(s) of video(s) {videos} are missing from {where}: the "
                              f"flow file and the features files were made from different segments, or a test "
                              f"video's features were not given. Rerun encode_flow and extract_features.")
    out = nf.merge(stage2.rename(columns={"mid_frame": "_mid_frame"}), on=JOIN_KEYS, how="left", sort=False)
    if not np.array_equal(out["mid_frame"].to_numpy(np.int64), out["_mid_frame"].to_numpy(np.int64)):
        raise MgenetError("flow and stage-2 scores disagree on a segment's mid_frame; rebuild both from the same "
                          "segments files.")
    return out[[*nf.columns, *[c for c in stage2.columns if c not in KEY_COLUMNS]]]
