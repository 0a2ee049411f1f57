"""Per-segment component scores of a split: S_nf from the flow file, joined with stage 2's S_mo, S_app, S_mm."""

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


def swap_mm(base: pd.DataFrame, stage2: pd.DataFrame) -> pd.DataFrame:
    """``base``'s segment table with S_mm (``mm``) taken from ``stage2`` (a model whose M^r was written again) and
    every other score kept, columns in ``base``'s order.

    Raises:
        MgenetError: ``base`` has no ``mm`` column to replace.
    """
    if "mm" not in base.columns:
        raise MgenetError("no S_mm column (mm) to replace; give the segment table of a stage-2 run.")
    return join_stage2(base.drop(columns="mm"), stage2)[list(base.columns)]


def score_segments(flow_h5: str | os.PathLike, out: str | os.PathLike, stage2: str = "",
                   features: list[str] | None = None, base: str = "", batch_size: int = 256, device: str = "auto",
                   mm_form: str = "two_sided") -> pd.DataFrame:
    """The segment score table of `mgenet score`, written to ``out``: S_nf from the flow file, with a ``stage2``
    checkpoint and the videos' ``features`` files also S_mo, S_app, S_mm and the level-1 measurements; with a
    ``base`` table, that table's scores but for S_mm, which the model computes alone.

    Raises:
        MgenetError: ``stage2`` without ``features`` (or the reverse), ``base`` without ``stage2``, or a base
            table without S_mm.
    """
    import logging
    import time

    from mgenet.io import read_parquet, write_parquet

    log = logging.getLogger("mgenet")
    features = list(features or [])
    if bool(stage2) != bool(features):
        raise MgenetError("score: --stage2 and --features go together (the stage-2 model and the test videos' "
                          "features files); give both, or neither for S_nf alone.")
    base_df = None
    if base:
        if not stage2:
            raise MgenetError("score: --base goes with --stage2 (S_mm is computed with that model, every other score "
                              "is taken from the base table).")
        base_df = read_parquet(base)
        if "mm" not in base_df.columns:
            raise MgenetError(f"{base}: no S_mm column (mm) to replace; give the segment table of a stage-2 run.")
    df = segment_table(flow_h5) if base_df is None else base_df
    if stage2:
        from mgenet.engine.stage2 import score_stage2

        t0 = time.time()
        s2 = score_stage2(stage2, [(f, flow_h5) for f in features], batch_size=int(batch_size), device=device,
                          only_mm=base_df is not None, mm_form=str(mm_form))
        log.info("stage 2 scored %d segments of %d videos in %.1f s%s", len(s2), len(features),
                 time.time() - t0, " (S_mm only)" if base_df is not None else "")
        df = join_stage2(df, s2) if base_df is None else swap_mm(base_df, s2)
    write_parquet(df, out)
    log.info("%d test segments scored (%s) -> %s", len(df), ", ".join(c for c in df.columns
                                                                      if c in ("nf", "mo", "app", "mm")), out)
    return df


def read_train_scores(path: str, normalise: str, flag: str = "--train-scores") -> pd.DataFrame | None:
    """The training segments' score table when fusion's ``normalise`` is ``train`` (then required), else None.

    Raises:
        MgenetError: ``normalise`` is train and ``path`` is not given or not there (``flag`` names the argument).
    """
    import logging
    from pathlib import Path

    from mgenet.io import read_parquet

    if normalise != "train":
        if path:
            logging.getLogger("mgenet").info("%s %s is not used: fusion.normalise is %s, which scales with the test "
                                             "segments", flag, path, normalise)
        return None
    if not path:
        raise MgenetError(f"fusion.normalise train scales each component by its scores on the training segments: "
                          f"pass {flag} with their segment score table (results/<dataset>/scores/"
                          f"segments_train.parquet), or choose another fusion.normalise.")
    if not Path(path).is_file():
        raise MgenetError(f"{path}: training segment scores not found ({flag}); they are written by the rule that "
                          f"scores the training segments (`snakemake {path}`).")
    return read_parquet(path)
