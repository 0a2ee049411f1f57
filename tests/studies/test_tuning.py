"""`snakemake tune`'s library: the grid, its scoring on validation tables, the choice and the tuned config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mgenet import MgenetError
from mgenet.studies.tuning import (MAIN, TuneSettings, by_seed, choose, fusion_combinations, mean_over_seeds,
                                   score_grid, set_key, split_grid, tune_job, tuned_config, tuned_yaml)


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
    # a run of the user's own config files: the command applies tuned.yaml over them, not over the demo's alone
    for given, command in ((["my run.yaml"], "config.yaml 'my run.yaml'"),
                           (["config.yaml", "config/ub.yaml"], "config.yaml config/ub.yaml"),
                           (["mine.yaml", "results/demo/eval/tuned.yaml"], "config.yaml mine.yaml")):
        text = tuned_yaml(best, {}, "micro_auc", "results/demo/eval/tuned.yaml", configfiles=given)
        assert f"# Use it with: snakemake --configfile {command} results/demo/eval/tuned.yaml\n" in text


def test_by_seed_groups_name_at_seed_tables_and_keeps_the_plain_names_without_seeds():
    named = {"main@0": "m0", "top_k-1@0": "t0", "top_k-1@1": "t1", "main@1": "m1"}
    out = by_seed(named, [0, 1], "--candidates")
    assert list(out) == [0, 1]
    assert out[0] == {MAIN: "m0", "top_k-1": "t0"} and list(out[1]) == [MAIN, "top_k-1"]  # one order for each seed
    assert by_seed({MAIN: "m", "x": "y"}, [], "--candidates") == {None: {MAIN: "m", "x": "y"}}
    with pytest.raises(MgenetError, match="list no seeds"):
        by_seed({"main@0": "m"}, [], "--candidates")
    for bad in ("main", "main@2", "main@x", "@0"):
        with pytest.raises(MgenetError, match="NAME@SEED=PATH"):
            by_seed({bad: "m"}, [0, 1], "--candidates")
    with pytest.raises(MgenetError, match="no table of candidate 'top_k-1' under seed 1"):
        by_seed({"main@0": "m0", "main@1": "m1", "top_k-1@0": "t0"}, [0, 1], "--candidates")
    # training tables are needed only where a setting normalises by them (score_grid says so)
    assert by_seed({"main@1": "m1"}, [0, 1], "--train-scores", complete=False) == {0: {}, 1: {MAIN: "m1"}}


def _seed_table(figures):
    return pd.DataFrame({"candidate": [MAIN, MAIN, "x"], "fusion": ["{a}", "{b}", "{a}"], **figures})


def test_mean_over_seeds_gives_the_mean_std_and_each_seeds_figure_of_the_metric():
    tables = {0: _seed_table({"micro_auc": [0.9, 0.7, 0.8], "macro_auc": [0.5, 0.6, np.nan]}),
              3: _seed_table({"micro_auc": [0.6, 0.8, 0.8], "macro_auc": [0.7, 0.6, 0.9]})}
    out = mean_over_seeds(tables, "micro_auc")
    assert list(out.columns) == ["candidate", "fusion", "micro_auc", "micro_auc_std", "micro_auc_seed0",
                                 "micro_auc_seed3", "macro_auc"]
    assert out["micro_auc"].tolist() == pytest.approx([0.75, 0.75, 0.8])
    assert out["micro_auc_std"].tolist() == pytest.approx([np.std([0.9, 0.6], ddof=1), np.std([0.7, 0.8], ddof=1), 0])
    assert out["micro_auc_seed3"].tolist() == [0.6, 0.8, 0.8]
    assert out["macro_auc"].iloc[0] == pytest.approx(0.6) and np.isnan(out["macro_auc"].iloc[2])  # undefined once
    # the best single seed's row (main {a}, 0.9 on seed 0) is not the best mean
    best = choose(out)
    assert best.iloc[0]["candidate"] == "x" and best["chosen"].sum() == 1
    one = mean_over_seeds({0: tables[0]}, "macro_auc")
    assert one["macro_auc_std"].tolist() == [0, 0, 0] and one["macro_auc_seed0"].iloc[1] == 0.6
    with pytest.raises(MgenetError, match="other settings"):
        mean_over_seeds({0: tables[0], 1: tables[3].iloc[::-1]})
    with pytest.raises(MgenetError, match="no seed"):
        mean_over_seeds({})


def test_tuned_yaml_with_seeds_names_the_mean_and_std_and_the_settings_take_seeds():
    best = pd.Series({"candidate": MAIN, "fusion": json.dumps(FUSION), "micro_auc": 0.81234, "micro_auc_std": 0.0412})
    text = tuned_yaml(best, {}, "micro_auc", "tuned.yaml", seeds=[0, 1])
    assert text.startswith("# Chosen by `snakemake tune` on the validation split (eval/tuning.csv, best row: mean "
                           "micro_auc 0.8123 ± 0.0412 over training seeds 0, 1).\n")
    assert TuneSettings.from_dict({"seeds": [0, 2]}).seeds == [0, 2] and TuneSettings().seeds == []
    with pytest.raises(MgenetError, match="twice"):
        TuneSettings.from_dict({"seeds": [1, 1]})


def _tune_files(tmp_path, seeds):
    """A manifest of the two validation videos of _val_tables, their masks, and per seed the main model's segment
    scores (S_mo ranks perfectly) and candidate x's (S_mo flat on seed 0, perfect elsewhere)."""
    seg, videos, gts, _ = _val_tables()
    np.save(tmp_path / "a.npy", gts["a"])
    man = tmp_path / "manifest.csv"
    pd.DataFrame({"video": ["a", "b"], "split": ["val", "val"], "scene": ["01", "01"], "frames": [40, 40],
                  "gt_path": [str(tmp_path / "a.npy"), ""]}).to_csv(man, index=False)
    cands = {}
    for s in seeds:
        for name, table in ((MAIN, seg), ("x", seg.assign(mo=1.0) if s == 0 else seg)):
            path = tmp_path / f"{name}_{s}.parquet"
            table.to_parquet(path)
            cands[f"{name}@{s}" if seeds != [None] else name] = str(path)
    return man, cands


def test_tune_job_over_seeds_ranks_by_the_mean_and_without_seeds_reads_plain_names(tmp_path):
    man, cands = _tune_files(tmp_path, [0, 1])
    s = TuneSettings(fusion={"weights": {"mo": 1.0, "app": 0.0}}, grid={"fusion.weights.app": [0.0]}, seeds=[0, 1],
                     smoothing_sigmas=[], overrides={"x": {"stage2": {"model": {"top_k": 1}}}})
    table = tune_job(cands, {}, str(man), str(tmp_path / "tuning.csv"), str(tmp_path / "tuned.yaml"), s)
    assert table["candidate"].tolist() == [MAIN, "x"] and table["micro_auc_seed1"].tolist() == pytest.approx([1, 1])
    assert table["micro_auc"].iloc[0] == pytest.approx(1.0) and table["micro_auc"].iloc[1] < 1.0
    assert pd.read_csv(tmp_path / "tuning.csv").columns.tolist()[:7] == [
        "chosen", "candidate", "fusion", "micro_auc", "micro_auc_std", "micro_auc_seed0", "micro_auc_seed1"]
    assert "over training seeds 0, 1" in (tmp_path / "tuned.yaml").read_text()
    man, plain = _tune_files(tmp_path, [None])
    table = tune_job(plain, {}, str(man), str(tmp_path / "tuning.csv"), str(tmp_path / "tuned.yaml"),
                     TuneSettings(fusion=s.fusion, grid=s.grid, smoothing_sigmas=[]))
    assert "micro_auc_std" not in table and len(table) == 2
    with pytest.raises(MgenetError, match="list no seeds"):
        tune_job(cands, {}, str(man), str(tmp_path / "t.csv"), str(tmp_path / "t.yaml"), TuneSettings(fusion=s.fusion))
