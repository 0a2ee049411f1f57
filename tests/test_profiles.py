"""The Snakemake profiles: workflow/profiles/default (a workstation) and workflow/profiles/slurm (a cluster).

The SLURM profile is checked by a dry run (`-n`: nothing is submitted, no sbatch needed) of a copy of the workflow on a
tiny dataset whose manifest is made beforehand, so that the DAG reaches past the index_dataset checkpoint and lists
every per-video job with the resources it would be submitted with.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO, copy_workflow, snakemake_env

from mgenet.cli import main

PROFILES = REPO / "workflow" / "profiles"
# the jobs of every run (the main run's, and its variants' under runs/<run>/) are these rules'
GPU_RULES = ("extract_features", "train_stage2", "score_components", "rewrite_matching", "extract_snippets",
             "train_arnet", "score_arnet")
DEMO = {"n_scenes": 2, "train_videos_per_scene": 1, "test_videos_per_scene": 1, "val_videos_per_scene": 0,
        "frames": 48, "width": 96, "height": 64}


def _profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def _rule_names() -> set[str]:
    names = set()
    for smk in (REPO / "workflow" / "rules").rglob("*.smk"):
        text = smk.read_text()
        names |= set(re.findall(r"^\s*(?:rule|checkpoint) (\w+):", text, re.M))
        names |= set(re.findall(r"^\s*use rule \w+ as (\w+)", text, re.M))
    return names


@pytest.mark.parametrize("name", ["default", "slurm"])
def test_profile_keys_are_snakemake_options_and_rules_exist(name):
    from snakemake.cli import get_argument_parser

    options = {o for a in get_argument_parser()._actions for o in a.option_strings}
    profile = _profile(name)
    unknown = [k for k in profile if f"--{k}" not in options]
    assert not unknown, f"{name} profile: {unknown} are not snakemake options"
    rules = _rule_names()
    for key in ("set-threads", "set-resources"):
        assert set(profile.get(key) or {}) <= rules, f"{name} profile {key} names unknown rules"


def test_slurm_profile_sizes_the_gpu_rules_but_leaves_their_gpus_to_the_config():
    p = _profile("slurm")
    assert p["executor"] == "slurm" and p["jobs"] >= 10 and p["latency-wait"] >= 30 and p["retries"] >= 1
    res = p["set-resources"]
    for rule in GPU_RULES:
        assert p["set-threads"][rule] >= 4 and res[rule]["runtime"] >= 120, rule
    # a fixed `gpu` here would override the rules' config-derived request (gpus() in common.smk)
    assert all("gpu" not in v for v in res.values()) and "gpu" not in p["default-resources"]
    assert "mem_mb" in p["default-resources"] and "runtime" in p["default-resources"]


def _jobs(out: str) -> dict[str, list[dict]]:
    """The dry run's jobs: rule -> [{resources..., "shell": command}]."""
    jobs: dict[str, list[dict]] = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", out)[1:]:
        rule = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block).group(1)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        job = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        job["shell"] = shell.group(1) if shell else ""
        jobs.setdefault(rule, []).append(job)
    return jobs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("wf")
    copy_workflow(wd)
    root = wd / "resources" / "datasets" / "tiny"
    # the generator's weak split, named (a real dataset's is not taken by default): AR-Net's rules are in the DAG
    (wd / "tiny.yaml").write_text(yaml.safe_dump({"dataset": {"name": "tiny", "root": str(root), "generate": False,
                                                              "weak_split": "weak_split.csv"}}))
    # the dataset and its manifest (what make_demo_dataset and the index_dataset checkpoint would make)
    assert main(["make-demo", "--params", json.dumps(DEMO), "--out", str(root)]) == 0
    assert main(["index", "--params", json.dumps({"root": str(root)}), "--out",
                 str(wd / "results" / "tiny" / "manifest.csv")]) == 0
    return wd


def _dry_run(workdir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "-n", "--configfile",
           "tiny.yaml", "--executor", "slurm", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def test_slurm_dry_run_lists_every_job_with_its_resources(workdir):
    out = _dry_run(workdir)
    assert "Using profile workflow/profiles/slurm" in out
    jobs = _jobs(out)
    assert len(jobs["import_pose"]) == len(jobs["build_segments"]) == len(jobs["extract_features"]) == 4
    for job in jobs["extract_features"]:
        assert job["gpu"] == "1" and job["mem_mb"] == "8000" and job["runtime"] == "120"
    for rule in ("train_stage2", "score_components"):
        assert jobs[rule][0]["gpu"] == "1", rule
    for rule in ("import_pose", "build_segments", "train_flow", "encode_flow", "fuse_scores", "evaluate"):
        assert all("gpu" not in job for job in jobs[rule]), rule
    assert jobs["import_pose"][0]["runtime"] == "10" and jobs["fuse_scores"][0]["runtime"] == "30"
    assert not list((workdir / "results" / "tiny").glob("segments/*")), "a dry run made files"


def test_slurm_dry_run_of_the_ablations_and_pose_extraction(workdir):
    # --cores lifts the dry run's cap of one thread per job, which a real cluster run does not have
    out = _dry_run(workdir, "--cores", "16", "--config", "pose={'source': 'extract'}", "--", "ablation")
    jobs = _jobs(out)
    # the variants that retrain stage 2 (config.yaml's no_lsta, no_lmo) are jobs of the main run's rules
    trained = [j for j in jobs["train_stage2"] if "results/tiny/runs/abl_" in j["shell"]]
    scored = [j for j in jobs["score_components"] if "results/tiny/runs/abl_" in j["shell"]]
    assert len(trained) == 2 and len(scored) == 2
    assert all(j["gpu"] == "1" for j in trained + scored)
    assert all("--threads 8 train-stage2" in j["shell"] for j in trained)
    assert all(j["mem_mb"] == "16000" for j in trained)  # 16000 * attempt, first attempt
    assert len(jobs["extract_pose"]) == 4 and "import_pose" not in jobs
    assert all(j["runtime"] == "240" and "--threads 4 pose" in j["shell"] for j in jobs["extract_pose"])
    assert "--threads 8 features" in jobs["extract_features"][0]["shell"]


def test_slurm_gpu_requests_follow_device_and_stage2(workdir):
    # device: cpu asks no rule for a GPU, seed and matching-seed copies included (a cluster without GPUs runs it)
    # (the generator's weak split, so that AR-Net's rules run: the dataset is not generated by the DAG here)
    (workdir / "cpu.yaml").write_text(yaml.safe_dump({"device": "cpu", "seeds": [0, 1], "matching_seeds": [0, 1],
                                                      "dataset": {"weak_split": "weak_split.csv"}}))
    out = _dry_run(workdir, "--configfile", "tiny.yaml", "cpu.yaml", "--cores", "1", "all", "seeds", "matching_seeds",
                   "ablation")
    jobs = _jobs(out)
    ran = [rule for rule in GPU_RULES if rule in jobs]
    assert len(ran) == len(GPU_RULES), set(GPU_RULES) - set(ran)
    # the seed's and the matching seed's jobs are among them
    for rule, run in (("train_stage2", "seed1"), ("score_components", "seed1"), ("rewrite_matching", "mseed1"),
                      ("score_components", "mseed1"), ("train_arnet", "seed1"), ("score_arnet", "seed1"),
                      ("train_stage2", "abl_no_lsta")):
        assert any(f"results/tiny/runs/{run}/" in job["shell"] for job in jobs[rule]), (rule, run)
    for rule in GPU_RULES:
        assert all(job.get("gpu", "0") == "0" for job in jobs[rule]), rule
    # stage 2 off: score_components reads the flow file and asks for nothing (sbatch refuses --gpus where there are
    # none), and no features are extracted at all (a pose-only run)
    (workdir / "nf.yaml").write_text(yaml.safe_dump({"stage2": {"enabled": False}, "fusion": {"weights": {"nf": 1.0}}}))
    out = _dry_run(workdir, "--configfile", "tiny.yaml", "nf.yaml", "--cores", "1")
    jobs = _jobs(out)
    assert "train_stage2" not in jobs and "gpu" not in jobs["score_components"][0]
    assert "extract_features" not in jobs


def test_default_profile_dry_run(workdir):
    cmd = [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/default", "-n", "--configfile",
           "tiny.yaml"]
    proc = subprocess.run(cmd, cwd=workdir, env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Using profile workflow/profiles/default" in proc.stderr
    # the Snakefile sits at the root, so Snakemake does not apply workflow/profiles/default unasked
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "tiny.yaml"],
                          cwd=workdir, env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode == 0 and "profile" not in proc.stderr, proc.stderr[-2000:]


def test_pose_only_run_extracts_no_features(workdir):
    # stage2.enabled: false reads no features: neither rule all nor the report may ask for the backbone
    (workdir / "pose_only.yaml").write_text(yaml.safe_dump({"stage2": {"enabled": False}}))
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "tiny.yaml", "pose_only.yaml"]
    proc = subprocess.run(cmd, cwd=workdir, env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = _jobs(proc.stdout + proc.stderr)
    assert "extract_features" not in jobs and "train_stage2" not in jobs
    assert len(jobs["build_segments"]) == 4 and "evaluate" in jobs
    # the same dry run with stage 2 extracts every video's features
    proc = subprocess.run(cmd[:-1], cwd=workdir, env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(_jobs(proc.stdout + proc.stderr)["extract_features"]) == 4
