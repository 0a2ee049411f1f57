"""The SLURM profile on a real SLURM: a single-node cluster on this machine (scripts/slurm_single_node.sh) runs the
tiny pose-only DAG (stage 2 off) through `snakemake --profile workflow/profiles/slurm` to metrics.json.

Needs Debian's slurm-wlm and munge and root (`.ci/run` installs them in CI); skipped with the reason otherwise. The
cluster has no accounting, so the run uses `--slurm-status-command squeue`, as the README says for such clusters. The
plugin checks the jobs' status `init` seconds after a job ends, then after init + 10, init + 20, ... more; init = 5
(the plugin's default is 40) finds a job of this DAG (~15 s, two snakemake start-ups) done at the second check, so
each of the DAG's 8 levels takes ~20 s. One training and one test video keep each level to one wave of jobs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import REPO, copy_workflow, make_stgnf_dataset, snakemake_env

SCRIPT = REPO / "scripts" / "slurm_single_node.sh"
PROGRAMS = ("sbatch", "squeue", "scancel", "sinfo", "slurmctld", "slurmd", "munged", "mungekey")


def _why_not() -> str:
    """Why a single-node SLURM cannot start here ("" when it can)."""
    missing = [p for p in PROGRAMS if not shutil.which(p, path=f"{os.environ['PATH']}:/usr/sbin:/sbin")]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge; .ci/run does in CI)"
    if os.geteuid() != 0:
        return "slurmd must start as root"
    if Path("/etc/slurm/slurm.conf").exists():
        return "/etc/slurm/slurm.conf exists: this machine is a client of another SLURM"
    if subprocess.run(["pgrep", "-x", "slurmd"], capture_output=True).returncode == 0:
        return "a slurmd already runs on this machine"
    return ""


pytestmark = pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "-")

# two test threads at most, the same for the local and the SLURM run, so that torch computes the same numbers
THREADS = min(2, os.cpu_count() or 1)
TINY = {
    "dataset": {"name": "tiny", "generate": False, "resolution": [320, 240]},
    "segments": {"seg_len": 12, "train_stride": 3},
    "flow": {"model": {"n_flows": 2}, "train": {"epochs": 2, "batch_size": 32}},
    "stage2": {"enabled": False},
    "fusion": {"weights": {"nf": 1.0}},
    "crkr": {"enabled": False},  # the two-stream baseline reads the videos a pose-only dataset lacks
}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")


def _workdir(path: Path) -> Path:
    """A copy of the workflow and a pose-only ShanghaiTech-layout dataset of one training and one test video."""
    copy_workflow(path)
    root = make_stgnf_dataset(path / "data", n_frames=60)
    for extra in ("pose/train/02_001*", "pose/test/02_0003*", "gt/test_frame_mask/02_0003*"):
        for f in root.glob(extra):
            f.unlink()
    (path / "tiny.yaml").write_text(yaml.safe_dump({**TINY, "dataset": {**TINY["dataset"], "root": str(root)}}))
    return path


def _node_mb() -> int:
    return int(subprocess.run(["sinfo", "-h", "-N", "-o", "%m"], capture_output=True, text=True, check=True).stdout)


def _memory_args(node_mb: int) -> list[str]:
    """The profile's set-resources with every mem_mb above the node's memory lowered to it (sbatch refuses a --mem
    no node has; the profile is sized for ShanghaiTech), or nothing when every request fits as it is. On the command
    line, --set-resources replaces the profile's whole list, so the list is given in full."""
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    entries, capped = [], False
    for rule, res in profile["set-resources"].items():
        for key, value in res.items():
            if key == "mem_mb":
                first = int(str(value).split("*")[0])  # "16000 * attempt" -> 16000 at the first attempt
                if first > node_mb:
                    value, capped = node_mb, True
            entries.append(f"{rule}:{key}={value}")
    return ["--set-resources", *entries] if capped else []


def _slurm_cmd(node_mb: int) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "--configfile", "tiny.yaml",
            "--max-threads", str(THREADS), "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs", *_memory_args(node_mb)]


def _jobs_in_slurm() -> dict[str, tuple[str, str]]:
    """Every job slurmctld remembers (finished ones for MinJobAge = 300 s): id -> (state, comment = rule)."""
    out = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True,
                         check=True).stdout
    return {i: (state, comment) for i, state, comment in (line.split("|", 2) for line in out.splitlines())}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("slurm")
    proc = subprocess.run([str(SCRIPT), "start", str(d)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    yield d
    subprocess.run([str(SCRIPT), "stop", str(d)], check=True)


@pytest.fixture(scope="module")
def local_metrics(tmp_path_factory) -> dict:
    wd = _workdir(tmp_path_factory.mktemp("local"))
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "tiny.yaml", "--cores", str(THREADS)]
    proc = subprocess.run(cmd, cwd=wd, env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((wd / "results" / "tiny" / "eval" / "metrics.json").read_text())


def _bare_env() -> dict[str, str]:
    """The environment without this interpreter's bin on PATH: each job's Snakemake (the same interpreter, started by
    the plugin) must find the rules' mgenet by itself (mgenet.cli.dag.use_own_mgenet), as a user's unactivated
    `.venv/bin/snakemake --profile workflow/profiles/slurm` does."""
    return {**snakemake_env(), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """The tiny DAG through the SLURM profile, with train_flow's job cancelled (scancel) while it trains: once its
    log exists, i.e. once the job's shell has started `mgenet train-flow`."""
    wd = _workdir(tmp_path_factory.mktemp("wf"))
    log = wd / "snakemake.log"
    before = set(_jobs_in_slurm())
    with log.open("w") as out:
        proc = subprocess.Popen(_slurm_cmd(_node_mb()), cwd=wd, env=_bare_env(), stdout=out,
                                stderr=subprocess.STDOUT)
    cancelled = None
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        if cancelled is None:
            running = [i for i, (state, rule) in _jobs_in_slurm().items()
                       if i not in before and rule == "rule_train_flow" and state == "RUNNING"]
            if running and (wd / "results" / "tiny" / "logs" / "flow" / "train_flow.log").exists():
                cancelled = running[0]
                subprocess.run(["scancel", cancelled], check=True)
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
        raise AssertionError(f"the SLURM run did not end in 900 s:\n{log.read_text()[-4000:]}")
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    jobs = {i: v for i, v in _jobs_in_slurm().items() if i not in before}
    return {"wd": wd, "log": text, "cancelled": cancelled, "jobs": jobs, "cmd": _slurm_cmd(_node_mb())}


def test_every_job_of_the_dag_ran_as_a_slurm_job(run):
    text, wd = run["log"], run["wd"]
    # the jobs snakemake ran (localrule `all` only gathers the targets), each submitted with sbatch
    ran = re.findall(r"^(?:rule|checkpoint) (\w+):", text, re.M)
    submitted = SUBMITTED.findall(text)
    assert "localrule all:" in text and len(ran) == len(submitted)
    assert sorted(set(ran)) == ["build_segments", "encode_flow", "evaluate", "fuse_scores", "import_pose",
                                "index_dataset", "score_components", "train_flow"]
    assert ran.count("import_pose") == ran.count("build_segments") == 2  # one job per video
    # the plugin's log of every job: one per submission, under .snakemake/slurm_logs/rule_<rule>/
    logs = [Path(path) for _, path in submitted]
    assert all(p.is_file() for p in logs)
    rule_dirs = [p.relative_to(wd / ".snakemake" / "slurm_logs").parts[0] for p in logs]
    assert sorted(rule_dirs) == sorted(f"rule_{r}" for r in ran)
    # slurmctld's view: the same job ids, all completed but the cancelled one
    assert set(run["jobs"]) == {i for i, _ in submitted}
    states = {i: state for i, (state, _) in run["jobs"].items()}
    assert states.pop(run["cancelled"]) == "CANCELLED"
    assert set(states.values()) == {"COMPLETED"}


def test_a_cancelled_job_is_retried_and_the_run_completes(run):
    text, wd = run["log"], run["wd"]
    assert run["cancelled"], "train_flow's SLURM job was never seen running"
    assert f"SLURM-job '{run['cancelled']}' failed, SLURM status is: 'CANCELLED'" in text
    assert "Trying to restart job" in text
    assert re.findall(r"^rule (\w+):", text, re.M).count("train_flow") == 2
    assert len(list((wd / ".snakemake" / "slurm_logs" / "rule_train_flow").glob("*.log"))) == 2
    assert "11 of 11 steps (100%) done" in text  # 10 SLURM jobs and `all`
    assert (wd / "results" / "tiny" / "models" / "flow.pt").is_file()


def test_metrics_equal_a_local_run(run, local_metrics):
    metrics = json.loads((run["wd"] / "results" / "tiny" / "eval" / "metrics.json").read_text())
    assert metrics == local_metrics
    assert metrics["n_videos"] == 1 and set(metrics["scores"]) == {"nf", "fused"}


def test_a_rerun_submits_nothing(run):
    before = set(_jobs_in_slurm())
    proc = subprocess.run(run["cmd"], cwd=run["wd"], env=snakemake_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stderr and not SUBMITTED.search(proc.stderr + proc.stdout)
    assert set(_jobs_in_slurm()) == before
