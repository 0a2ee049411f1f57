"""The mean ± std summary over seeds, on hand-made metrics files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from mgenet import MgenetError
from mgenet.cli import main
from mgenet.studies.seeds import compare_markdown, compare_summaries, seed_summary, seeds_markdown


def metrics(fused: float, nf: float, motion: float | None, scene: float | None = None) -> dict:
    by_type = {k: v for k, v in {"motion": motion, "scene": scene}.items() if v is not None}
    return {"dataset": "d", "scores": {"nf": {"micro_auc": nf, "macro_auc": nf, "by_type": {}},
                                       "fused": {"micro_auc": fused, "macro_auc": fused - 0.1, "by_type": by_type}}}


def test_mean_and_sample_std_per_score_and_figure() -> None:
    df = seed_summary({"0": metrics(0.8, 0.6, 0.9), "1": metrics(0.9, 0.7, 0.7, 0.5), "2": metrics(0.7, 0.8, None)})
    assert list(df.columns) == ["score", "figure", "mean", "std", "n_seeds", "seed_0", "seed_1", "seed_2"]
    assert list(df["score"].unique()) == ["nf", "fused"]
    assert list(df.loc[df["score"] == "fused", "figure"]) == ["micro_auc", "macro_auc", "auc_motion", "auc_scene"]
    row = df[(df["score"] == "fused") & (df["figure"] == "micro_auc")].iloc[0]
    assert row["mean"] == pytest.approx(0.8) and row["std"] == pytest.approx(0.1) and row["n_seeds"] == 3
    # a type missing from one seed is averaged over the seeds that have it; one value has std 0
    motion = df[(df["score"] == "fused") & (df["figure"] == "auc_motion")].iloc[0]
    assert motion["mean"] == pytest.approx(0.8) and motion["n_seeds"] == 2 and math.isnan(motion["seed_2"])
    scene = df[(df["score"] == "fused") & (df["figure"] == "auc_scene")].iloc[0]
    assert scene["mean"] == pytest.approx(0.5) and scene["std"] == 0.0
    nf_scene = df[(df["score"] == "nf") & (df["figure"] == "auc_scene")].iloc[0]
    assert math.isnan(nf_scene["mean"]) and nf_scene["n_seeds"] == 0
    text = seeds_markdown(df)
    assert "| fused | 0.800 ± 0.100 | 0.700 ± 0.100 | 0.800 ± 0.141 | 0.500 ± 0.000 |" in text
    assert "| nf | 0.700 ± 0.100 | 0.700 ± 0.100 | – | – |" in text and "over 3 seeds (0, 1, 2)" in text


def test_ap_eer_regions_and_the_fused_gain_are_summarised_when_present() -> None:
    def with_extra(fused: float, gain: float) -> dict:
        m = metrics(fused, 0.6, None)
        m["scores"]["nf"].update({"micro_ap": 0.4, "micro_eer": 0.3, "fused_vs_this": {"auc_diff": gain}})
        m["scores"]["fused"].update({"micro_ap": fused - 0.2, "micro_eer": 0.2, "rbdc": 0.5, "tbdc": 0.7})
        return m

    df = seed_summary({"0": with_extra(0.8, 0.2), "1": with_extra(0.9, 0.3)})
    assert list(df.loc[df["score"] == "fused", "figure"]) == ["micro_auc", "macro_auc", "micro_ap", "micro_eer",
                                                              "rbdc", "tbdc", "fused_gain"]
    gain = df[(df["score"] == "nf") & (df["figure"] == "fused_gain")].iloc[0]
    assert gain["mean"] == pytest.approx(0.25) and gain["std"] == pytest.approx(0.05 * 2 ** 0.5)
    ap = df[(df["score"] == "fused") & (df["figure"] == "micro_ap")].iloc[0]
    assert ap["mean"] == pytest.approx(0.65)
    nf_rbdc = df[(df["score"] == "nf") & (df["figure"] == "rbdc")].iloc[0]
    assert math.isnan(nf_rbdc["mean"]) and nf_rbdc["n_seeds"] == 0
    # files without these figures keep the table of before (see the test above): no empty columns appear


def test_runs_of_different_configurations_are_refused() -> None:
    other = metrics(0.8, 0.6, 0.9)
    other["scores"]["mo"] = other["scores"]["nf"]
    with pytest.raises(MgenetError, match="different configurations"):
        seed_summary({"0": metrics(0.8, 0.6, 0.9), "1": other})
    with pytest.raises(MgenetError, match="no seed"):
        seed_summary({})


def test_seeds_table_command(tmp_path: Path, capsys) -> None:
    for s, v in (("0", 0.8), ("3", 0.9)):
        (tmp_path / f"{s}.json").write_text(json.dumps(metrics(v, 0.6, 0.9)))
    out, md = tmp_path / "s.csv", tmp_path / "s.md"
    rc = main(["seeds-table", "--metrics", f"0={tmp_path / '0.json'}", f"3={tmp_path / '3.json'}",
               "--params", json.dumps({"dataset": "d"}), "--out", str(out), "--md", str(md)])
    assert rc == 0
    df = pd.read_csv(out)
    assert list(df.columns[-2:]) == ["seed_0", "seed_3"] and len(df) == 2 * 3
    assert md.read_text().startswith("# AUC over seeds, d\n")
    rc = main(["seeds-table", "--metrics", f"1={tmp_path / 'missing.json'}", "--out", str(out)])
    assert rc == 1 and "missing.json: metrics of seed '1' not found; run `snakemake seeds`" in capsys.readouterr().err


def test_two_configurations_are_compared_paired_by_seed(tmp_path: Path, capsys) -> None:
    # b is a + 0.05 on every seed although the seeds spread by 0.2: the paired interval is tight around +0.05
    a = seed_summary({"0": metrics(0.6, 0.5, 0.7), "1": metrics(0.8, 0.5, 0.7), "2": metrics(0.7, 0.5, 0.7)})
    b = seed_summary({"0": metrics(0.65, 0.5, 0.7), "1": metrics(0.85, 0.5, 0.7), "2": metrics(0.75, 0.5, 0.7),
                      "9": metrics(0.1, 0.1, 0.1)})  # a seed a does not have is left out
    df = compare_summaries(a, b, ("window", "track"))
    row = df[(df["score"] == "fused") & (df["figure"] == "micro_auc")].iloc[0]
    assert row["diff"] == pytest.approx(0.05) and row["diff_std"] == pytest.approx(0.0, abs=1e-12)
    assert row["n_seeds"] == 3 and row["mean_window"] == pytest.approx(0.7) and row["mean_track"] == pytest.approx(0.75)
    assert [c for c in df.columns if c.startswith("diff_")] == ["diff_std", "diff_0", "diff_1", "diff_2"]
    # a difference that changes sign with the seed has an interval holding 0
    c = seed_summary({"0": metrics(0.7, 0.5, 0.7), "1": metrics(0.7, 0.5, 0.7), "2": metrics(0.65, 0.5, 0.7)})
    row = compare_summaries(a, c).query("score == 'fused' and figure == 'micro_auc'").iloc[0]
    assert row["ci_low"] < 0 < row["ci_high"] and row["diff"] == pytest.approx((0.1 - 0.1 - 0.05) / 3)
    assert "| fused | micro_auc | 0.700 | 0.750 | +0.050 ± 0.000 | [+0.050, +0.050] |" in compare_markdown(
        df, ("window", "track"))
    with pytest.raises(MgenetError, match="share no seed"):
        compare_summaries(a, seed_summary({"7": metrics(0.7, 0.5, 0.7)}))
    # the command: two NAME=CSV tables
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    out, md = tmp_path / "cmp.csv", tmp_path / "cmp.md"
    rc = main(["seeds-compare", f"window={tmp_path / 'a.csv'}", f"track={tmp_path / 'b.csv'}", "--figures",
               "micro_auc", "--out", str(out), "--md", str(md)])
    assert rc == 0 and set(pd.read_csv(out)["figure"]) == {"micro_auc"}
    assert md.read_text().startswith("# track against window, paired by seed\n")
    rc = main(["seeds-compare", f"window={tmp_path / 'a.csv'}", f"track={tmp_path / 'nope.csv'}", "--out", str(out)])
    assert rc == 1 and "nope.csv: no such seeds table (track)" in capsys.readouterr().err


def test_seeds_table_job_writes_the_summary_and_names_the_target_of_a_missing_run(tmp_path: Path) -> None:
    from mgenet.io import MissingFileError
    from mgenet.studies.seeds import SeedsTableSettings, seeds_table_job

    for seed, fused in (("0", 0.8), ("3", 0.6)):
        (tmp_path / f"{seed}.json").write_text(json.dumps(metrics(fused, 0.5, None)))
    out, md = tmp_path / "s.csv", tmp_path / "s.md"
    s = SeedsTableSettings.from_dict({"dataset": "d", "target": "seeds_val", "title": "Validation AUC"})
    seeds_table_job({"0": tmp_path / "0.json", "3": tmp_path / "3.json"}, out, md, s)
    table = pd.read_csv(out)
    row = table[(table["score"] == "fused") & (table["figure"] == "micro_auc")].iloc[0]
    assert row["mean"] == pytest.approx(0.7) and row["seed_0"] == pytest.approx(0.8) and row["seed_3"] == 0.6
    assert md.read_text().startswith("# Validation AUC\n\n| score |")
    with pytest.raises(MissingFileError, match=r"metrics of seed '1' not found; run `snakemake seeds_val`"):
        seeds_table_job({"1": tmp_path / "1.json"}, tmp_path / "t.csv", None, s)
    assert not (tmp_path / "t.csv").exists()
    with pytest.raises(MgenetError, match=r"unknown seeds table settings \['titel'\]"):
        SeedsTableSettings.from_dict({"titel": "x"})


def test_seeds_compare_refuses_empty_foreign_tables_and_unknown_figures_in_one_line(tmp_path: Path, capsys) -> None:
    a = seed_summary({"0": metrics(0.6, 0.5, 0.7), "1": metrics(0.8, 0.5, 0.7)})
    a.to_csv(tmp_path / "a.csv", index=False)
    out = tmp_path / "cmp.csv"

    def error(b: str, *extra: str) -> str:
        assert main(["seeds-compare", f"window={tmp_path / 'a.csv'}", f"track={b}", "--out", str(out), *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: "), err
        return err

    (tmp_path / "empty.csv").write_text("")
    assert f"{tmp_path / 'empty.csv'}: seeds table (track) is empty" in error(str(tmp_path / "empty.csv"))
    pd.DataFrame({"video": ["v"], "auc": [0.5]}).to_csv(tmp_path / "other.csv", index=False)
    err = error(str(tmp_path / "other.csv"))
    assert "other.csv: not an `mgenet seeds-table` CSV (track): it lacks score, figure, seed_<n> columns" in err
    err = error(str(tmp_path / "a.csv"), "--figures", "nonsense", "micro_auc")
    assert "--figures nonsense: not a figure of these tables; they hold " in err and "micro_auc" in err
    assert not out.exists()
