"""Frame-level AUC, AP, EER against hand-counted cases, DeLong against brute force, the bootstrap, and the
metrics.json contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sklearn.metrics import roc_auc_score

from mgenet.evaluation.metrics import (
    average_precision,
    bootstrap_aucs,
    bootstrap_counts,
    branch_wins,
    compute_metrics,
    delong_covariance,
    delong_test,
    equal_error_rate,
    macro_ap,
    macro_auc,
    macro_eer,
    micro_auc,
    one_class_videos,
    roc_points,
    type_auc,
    weighted_auc,
)


def _frames(videos, gt, score, types=None, name="fused"):
    n = len(gt)
    return pd.DataFrame({"video": videos, "frame": np.arange(n), "gt": np.asarray(gt, np.uint8),
                         "type": types if types is not None else [""] * n, "subtype": [""] * n,
                         name: np.asarray(score, float)})


@pytest.mark.parametrize("score, auc", [
    ([0.1, 0.2, 0.8, 0.9], 1.0),   # every anomalous frame above every normal one
    ([0.9, 0.8, 0.2, 0.1], 0.0),   # reversed
    ([0.1, 0.6, 0.4, 0.9], 0.75),  # pairs (pos > neg): 0.4>0.1, 0.9>0.1, 0.9>0.6; not 0.4>0.6 -> 3/4
    ([0.5, 0.5, 0.5, 0.5], 0.5),   # ties count one half
])
def test_micro_auc_known_values(score, auc):
    assert micro_auc(_frames(["v"] * 4, [0, 0, 1, 1], score), "fused") == pytest.approx(auc)


@pytest.fixture
def four_videos():
    # a: AUC 1; b: AUC 0.75 (as above); c: all normal and d: all anomalous, both skipped by the macro AUC.
    videos = ["a"] * 2 + ["b"] * 4 + ["c"] * 2 + ["d"] * 2
    gt = [0, 1] + [0, 0, 1, 1] + [0, 0] + [1, 1]
    score = [0.1, 0.2] + [0.1, 0.6, 0.4, 0.9] + [0.9, 0.9] + [0.3, 0.3]
    return _frames(videos, gt, score)


def test_macro_auc_skips_single_class_videos(four_videos):
    assert macro_auc(four_videos, "fused") == pytest.approx((1.0 + 0.75) / 2)


def test_micro_auc_concatenates_videos(four_videos):
    # negatives {.1, .1, .6, .9, .9}, positives {.2, .4, .9, .3, .3}; pairs won (tie = 1/2):
    # .2 -> 2, .4 -> 2, .9 -> 3 + 2 * 0.5, .3 -> 2, .3 -> 2  => 12 of 25.
    assert micro_auc(four_videos, "fused") == pytest.approx(12 / 25)


def test_macro_auc_nan_when_no_video_has_both_classes():
    fr = _frames(["a", "a", "b", "b"], [0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    assert np.isnan(macro_auc(fr, "fused"))
    m = compute_metrics(fr, "demo")
    assert m["scores"]["fused"]["macro_auc"] is None
    assert m["scores"]["fused"]["micro_auc"] == pytest.approx(1.0)
    assert '"macro_auc": null' in json.dumps(m)


@pytest.fixture
def typed():
    # normals .1 .2 .3 .4; motion .5 .6 (AUC 1); scene .15 .35 (1 + 3 of 8 pairs = 0.5); one untyped anomaly at 0.0.
    gt = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    score = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.15, 0.35, 0.0]
    types = ["", "", "", "", "motion", "motion", "scene", "scene", ""]
    return _frames(["v"] * 9, gt, score, types)


def test_type_auc_uses_normals_and_that_type_only(typed):
    assert type_auc(typed, "fused", "motion") == pytest.approx(1.0)
    assert type_auc(typed, "fused", "scene") == pytest.approx(0.5)
    # The untyped anomaly (score 0) counts in the overall AUC only: (4 + 4 + 1 + 3 + 0) / 20.
    assert micro_auc(typed, "fused") == pytest.approx(12 / 20)


def test_metrics_contract(typed):
    fr = typed.assign(nf=typed["fused"] * -1, mm=typed["fused"])  # columns deliberately out of canonical order
    m = compute_metrics(fr, "demo")
    # the keys of before come first and unchanged; new keys follow them
    assert list(m)[:4] == ["dataset", "n_videos", "n_frames", "scores"]
    assert list(m) == ["dataset", "n_videos", "n_frames", "scores", "macro_videos", "branch_wins"]  # no bootstrap
    assert m["dataset"] == "demo" and m["n_videos"] == 1 and m["n_frames"] == 9
    assert isinstance(m["n_videos"], int) and isinstance(m["n_frames"], int)
    assert list(m["scores"]) == ["nf", "mm", "fused"]
    for name, s in m["scores"].items():
        assert list(s)[:3] == ["micro_auc", "macro_auc", "by_type"]
        assert list(s)[3:7] == ["micro_ap", "macro_ap", "micro_eer", "macro_eer"]
        assert list(s["by_type"]) == ["motion", "scene"]
        assert all(isinstance(v, float) for v in (s["micro_auc"], s["macro_auc"], *s["by_type"].values()))
        assert ("fused_vs_this" in s) == (name != "fused")
    assert m["scores"]["fused"]["by_type"] == {"motion": pytest.approx(1.0), "scene": pytest.approx(0.5)}
    assert m["scores"]["nf"]["by_type"]["motion"] == pytest.approx(0.0)
    # mm is the fused score itself: no gain, and DeLong sees identical rankings
    assert m["scores"]["mm"]["fused_vs_this"] == {"auc_diff": 0.0, "delong_z": 0.0, "delong_p": 1.0}
    assert m["scores"]["nf"]["fused_vs_this"]["auc_diff"] == pytest.approx(12 / 20 - 8 / 20)
    assert m["macro_videos"] == {"n_used": 1, "n_skipped": 0, "skipped_one_class": []}
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_branch_wins_are_type_auc_gains_with_paired_intervals(typed):
    # app ranks the motion frames first but not the scene ones; nf is the table's score backwards
    fr = typed.assign(nf=-typed["fused"], mo=typed["fused"], app=typed["fused"], mm=typed["fused"] * 0 + 1.0)
    wins = branch_wins(fr)
    assert [(w["branch"], w["baseline"], w["type"]) for w in wins] == [("mm", "nf", "scene"), ("mm", "mo", "scene"),
                                                                        ("mo", "nf", "motion")]
    by = {(w["branch"], w["baseline"]): w for w in wins}
    # scene: mm is constant (0.5); nf = -score ranks the two scene frames 0.5 as well; mo 0.5
    assert by["mm", "nf"]["auc_diff"] == pytest.approx(0.0) and by["mm", "mo"]["auc_diff"] == pytest.approx(0.0)
    assert by["mo", "nf"]["auc_diff"] == pytest.approx(1.0 - 0.0)  # motion: mo perfect, nf backwards
    assert "ci95" not in by["mo", "nf"]
    # with resamples: the interval of a gain that is the same in every resample is that gain
    many = pd.concat([fr.assign(video=f"v{i}") for i in range(4)], ignore_index=True)
    w = {(x["branch"], x["baseline"]): x for x in branch_wins(many, bootstrap=20, seed=0)}
    assert w["mo", "nf"]["ci95"] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_by_type_empty_without_types(four_videos):
    assert compute_metrics(four_videos, "x")["scores"]["fused"]["by_type"] == {}
    assert compute_metrics(four_videos.drop(columns=["type"]), "x")["scores"]["fused"]["by_type"] == {}


def test_roc_points():
    fr = _frames(["v"] * 4, [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    fpr, tpr, auc = roc_points(fr, "fused")
    assert auc == pytest.approx(1.0)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    fpr, tpr, auc = roc_points(_frames(["v"] * 2, [0, 0], [0.1, 0.2]), "fused")
    assert fpr.size == 0 and np.isnan(auc)


# ------------------------------------------------------------------------------------------------ AP and EER


@pytest.mark.parametrize("gt, score, ap", [
    ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
    # thresholds .9 (P 1, R 1/2), .6 (P 1/2, R 1/2), .4 (P 2/3, R 1): 1/2 * 1 + 0 + 1/2 * 2/3
    ([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 5 / 6),
    ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 5 / 12),  # .2: P 1/3, R 1/2; .1: P 1/2, R 1 -> 1/6 + 1/4
])
def test_average_precision_known_values(gt, score, ap):
    assert average_precision(np.array(gt), np.array(score)) == pytest.approx(ap)


@pytest.mark.parametrize("gt, score, eer", [
    ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 0.0),
    ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 1.0),
    ([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5),    # the ROC point (1/2, 1/2) has FPR = miss rate = 1/2
    ([0, 1], [0.5, 0.5], 0.5),                    # a tie: the diagonal from (0, 0) to (1, 1) crosses at 1/2
    ([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], 0.25),   # from (0, 1/2) to (1/2, 1): FPR 1/4 where TPR is 3/4
    ([0, 0, 0, 1], [0.1, 0.2, 0.9, 0.5], 1 / 3),  # a vertical step at FPR 1/3 crosses the line FPR = 1 - TPR
])
def test_equal_error_rate_known_values(gt, score, eer):
    assert equal_error_rate(np.array(gt), np.array(score)) == pytest.approx(eer)


def test_ap_and_eer_undefined_on_one_class():
    assert np.isnan(average_precision(np.zeros(3), np.arange(3.0)))
    assert np.isnan(equal_error_rate(np.ones(3), np.arange(3.0)))


def test_macro_figures_skip_and_list_one_class_videos(four_videos):
    # a: AP 1, EER 0; b: AP 5/6, EER 1/2; c (all normal) and d (all anomalous) are skipped, never padded.
    assert macro_ap(four_videos, "fused") == pytest.approx((1 + 5 / 6) / 2)
    assert macro_eer(four_videos, "fused") == pytest.approx((0 + 0.5) / 2)
    assert one_class_videos(four_videos) == ["c", "d"]
    m = compute_metrics(four_videos, "x")
    assert m["macro_videos"] == {"n_used": 2, "n_skipped": 2, "skipped_one_class": ["c", "d"]}
    assert m["scores"]["fused"]["macro_ap"] == pytest.approx((1 + 5 / 6) / 2)


# -------------------------------------------------------------------------------------------------------- DeLong


def _brute_force_delong(gt, scores):
    """DeLong et al. (1988) from the definition: psi over every (positive, negative) pair."""
    pos, neg = scores[:, gt == 1], scores[:, gt == 0]
    m, n = pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])  # (k, m, n)
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    return psi.mean(axis=(1, 2)), np.cov(v10) / m + np.cov(v01) / n


def test_delong_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    gt = (rng.random(60) < 0.4).astype(int)
    a = np.round(rng.normal(gt, 1.0), 1)  # rounded: many ties
    b = np.round(rng.normal(0.5 * gt, 1.0), 1)
    auc, cov = delong_covariance(gt, np.stack([a, b]))
    auc_bf, cov_bf = _brute_force_delong(gt, np.stack([a, b]))
    np.testing.assert_allclose(auc, auc_bf, atol=1e-12)
    np.testing.assert_allclose(auc, [roc_auc_score(gt, a), roc_auc_score(gt, b)], atol=1e-12)
    np.testing.assert_allclose(cov, cov_bf, atol=1e-12)
    diff, z, p = delong_test(gt, a, b)
    var = cov_bf[0, 0] + cov_bf[1, 1] - 2 * cov_bf[0, 1]
    assert diff == pytest.approx(auc_bf[0] - auc_bf[1]) and z == pytest.approx(diff / np.sqrt(var))
    from scipy.stats import norm
    assert p == pytest.approx(2 * norm.sf(abs(z)))


def test_delong_hand_computed_case():
    # positives a = {.9, .4}, negatives {.6, .1}: V10 = (1, 1/2), V01 = (1/2, 1) -> AUC 3/4,
    # var = var(V10) / 2 + var(V01) / 2 = 1/8 / 2 + 1/8 / 2 = 1/8.
    auc, cov = delong_covariance(np.array([1, 0, 1, 0]), np.array([[0.9, 0.6, 0.4, 0.1]]))
    assert auc[0] == pytest.approx(0.75) and cov[0, 0] == pytest.approx(1 / 8)


def test_delong_undefined_on_one_class():
    assert all(np.isnan(x) for x in delong_test(np.zeros(4), np.arange(4.0), np.arange(4.0)))


# ----------------------------------------------------------------------------------------------------- bootstrap


def test_weighted_auc_equals_auc_of_repeated_frames():
    rng = np.random.default_rng(1)
    gt = (rng.random(40) < 0.3).astype(int)
    score = np.round(rng.random(40), 1)
    w = rng.integers(0, 4, 40)
    rep = np.repeat(np.arange(40), w)
    assert weighted_auc(gt, score, w) == pytest.approx(roc_auc_score(gt[rep], score[rep]))


def test_bootstrap_counts_draw_every_video_count_with_replacement():
    c = bootstrap_counts(5, 200, seed=7)
    assert c.shape == (200, 5) and (c.sum(axis=1) == 5).all() and (c.max(axis=1) > 1).any()
    np.testing.assert_array_equal(c, bootstrap_counts(5, 200, seed=7))
    assert not np.array_equal(c, bootstrap_counts(5, 200, seed=8))


def test_bootstrap_resample_is_the_auc_of_the_drawn_videos(four_videos):
    boot = bootstrap_aucs(four_videos, ["fused"], resamples=20, seed=3)["fused"]
    counts = bootstrap_counts(4, 20, seed=3)  # videos a, b, c, d in sorted order
    for r in range(20):
        drawn = pd.concat([four_videos[four_videos["video"] == v] for v, k in zip("abcd", counts[r])
                           for _ in range(k)])
        gt = drawn["gt"].to_numpy()
        expected = roc_auc_score(gt, drawn["fused"]) if 0 < gt.sum() < len(gt) else np.nan
        assert boot[r] == pytest.approx(expected, nan_ok=True)


def _many_videos(seed=0, n=12):
    rng = np.random.default_rng(seed)
    parts = []
    for v in range(n):
        gt = (np.arange(30) >= 20).astype(int) if v % 3 else np.zeros(30, int)
        parts.append(pd.DataFrame({"video": f"v{v:02d}", "frame": np.arange(30), "gt": gt, "type": "",
                                   "subtype": "", "mo": rng.normal(gt, 1.0), "fused": rng.normal(1.5 * gt, 1.0)}))
    return pd.concat(parts, ignore_index=True)


def test_bootstrap_intervals_are_seeded_and_paired():
    fr = _many_videos()
    m = compute_metrics(fr, "x", bootstrap=200, seed=5)
    assert m["bootstrap"] == {"unit": "video", "resamples": 200, "seed": 5, "level": 0.95, "valid_resamples": 200}
    assert m == compute_metrics(fr, "x", bootstrap=200, seed=5)  # reproducible
    other = compute_metrics(fr, "x", bootstrap=200, seed=6)
    assert other["scores"]["fused"]["micro_auc_ci95"] != m["scores"]["fused"]["micro_auc_ci95"]
    for s in m["scores"].values():
        lo, hi = s["micro_auc_ci95"]
        assert lo < s["micro_auc"] < hi
    paired = m["scores"]["mo"]["fused_vs_this"]
    assert list(paired) == ["auc_diff", "ci95", "delong_z", "delong_p"]
    assert paired["ci95"][0] < paired["auc_diff"] < paired["ci95"][1]
    # the same resamples for both scores: the interval is the percentiles of the per-resample differences
    boot = bootstrap_aucs(fr, ["mo", "fused"], 200, 5)
    assert paired["ci95"] == pytest.approx(list(np.percentile(boot["fused"] - boot["mo"], [2.5, 97.5])))
    plain = compute_metrics(fr, "x")
    assert "bootstrap" not in plain and "micro_auc_ci95" not in plain["scores"]["mo"]
