"""The ablation table's columns beside the AUCs: interval, AP, EER, RBDC / TBDC where the metrics files hold them."""

from __future__ import annotations

import math

import pytest

from mgenet.studies.ablation import ablation_table, ablation_markdown


def _metrics(micro: float, **extra: object) -> dict:
    return {"scores": {"fused": {"micro_auc": micro, "macro_auc": micro - 0.1, "by_type": {}, **extra}}}


def test_new_figures_follow_the_aucs_and_old_files_give_the_old_table():
    new = _metrics(0.8, micro_ap=0.5, macro_ap=0.4, micro_eer=0.3, macro_eer=0.35, micro_auc_ci95=[0.7, 0.9])
    df = ablation_table({"full": new, "old": _metrics(0.7)})
    assert list(df.columns) == ["variant", "description", "fusion", "micro_auc", "macro_auc", "micro_auc_ci95_low",
                                "micro_auc_ci95_high", "micro_ap", "macro_ap", "micro_eer", "macro_eer"]
    full = df.iloc[0]
    assert (full["micro_auc_ci95_low"], full["micro_auc_ci95_high"], full["micro_eer"]) == (0.7, 0.9, 0.3)
    assert math.isnan(df.iloc[1]["micro_ap"])  # a file of an older version: its figure is undefined, not 0
    assert "| full |  |  | 0.8000 | 0.7000 | 0.7000 | 0.9000 | 0.5000 | 0.4000 | 0.3000 | 0.3500 |" in ablation_markdown(df)
    # files without the new figures: the table of before, column for column
    assert list(ablation_table({"a": _metrics(0.8)}).columns) == ["variant", "description", "fusion", "micro_auc",
                                                                  "macro_auc"]
    with_regions = ablation_table({"a": _metrics(0.8, rbdc=0.25, tbdc=0.5)})
    assert list(with_regions.columns)[-2:] == ["rbdc", "tbdc"]
    assert with_regions.iloc[0]["tbdc"] == pytest.approx(0.5)


def test_ablation_table_job_writes_the_table_in_the_variants_order(tmp_path):
    import json

    import pandas as pd

    from mgenet.studies.ablation import AblationTableSettings, ablation_table_job

    (tmp_path / "full.json").write_text(json.dumps(_metrics(0.8)))
    (tmp_path / "no_app.json").write_text(json.dumps(_metrics(0.7)))
    s = AblationTableSettings.from_dict({"dataset": "d", "descriptions": {"full": "all", "no_app": "no L_app"}})
    out, md = tmp_path / "a.csv", tmp_path / "a.md"
    ablation_table_job({"no_app": tmp_path / "no_app.json", "full": tmp_path / "full.json"}, out, md, s)
    table = pd.read_csv(out)
    assert list(table["variant"]) == ["no_app", "full"] and list(table["micro_auc"]) == [0.7, 0.8]
    assert md.read_text().startswith("# Ablations of d (score: fused)\n\n|")
