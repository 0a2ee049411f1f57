"""The whole DAG, as a user runs it: `snakemake` on a tiny synthetic config."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import REPO, copy_workflow, run_snakemake, snakemake_env

TINY = {
    "dataset": {"name": "tiny"},
    "demo": {"n_scenes": 3, "train_videos_per_scene": 2, "test_videos_per_scene": 2, "val_videos_per_scene": 1,
             "frames": 120, "width": 160, "height": 120},
    "segments": {"seg_len": 12, "train_stride": 3},
    "flow": {"model": {"n_flows": 4}, "train": {"epochs": 6, "batch_size": 64, "lr": 0.001}},
    "stage2": {"model": {"dim": 16, "depth": 1, "heads": 2, "c_app": 8, "n_behaviour": 8, "n_scene": 4,
                         "n_matching": 8, "top_k": 2, "lsta_blocks": 1},
               "train": {"level1_epochs": 2, "level2_epochs": 1, "batch_size": 32}},
    "evaluation": {"bootstrap": 50},
    "crkr": {"enabled": False},  # the two-stream baseline has its own DAG test (test_workflow_crkr.py)
    "snippets": {"size": [32, 32]},
    "arnet": {"epochs": 40, "batch_size": 4},
}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, "tiny.yaml", 2, *args, check=check)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("wf")
    copy_workflow(wd)
    (wd / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    snakemake(wd)
    return wd


def test_whole_dag_produces_every_artifact(workdir):
    r = workdir / "results" / "tiny"
    man = pd.read_csv(r / "manifest.csv", dtype={"video": str})
    assert set(man["split"]) == {"train", "test", "val"} and len(man) == 15
    for video in man["video"]:
        assert (r / "pose" / f"{video}.json").exists()
        assert (r / "segments" / f"{video}.h5").exists()
    frames = pd.read_parquet(r / "scores" / "frames.parquet")
    assert len(frames) == man.loc[man["split"] == "test", "frames"].sum()
    assert (r / "models" / "flow.pt").exists() and (r / "flow" / "test.h5").exists()
    for video in man["video"]:
        assert (r / "features" / f"{video}.h5").exists()
    # features: one clip per segment row, in order; tokens (N, T/2, H/8, W/8, 192) of the demo's 32x16 crops, T = 12,
    # in the default layout (track: each person's rows stored once, a clip a slice of them)
    import h5py

    from mgenet.io import read_features

    for video in man["video"]:
        feats, attrs = read_features(r / "features" / f"{video}.h5", ("tokens", "person_id", "start_frame", "scene"))
        with h5py.File(r / "segments" / f"{video}.h5") as s:
            n = s["person_id"].shape[0]
            assert feats["tokens"].shape == (n, 6, 4, 2, 192) and feats["tokens"].dtype == "float16"
            for key in ("person_id", "start_frame"):
                assert (feats[key] == s[key][()]).all()
        assert feats["scene"].shape == (192,) and attrs["checkpoint_sha256"] == "random:0"
        assert attrs["layout"] == "track"
    assert (r / "benchmarks" / "features").is_dir()
    # stage 2: trained on the training split's latents, scored on the test split
    assert (r / "flow" / "train.h5").exists() and (r / "models" / "stage2.pt").exists()
    assert not (r / "models" / "stage2.pt.partial").exists()
    assert (r / "benchmarks" / "train_stage2.tsv").exists()
    seg = pd.read_parquet(r / "scores" / "segments.parquet")
    assert {"nf", "mo", "app", "mm", "mo_fsk", "mo_frgb", "mo_sum", "mo_sim"} <= set(seg.columns)
    assert seg[["nf", "mo", "app", "mm"]].notna().all().all()
    assert list(frames.columns[5:]) == ["nf", "mo", "app", "mm", "fused", "arnet"]
    # AR-Net: snippets of the weak split's training videos and of every test video, trained on the former only
    weak = pd.read_csv(workdir / "resources" / "datasets" / "demo" / "weak_split.csv", dtype={"video": str})
    train_log = (r / "logs" / "arnet" / "train_arnet.log").read_text()
    assert f"trained on {int((weak['split'] == 'train').sum())} videos" in train_log
    snippets = {p.stem for p in (r / "snippets" / "len16").glob("*.h5")}
    assert snippets == set(weak.loc[weak["split"] == "train", "video"]) | set(man.loc[man["split"] == "test", "video"])
    arnet = pd.read_parquet(r / "scores" / "baselines" / "arnet.parquet")
    assert len(arnet) == len(frames) and arnet["arnet"].between(0, 1).all()
    html = (r / "eval" / "report.html").read_text()
    assert "data:image/png;base64" in html
    # the validation split is scored and evaluated like the test split, and shown in the test report
    val = man.loc[man["split"] == "val", "video"]
    vframes = pd.read_parquet(r / "scores" / "frames_val.parquet")
    assert set(vframes["video"]) == set(val) and list(vframes.columns[5:]) == ["nf", "mo", "app", "mm", "fused"]
    vm = json.loads((r / "eval" / "val_metrics.json").read_text())
    assert vm["n_videos"] == 3 and list(vm["scores"]) == ["nf", "mo", "app", "mm", "fused"]
    assert '<h2 id="validation">' in html and f"{vm['n_videos']} validation videos" in html
    n_test = (man["split"] == "test").sum()
    assert len(list((r / "eval" / "plots").glob("*.png"))) >= n_test
    assert (r / "benchmarks" / "train_flow.tsv").exists()
    assert not list(r.rglob(".*.tmp*")), "temporary files left behind"


def test_metrics_contract_and_auc_above_chance(workdir):
    m = json.loads((workdir / "results" / "tiny" / "eval" / "metrics.json").read_text())
    assert m["dataset"] == "tiny" and m["n_videos"] == 6 and m["n_frames"] == 6 * 120
    assert list(m["scores"]) == ["nf", "mo", "app", "mm", "fused"]
    for name, s in m["scores"].items():
        assert list(s)[:3] == ["micro_auc", "macro_auc", "by_type"]
        assert {"micro_ap", "macro_ap", "micro_eer", "macro_eer", "micro_auc_ci95", "rbdc", "tbdc"} <= set(s)
        assert ("fused_vs_this" in s) == (name != "fused")
        assert set(s["by_type"]) <= {"motion", "appearance", "scene"}
        assert 0.0 <= s["micro_auc"] <= 1.0 and 0.0 <= s["rbdc"] <= 1.0 and 0.0 <= s["tbdc"] <= 1.0
    assert m["bootstrap"]["resamples"] == 50 and m["bootstrap"]["unit"] == "video"
    # the demo's generator writes the anomalous people's boxes: RBDC / TBDC are computed on them
    assert m["localization"]["n_regions"] > 0 and m["localization"]["iou"] == 0.1
    assert m["macro_videos"]["n_used"] + m["macro_videos"]["n_skipped"] == 6
    # a flow trained for seconds on 6 tiny videos must still rank running/jumping/falling far above chance
    assert m["scores"]["nf"]["by_type"]["motion"] > 0.7
    # the fused score is Eq. 16's mix of mo, app, mm, not S_nf (the default weights with stage 2 enabled)
    assert m["scores"]["fused"]["micro_auc"] != pytest.approx(m["scores"]["nf"]["micro_auc"])
    # the weak split's test videos: every score and AR-Net (weakly supervised: never on the whole test split)
    w = m["weak"]
    assert list(w["scores"]) == ["nf", "mo", "app", "mm", "fused", "arnet"]
    assert w["split_file"].endswith("weak_split.csv")
    assert w["scores"]["arnet"]["supervision"] == "weak" and w["scores"]["nf"]["supervision"] == "unsupervised"
    assert 0 < w["n_videos"] < m["n_videos"]
    assert {"anomalous_video_auc", "false_alarm_rate"} <= set(w["scores"]["arnet"])
    html = (workdir / "results" / "tiny" / "eval" / "report.html").read_text()
    assert '<h2 id="weak">' in html and "AR-Net (weakly supervised)" in html


def test_rerun_is_a_no_op_and_a_param_change_reruns_only_downstream(workdir):
    proc = snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    changed = {**TINY, "score": {"smoothing_sigmas": [2]}}
    (workdir / "changed.yaml").write_text(yaml.safe_dump(changed))
    proc = snakemake(workdir, "-n", "--configfile", "changed.yaml")
    out = proc.stdout + proc.stderr
    assert "fuse_scores" in out and "evaluate" in out
    for upstream in ("train_flow", "encode_flow", "build_segments", "import_pose", "make_demo_dataset",
                     "extract_features", "train_stage2", "score_components", "extract_snippets", "train_arnet",
                     "score_arnet"):
        assert upstream not in out.split("Job stats")[-1], f"{upstream} would rerun:\n{out}"
    # a stage-2 setting retrains stage 2 and what follows, and nothing upstream of it
    changed = {**TINY, "stage2": {**TINY["stage2"], "train": {**TINY["stage2"]["train"], "lr": 0.002}}}
    (workdir / "changed2.yaml").write_text(yaml.safe_dump(changed))
    proc = snakemake(workdir, "-n", "--configfile", "changed2.yaml")
    out = proc.stdout + proc.stderr
    stats = out.split("Job stats")[-1]
    for rule in ("train_stage2", "score_components", "fuse_scores", "evaluate"):
        assert rule in stats, f"{rule} would not rerun:\n{out}"
    for upstream in ("extract_features", "train_flow", "encode_flow"):
        assert upstream not in stats, f"{upstream} would rerun:\n{out}"
    # S_mm's form is a scoring-time setting: it rescores with the same model; the normalisation only re-fuses
    for name, change, rerun, kept in (
            ("mm_form", {"stage2": {**TINY["stage2"], "mm_form": "one_sided"}},
             ("score_components", "fuse_scores", "evaluate"), ("train_stage2", "encode_flow")),
            ("normalise", {"fusion": {"normalise": "sum_then_minmax"}}, ("fuse_scores", "evaluate"),
             ("train_stage2", "score_components"))):
        (workdir / f"{name}.yaml").write_text(yaml.safe_dump({**TINY, **change}))
        proc = snakemake(workdir, "-n", "--configfile", f"{name}.yaml")
        stats = (proc.stdout + proc.stderr).split("Job stats")[-1]
        assert all(r in stats for r in rerun) and not any(k in stats for k in kept), f"{name}:\n{stats}"


def _counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    stats = (proc.stdout + proc.stderr).split("Job stats")[-1]
    return dict((k, int(v)) for k, v in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M))


def _outputs(proc: subprocess.CompletedProcess, rule: str) -> list[str]:
    """The outputs of a dry run's jobs of ``rule``."""
    return re.findall(rf"^rule {rule}:\n(?:\s+input: .*\n)?\s+output: (.*)$", proc.stdout + proc.stderr, re.M)


TUNE = {"grid": {"fusion.weights.app": [0.0, 0.1, 1.0], "fusion.weights.mm": [0.0, 0.1],
                 "fusion.motion_score": ["mo", "mo_fsk"], "stage2.model.top_k": [2, 1],
                 "stage2.mm_form": ["one_sided"]}, "max_retrain": 1}


def test_tune_reads_validation_only_and_its_config_reruns_only_what_it_changes(workdir):
    r = workdir / "results" / "tiny"
    # config files merge key by key: config.yaml's own grid keys are left out with null
    inherited = yaml.safe_load((REPO / "config.yaml").read_text()).get("tune", {}).get("grid", {})
    TUNE["grid"] = {**{k: None for k in inherited}, **TUNE["grid"]}
    (workdir / "tune.yaml").write_text(yaml.safe_dump({**TINY, "tune": TUNE}))
    # over budget: refused before any rule runs, naming the budget
    over = {**TINY, "tune": {**TUNE, "max_retrain": 0}}  # top_k alone retrains
    (workdir / "tune_over.yaml").write_text(yaml.safe_dump(over))
    proc = snakemake(workdir, "-n", "tune", "--configfile", "tune_over.yaml", check=False)
    assert proc.returncode != 0 and "tune.max_retrain is 0" in proc.stdout + proc.stderr
    # validation never reads a test file: the test masks are gone while tune runs
    masks = workdir / "resources" / "datasets" / "demo"
    test_masks = [p for p in (masks / "gt" / "test_frame_mask").glob("*.npy") if "_v" not in p.stem]
    assert test_masks
    saved = {p: p.read_bytes() for p in test_masks}
    for p in test_masks:
        p.unlink()
    try:
        proc = snakemake(workdir, "-n", "tune", "--configfile", "tune.yaml")
        counts = _counts(proc)
        # top_k retrains; mm_form rescores the main model; both score the validation split alone
        assert counts["train_stage2"] == 1 and counts["score_components"] == 2 and counts["tune"] == 1
        assert not {"fuse_scores", "evaluate", "evaluate_run"} & set(counts)
        made = re.findall(r"^\s+output: (.*)$", proc.stdout + proc.stderr, re.M)
        assert sorted(made) == ["results/tiny/eval/tuning.csv, results/tiny/eval/tuned.yaml",
                                "results/tiny/runs/tune_mm_form-one_sided/scores/segments_val.parquet",
                                "results/tiny/runs/tune_top_k-1/models/stage2.pt",
                                "results/tiny/runs/tune_top_k-1/scores/segments_val.parquet"], made
        snakemake(workdir, "tune", "--configfile", "tune.yaml")
        first = (r / "eval" / "tuning.csv").read_text()
        (r / "eval" / "tuning.csv").unlink()
        snakemake(workdir, "tune", "--configfile", "tune.yaml")
        assert (r / "eval" / "tuning.csv").read_text() == first, "tuning is not deterministic"
        # over training seeds 0 and 1: seed 1's own run and each candidate under seed 1 join, on the validation
        # split alone; seed 0's candidates are kept (only rule tune reruns for them)
        (workdir / "tune_seeds.yaml").write_text(yaml.safe_dump({**TINY, "tune": {**TUNE, "seeds": [0, 1]}}))
        proc = snakemake(workdir, "-n", "-p", "tune", "--configfile", "tune_seeds.yaml")
        made = re.findall(r"^\s+output: (.*)$", proc.stdout + proc.stderr, re.M)
        seed1 = ("/flow/train.h5", "/flow/val.h5", "/models/flow.pt", "/models/stage2.pt",
                 "/scores/segments_val.parquet", "_tune_mm_form-one_sided/scores/segments_val.parquet",
                 "_tune_top_k-1/models/stage2.pt", "_tune_top_k-1/scores/segments_val.parquet")
        assert sorted(made) == ["results/tiny/eval/tuning.csv, results/tiny/eval/tuned.yaml",
                                *(f"results/tiny/runs/seed1{p}" for p in seed1)], made
        assert "main@1=results/tiny/runs/seed1/scores/segments_val.parquet" in proc.stdout + proc.stderr
    finally:
        for p, data in saved.items():
            p.write_bytes(data)
    table = pd.read_csv(r / "eval" / "tuning.csv")
    # 3 candidates (main, top_k=1, one-sided S_mm) x 3 x 2 x 2 fusion settings, best first, the first row chosen
    assert len(table) == 36 and set(table["candidate"]) == {"main", "top_k-1", "mm_form-one_sided"}
    assert table["chosen"].tolist() == [True] + [False] * 35
    assert table["micro_auc"].is_monotonic_decreasing
    tuned = yaml.safe_load((r / "eval" / "tuned.yaml").read_text())
    best = table.iloc[0]
    assert tuned["fusion"] == json.loads(best["fusion"])
    assert (best["candidate"] == "main") == ("stage2" not in tuned)
    # the tuned config reruns only what it changes: fusion settings refuse; a stage-2 winner retrains stage 2
    counts = _counts(snakemake(workdir, "-n", "--configfile", "tiny.yaml", str(r / "eval" / "tuned.yaml")))
    assert "extract_features" not in counts and "train_flow" not in counts and "encode_flow" not in counts
    assert ("train_stage2" in counts) == (best["candidate"] == "top_k-1")
    assert ("score_components" in counts) == (best["candidate"] != "main")
    refused = tuned["fusion"]["weights"] != {"mo": 1.0, "app": 0.1, "mm": 0.1} or tuned["fusion"]["motion_score"] != "mo"
    assert ("fuse_scores" in counts) == (refused or best["candidate"] != "main")
    assert "evaluate" in counts  # the report shows the new tuning table


def _own(score: dict) -> dict:
    """A score's own figures, without its comparison with the fused score (which changes with the fused score)."""
    return {k: v for k, v in score.items() if k != "fused_vs_this"}


def test_ablation_variants_reuse_the_main_stage2_unless_they_change_it(workdir):
    proc = snakemake(workdir, "-n", "ablation")
    out = proc.stdout + proc.stderr
    stats = out.split("Job stats")[-1]
    counts = dict((k, int(v)) for k, v in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M))
    # only the variants with their own stage-2 settings (no_lsta, no_lmo) train; every variant fuses and evaluates
    n = len(yaml.safe_load((REPO / "config.yaml").read_text())["ablation"]["variants"])
    assert counts["train_stage2"] == 2 and counts["score_components"] == 2
    assert counts["fuse_scores"] == n and counts["evaluate_run"] == n and counts["tabulate_ablation"] == 1
    assert "results/tiny/runs/abl_no_lsta/models/stage2.pt" in out and "runs/abl_full/models" not in out
    assert "results/tiny/runs/abl_full/scores/segments" not in out  # fusion-only: the main segment scores
    # two fusion-only variants for real: the main model's segment scores, fused anew
    snakemake(workdir, *(f"results/tiny/runs/abl_{v}/eval/metrics.json" for v in ("no_bsmm", "l1_sim")))
    r = workdir / "results" / "tiny"
    main = json.loads((r / "eval" / "metrics.json").read_text())["scores"]
    for name in ("no_bsmm", "l1_sim"):
        m = json.loads((r / "runs" / f"abl_{name}" / "eval" / "metrics.json").read_text())["scores"]
        assert list(m) == ["nf", "mo", "app", "mm", "fused"]
        assert _own(m["app"]) == _own(main["app"]) and m["fused"] != main["fused"]
        assert "rbdc" in m["fused"]  # variants get RBDC / TBDC from their own fused detections
    # l1_sim swaps S_mo for 1 - cos(f_sk, f_rgb) and fuses it alone
    sim = json.loads((r / "runs" / "abl_l1_sim" / "eval" / "metrics.json").read_text())["scores"]
    assert sim["fused"]["micro_auc"] == pytest.approx(sim["mo"]["micro_auc"])
    assert sim["mo"] != main["mo"]


def test_matching_seeds_target_rewrites_only_the_matching_memory(workdir):
    (workdir / "mseeds.yaml").write_text(yaml.safe_dump({**TINY, "matching_seeds": [0, 3]}))
    proc = snakemake(workdir, "-n", "matching_seeds", "--configfile", "mseeds.yaml")
    stats = (proc.stdout + proc.stderr).split("Job stats")[-1]
    counts = dict((k, int(v)) for k, v in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M))
    # seed 0 is the main run's; seed 3 writes M^r again and is scored, nothing is retrained
    assert counts["rewrite_matching"] == 1 and counts["score_components"] == 1 and counts["evaluate_run"] == 1
    assert "train_stage2" not in counts and "train_flow" not in counts
    snakemake(workdir, "matching_seeds", "--configfile", "mseeds.yaml")
    r = workdir / "results" / "tiny"
    df = pd.read_csv(r / "eval" / "matching_seeds.csv")
    assert list(df.columns[-2:]) == ["seed_0", "seed_3"]
    main = json.loads((r / "eval" / "metrics.json").read_text())["scores"]
    three = json.loads((r / "runs" / "mseed3" / "eval" / "metrics.json").read_text())["scores"]
    assert all(_own(three[c]) == _own(main[c]) for c in ("nf", "mo", "app"))
    assert three["mm"] != main["mm"]
    assert (r / "eval" / "matching_seeds.md").read_text().startswith("# AUC over matching-memory seeds")
    # the next plain run puts the summary into the report (evaluate alone reruns)
    snakemake(workdir, "--configfile", "mseeds.yaml")
    assert '<h2 id="matching-seeds">' in (r / "eval" / "report.html").read_text()


def test_misspelt_config_key_fails_before_any_rule(workdir):
    bad = {**TINY, "flow": {"model": {"n_flow": 3}}}
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "n_flow" in proc.stderr + proc.stdout and "was unexpected" in proc.stderr + proc.stdout


def test_matching_seeds_without_stage2_fail_before_any_rule(workdir):
    bad = {**TINY, "stage2": {**TINY["stage2"], "enabled": False}, "fusion": {"weights": {"nf": 1.0}},
           "matching_seeds": [1]}
    (workdir / "bad_mseeds.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(workdir, "-n", "--configfile", "bad_mseeds.yaml", check=False)
    assert proc.returncode != 0 and "stage2.enabled is false" in proc.stderr + proc.stdout


def test_seeds_target_trains_the_other_seeds_and_reports_mean_and_std(workdir):
    (workdir / "seeds.yaml").write_text(yaml.safe_dump({**TINY, "seeds": [0, 1]}))
    proc = snakemake(workdir, "-n", "seeds", "--configfile", "seeds.yaml")
    stats = (proc.stdout + proc.stderr).split("Job stats")[-1]
    counts = dict((k, int(v)) for k, v in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M))
    # seed 0 is the main run's: only seed 1 trains (its jobs alone, under runs/seed1/); features are shared
    assert counts["train_flow"] == 1 and counts["train_stage2"] == 1 and counts["evaluate_run"] == 1
    assert counts["train_arnet"] == 1 and counts["score_arnet"] == 1
    for rule in ("train_flow", "train_stage2", "train_arnet"):
        assert _outputs(proc, rule) == [f"results/tiny/runs/seed1/models/{rule[6:]}.pt"], rule
    assert "extract_features" not in counts and "extract_snippets" not in counts
    snakemake(workdir, "seeds", "--configfile", "seeds.yaml")
    r = workdir / "results" / "tiny"
    df = pd.read_csv(r / "eval" / "seeds.csv")
    assert list(df.columns[-2:]) == ["seed_0", "seed_1"] and df["n_seeds"].max() == 2
    main = json.loads((r / "eval" / "metrics.json").read_text())["scores"]
    one = json.loads((r / "runs" / "seed1" / "eval" / "metrics.json").read_text())["scores"]
    fused = df[(df["score"] == "fused") & (df["figure"] == "micro_auc")].iloc[0]
    assert fused["seed_0"] == pytest.approx(main["fused"]["micro_auc"], abs=1e-6)
    assert fused["seed_1"] == pytest.approx(one["fused"]["micro_auc"], abs=1e-6)
    assert one["nf"] != main["nf"], "seed 1 trained the same flow as seed 0"
    assert "±" in (r / "eval" / "seeds.md").read_text()
    arnet = df[(df["score"] == "arnet (weak split)") & (df["figure"] == "micro_auc")].iloc[0]
    assert arnet["n_seeds"] == 2 and arnet["seed_0"] != arnet["seed_1"]  # AR-Net trained once per seed
    # the next plain run puts the summary into the report (evaluate alone reruns)
    snakemake(workdir, "--configfile", "seeds.yaml")
    assert '<h2 id="seeds">' in (r / "eval" / "report.html").read_text()


def _start(workdir: Path, config: str, log: Path) -> subprocess.Popen:
    """snakemake in its own process group, as a terminal runs it (Ctrl-C reaches the whole group)."""
    cmd = [sys.executable, "-m", "snakemake", "--configfile", config, "--cores", "1"]

    def ctrl_c_stops_it() -> None:
        # a shell without job control starts background commands (a CI runner's, `make test &`) with SIGINT ignored,
        # and children inherit that: snakemake would then never see the Ctrl-C this test sends
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=workdir, env=snakemake_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=ctrl_c_stops_it)


def _wait_for(what: str, cond, proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    import time

    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def test_interrupted_runs_finish_reuse_artifacts_and_resume_training(workdir):
    """Last in this file: it changes the run. Ctrl-C during extract_features, then a crash (SIGKILL of everything)
    during train_stage2; each rerun finishes the work, keeps what was finished, and training resumes."""
    from mgenet.io import read_features

    r = workdir / "results" / "tiny"
    feats = sorted((r / "features").glob("*.h5"))
    man = pd.read_csv(r / "manifest.csv", dtype={"video": str})
    # two training videos' features: train_stage2 reads them, so it cannot run before the interrupted features jobs
    # (with test videos' features it may run first, and finish before the first Ctrl-C)
    gone = [r / "features" / f"{v}.h5" for v in sorted(man.loc[man["split"] == "train", "video"])[:2]]
    for p in gone:
        p.unlink()
    kept = {p: p.stat().st_mtime_ns for p in feats if p not in gone}
    # more level-1 epochs: a changed stage-2 setting retrains stage 2, slowly enough to be caught mid-run
    long = {**TINY, "stage2": {**TINY["stage2"], "train": {**TINY["stage2"]["train"], "level1_epochs": 40}}}
    (workdir / "long.yaml").write_text(yaml.safe_dump(long))
    log = workdir / "interrupted.log"

    proc = _start(workdir, "long.yaml", log)
    _wait_for("a features job writing", lambda: any((r / "features").glob(".*.h5.tmp*")), proc, log)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert not list(r.rglob(".*.tmp*")), "a killed job left its temporary file"
    for p in (r / "features").glob("*.h5"):
        written, _ = read_features(p, ("tokens", "person_id"))
        assert written["tokens"].shape[0] == written["person_id"].shape[0]

    proc = _start(workdir, "long.yaml", log)
    partial = r / "models" / "stage2.pt.partial"
    _wait_for("a stage-2 epoch checkpoint", partial.exists, proc, log)
    os.killpg(proc.pid, signal.SIGKILL)  # the node is lost: nobody cleans up, the lock stays
    proc.wait(timeout=60)
    assert partial.exists() and not (r / "models" / "stage2.pt").exists()

    snakemake(workdir, "--unlock")
    snakemake(workdir, "--configfile", "long.yaml")
    assert "resuming from" in (r / "logs" / "stage2" / "train_stage2.log").read_text()
    assert (r / "models" / "stage2.pt").exists() and not partial.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items()), "finished features were recomputed"
    assert all(p.exists() for p in feats) and not list(r.rglob(".*.tmp*"))
    proc = snakemake(workdir, "-n", "--configfile", "long.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr
