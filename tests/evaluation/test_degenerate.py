"""Degenerate evaluations say so: a ground truth with no anomalous frame is an error (no AUC exists), a score that is
the same on every frame is a warning in the log and in metrics.json's ``warnings`` (its AUC of 0.5 measures nothing),
and fusion weights that are all zero are refused before they make such a score."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from mgenet.cli import main
from mgenet.config import SettingsError
from mgenet.scoring.fusion import FusionSettings


def frames(gt: np.ndarray, fused: np.ndarray) -> pd.DataFrame:
    n = len(gt)
    rng = np.random.default_rng(0)
    return pd.DataFrame({"video": ["a"] * (n // 2) + ["b"] * (n - n // 2), "frame": np.arange(n), "gt": gt,
                         "type": np.where(gt == 1, "motion", ""), "subtype": "", "nf": rng.random(n) + gt,
                         "fused": fused})


def evaluate(tmp_path, df: pd.DataFrame) -> int:
    df.to_parquet(tmp_path / "frames.parquet")
    return main(["evaluate", "--frames", str(tmp_path / "frames.parquet"), "--out", str(tmp_path / "metrics.json"),
                 "--params", json.dumps({"dataset": "toy"})])


def test_all_normal_ground_truth_is_an_error_not_null_figures(tmp_path, capsys):
    assert evaluate(tmp_path, frames(np.zeros(40, np.uint8), np.linspace(0, 1, 40))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'frames.parquet'}: all 40 frames of its 2 "
                                                   f"videos are normal in the ground truth")
    assert not (tmp_path / "metrics.json").exists()


def test_a_constant_score_is_a_warning_in_the_log_and_in_metrics(tmp_path, caplog):
    gt = np.zeros(40, np.uint8)
    gt[10:20] = 1
    with caplog.at_level(logging.WARNING, logger="mgenet"):
        assert evaluate(tmp_path, frames(gt, np.zeros(40))) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["scores"]["fused"]["micro_auc"] == 0.5
    assert len(metrics["warnings"]) == 1 and metrics["warnings"][0].startswith("fused: the same value (0) on every "
                                                                               "frame, so its AUC is 0.5")
    assert metrics["warnings"][0] in caplog.text
    assert evaluate(tmp_path, frames(gt, np.linspace(0, 1, 40))) == 0  # a score that varies: nothing to say
    assert json.loads((tmp_path / "metrics.json").read_text())["warnings"] == []


@pytest.mark.parametrize("weights", [{"nf": 0.0}, {"mo": 0.0, "app": 0.0, "mm": 0}])
def test_fusion_weights_all_zero_are_refused(weights):
    with pytest.raises(SettingsError, match="every fusion weight 0 makes the fused score constant"):
        FusionSettings.from_dict({"weights": weights})
    FusionSettings.from_dict({"weights": {**weights, "nf": 0.5}})  # one positive weight is enough
