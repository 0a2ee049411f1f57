"""Joining stage 2's scores to the flow's S_nf table, and carrying them through fusion and evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgenet import MgenetError
from mgenet.scoring.components import join_stage2
from mgenet.evaluation.metrics import compute_metrics
from mgenet.scoring.frames import frame_scores
from mgenet.scoring.fusion import fuse_segments, select_motion_score

VARIANTS = ["mo_fsk", "mo_frgb", "mo_sum", "mo_sim"]


def nf_table() -> pd.DataFrame:
    return pd.DataFrame({"video": ["b", "b", "a", "a", "a"], "person_id": [0, 1, 0, 0, 1],
                         "start_frame": [0, 0, 0, 1, 0], "mid_frame": [2, 2, 2, 3, 2],
                         "nf": [1.0, 2.0, 3.0, 4.0, 5.0]})


def stage2_table(order: list[int]) -> pd.DataFrame:
    nf = nf_table()
    s2 = nf[["video", "person_id", "start_frame", "mid_frame"]].copy()
    s2["mo"] = nf["nf"] * 10  # tie each row's scores to its key so that a wrong match shows
    s2["app"] = nf["nf"] * 100
    s2["mm"] = -nf["nf"]
    for i, c in enumerate(VARIANTS):
        s2[c] = nf["nf"] + i
    return s2.iloc[order].reset_index(drop=True)


def test_join_matches_rows_by_key_whatever_their_order() -> None:
    out = join_stage2(nf_table(), stage2_table([4, 2, 0, 3, 1]))
    assert list(out.columns) == ["video", "person_id", "start_frame", "mid_frame", "nf", "mo", "app", "mm", *VARIANTS]
    pd.testing.assert_frame_equal(out[nf_table().columns], nf_table())
    np.testing.assert_array_equal(out["mo"], out["nf"] * 10)
    np.testing.assert_array_equal(out["mo_sim"], out["nf"] + 3)


@pytest.mark.parametrize("drop_from, needle", [("stage2", "missing from the stage-2 scores"),
                                               ("nf", "missing from the flow latents")])
def test_join_names_segments_present_on_one_side(drop_from: str, needle: str) -> None:
    nf, s2 = nf_table(), stage2_table([0, 1, 2, 3, 4])
    if drop_from == "stage2":
        s2 = s2[s2["video"] != "b"]
    else:
        nf = nf[nf["video"] != "a"]
    with pytest.raises(MgenetError, match=needle) as err:
        join_stage2(nf, s2)
    assert ("'b'" if drop_from == "stage2" else "'a'") in str(err.value)


def test_join_rejects_duplicates_and_mid_frame_mismatch() -> None:
    s2 = stage2_table([0, 1, 2, 3, 4])
    with pytest.raises(MgenetError, match="more than once"):
        join_stage2(nf_table(), pd.concat([s2, s2.iloc[[0]]], ignore_index=True))
    s2.loc[0, "mid_frame"] = 9
    with pytest.raises(MgenetError, match="mid_frame"):
        join_stage2(nf_table(), s2)


def test_variant_columns_stay_out_of_frames_and_metrics() -> None:
    seg = fuse_segments(join_stage2(nf_table(), stage2_table([0, 1, 2, 3, 4])), {"mo": 1.0, "app": 0.1, "mm": 0.1})
    videos = pd.DataFrame({"video": ["a", "b"], "frames": [5, 4]})
    gts = {"a": np.array([0, 0, 1, 1, 0], np.uint8), "b": np.array([0, 1, 1, 0], np.uint8)}
    intervals = pd.DataFrame(columns=["video", "start", "end", "type", "subtype"])
    frames = frame_scores(seg, videos, gts, intervals, [])
    assert list(frames.columns) == ["video", "frame", "gt", "type", "subtype", "nf", "mo", "app", "mm", "fused"]
    assert list(compute_metrics(frames, "d")["scores"]) == ["nf", "mo", "app", "mm", "fused"]


def test_select_motion_score() -> None:
    seg = join_stage2(nf_table(), stage2_table([0, 1, 2, 3, 4]))
    sim = select_motion_score(seg, "mo_sim")
    np.testing.assert_array_equal(sim["mo"], seg["mo_sim"])
    assert not np.array_equal(seg["mo"], seg["mo_sim"])  # the input is left alone
    assert select_motion_score(seg, "mo") is seg
    assert select_motion_score(nf_table(), "mo") is not None  # S_nf alone: mo is the default, nothing to select
    with pytest.raises(MgenetError, match="not a level-1 measurement"):
        select_motion_score(seg, "mo_foo")
    with pytest.raises(MgenetError, match="no such column"):
        select_motion_score(nf_table(), "mo_sim")


def test_swap_mm_keeps_every_score_but_mm_in_place() -> None:
    from mgenet.scoring.components import swap_mm

    keys = {"video": ["v", "v"], "person_id": [1, 1], "start_frame": [0, 1], "mid_frame": [4, 5]}
    base = pd.DataFrame({**keys, "nf": [1.0, 2.0], "mm": [9.0, 9.0], "app": [3.0, 4.0]})
    s2 = pd.DataFrame({**keys, "mm": [0.5, 0.25]})
    out = swap_mm(base, s2)
    assert list(out.columns) == list(base.columns)
    assert out["mm"].tolist() == [0.5, 0.25] and out["nf"].tolist() == [1.0, 2.0] and out["app"].tolist() == [3.0, 4.0]


def test_swap_mm_needs_an_mm_column() -> None:
    from mgenet.scoring.components import swap_mm

    with pytest.raises(MgenetError, match="S_mm"):
        swap_mm(pd.DataFrame({"video": ["v"], "nf": [1.0]}), pd.DataFrame({"video": ["v"], "mm": [1.0]}))


def test_fusion_settings_mapping_leaves_unset_values_to_the_fusion_defaults() -> None:
    from mgenet.scoring.frames import FuseSettings

    s = FuseSettings.from_dict({"weights": {"mo": 1.0}, "smoothing_sigmas": [1]})
    assert s.mapping() == {"weights": {"mo": 1.0}, "motion_score": "mo", "normalise": "test_minmax"}
    with pytest.raises(ValueError, match="normalize"):
        FuseSettings.from_dict({"weights": {}, "normalize": "train"})
