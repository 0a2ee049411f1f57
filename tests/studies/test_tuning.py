"""`snakemake tune`'s library: the grid, its scoring on validation tables, the choice and the tuned config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mgenet import MgenetError
from mgenet.studies.tuning import MAIN, choose, fusion_combinations, score_grid, set_key, split_grid, tuned_config


FUSION = {"weights": {"mo": 1.0, "app": 0.1, "mm": 0.1}, "motion_score": "mo"}


def test_split_grid_sorts_fusion_from_stage2_keys_and_refuses_the_rest():
    fusion, stage2 = split_grid({"fusion.weights.app": [0, 1], "stage2.model.top_k": [1], "fusion.normalise": "train"})
    assert fusion == {"fusion.weights.app": [0, 1], "fusion.normalise": ["train"]}
    assert stage2 == {"stage2.model.top_k": [1]}
    with pytest.raises(MgenetError, match="not tunable"):
        split_grid({"features.crop": [[8, 4]]})
    with pytest.raises(MgenetError, match="lists no value"):
        split_grid({"fusion.weights.mm": []})


def test_fusion_combinations_put_the_main_settings_first():
    combos = fusion_combinations({"fusion.weights.app": [0.0, 0.1, 1.0], "fusion.motion_score": ["mo_fsk", "mo"]},
                                 FUSION)
    assert len(combos) == 6
    assert combos[0] == FUSION  # app 0.1 with mo: the config's own
    assert len({json.dumps(c, sort_keys=True) for c in combos}) == 6  # every combination once
    assert combos[1]["weights"] == {"mo": 1.0, "app": 0.0, "mm": 0.1} and combos[1]["motion_score"] == "mo_fsk"
    assert FUSION["weights"]["app"] == 0.1  # not modified in place


def _val_tables():
    """Two validation videos of 40 frames, anomalous frames 10-19 of the first; S_mo ranks them perfectly, S_app
    backwards."""
    rows = []
    for v in ("a", "b"):
        for mid in range(40):
            bad = v == "a" and 10 <= mid < 20
            rows.append({"video": v, "person_id": 1, "start_frame": mid, "mid_frame": mid,
                         "nf": 0.0, "mo": 5.0 if bad else 1.0, "app": 0.0 if bad else 1.0, "mm": 0.5})
    seg = pd.DataFrame(rows)
    videos = pd.DataFrame({"video": ["a", "b"], "frames": [40, 40]})
    gt = np.zeros(40, np.uint8)
    gt[10:20] = 1
    gts = {"a": gt, "b": np.zeros(40, np.uint8)}
    intervals = pd.DataFrame({"video": ["a"], "start": [10], "end": [19], "type": ["motion"], "subtype": ["run"]})
    return seg, videos, gts, intervals


def test_score_grid_scores_each_setting_on_validation_and_choose_keeps_the_best():
    seg, videos, gts, intervals = _val_tables()
    combos = fusion_combinations({"fusion.weights.app": [0.0, 10.0]}, {"weights": {"mo": 1.0, "app": 0.0}})
    other = seg.assign(mo=1.0)  # a candidate whose S_mo carries nothing
    table = score_grid({MAIN: seg, "flat": other}, videos, gts, intervals, combos, sigmas=[])
    assert len(table) == 4 and set(table.columns) >= {"candidate", "fusion", "micro_auc", "macro_auc", "auc_motion"}
    best = choose(table)
    assert best.iloc[0]["candidate"] == MAIN and json.loads(best.iloc[0]["fusion"])["weights"]["app"] == 0.0
    assert best.iloc[0]["micro_auc"] == pytest.approx(1.0) and best["chosen"].sum() == 1
    # S_app alone (main's S_mo at weight 1 is swamped by app 10) ranks backwards: worst rows last
    assert best.iloc[-1]["micro_auc"] < 0.5


def test_choose_breaks_ties_toward_the_main_settings_and_refuses_empty_or_undefined():
    t = pd.DataFrame({"candidate": [MAIN, "x"], "fusion": ["{}", "{}"], "micro_auc": [0.8, 0.8],
                      "macro_auc": [0.7, 0.9]})
    assert choose(t).iloc[0]["candidate"] == MAIN
    assert choose(t, "macro_auc").iloc[0]["candidate"] == "x"
    with pytest.raises(MgenetError, match="tune.metric"):
        choose(t, "rbdc")
    with pytest.raises(MgenetError, match="empty"):
        choose(t.iloc[:0])
    with pytest.raises(MgenetError, match="no validation micro_auc"):
        choose(t.assign(micro_auc=np.nan))


def test_set_key_sets_a_nested_copy():
    cfg = {"fusion": {"weights": {"mo": 1.0}}}
    out = set_key(cfg, "fusion.weights.app", 0.3)
    assert out == {"fusion": {"weights": {"mo": 1.0, "app": 0.3}}} and cfg == {"fusion": {"weights": {"mo": 1.0}}}


def test_tuned_config_is_the_winners_override_and_fusion():
    row = pd.Series({"candidate": "top_k-1", "fusion": json.dumps(FUSION)})
    out = tuned_config(row, {"top_k-1": {"stage2": {"model": {"top_k": 1}}}})
    assert out == {"stage2": {"model": {"top_k": 1}}, "fusion": FUSION}
    assert tuned_config(pd.Series({"candidate": MAIN, "fusion": json.dumps(FUSION)}), {}) == {"fusion": FUSION}


def test_a_combination_without_any_weight_is_refused():
    seg, videos, gts, intervals = _val_tables()
    combos = fusion_combinations({"fusion.weights.mo": [0.0]}, {"weights": {"mo": 1.0}})
    with pytest.raises(MgenetError, match="every fusion weight 0"):
        score_grid({MAIN: seg}, videos, gts, intervals, combos, sigmas=[])


def test_tuned_yaml_names_the_best_row_and_holds_the_chosen_config() -> None:
    import pandas as pd
    import yaml

    from mgenet.studies.tuning import tuned_config, tuned_yaml

    table = pd.DataFrame({"candidate": ["main"], "fusion": ['{"weights": {"mo": 1.0}}'], "micro_auc": [0.87654]})
    best = table.iloc[0]
    text = tuned_yaml(best, {}, "micro_auc", "results/demo/eval/tuned.yaml")
    assert text.startswith("# Chosen by `snakemake tune` on the validation split (eval/tuning.csv, best row: "
                           "micro_auc 0.8765).\n# Use it with: snakemake --configfile config.yaml "
                           "results/demo/eval/tuned.yaml\n")
    assert yaml.safe_load(text) == tuned_config(best, {})
