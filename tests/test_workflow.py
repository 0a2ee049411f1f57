"""The whole DAG, as a user runs it: `snakemake` on a tiny synthetic config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "dataset": {"name": "tiny"},
    "demo": {"n_scenes": 3, "train_videos_per_scene": 2, "test_videos_per_scene": 2, "frames": 120,
             "width": 160, "height": 120},
    "segments": {"seg_len": 12, "train_stride": 3},
    "flow": {"model": {"n_flows": 4}, "train": {"epochs": 6, "batch_size": 64, "lr": 0.001}},
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "tiny.yaml", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in workdir.glob("results/*/logs/**/*.log"))
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-4000:]}\n{logs}")
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, wd / name)
    shutil.copytree(REPO / "workflow", wd / "workflow")
    shutil.copytree(REPO / "envs", wd / "envs")
    (wd / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    snakemake(wd)
    return wd


def test_whole_dag_produces_every_artifact(workdir):
    r = workdir / "results" / "tiny"
    man = pd.read_csv(r / "manifest.csv", dtype={"video": str})
    assert set(man["split"]) == {"train", "test"} and len(man) == 12
    for video in man["video"]:
        assert (r / "pose" / f"{video}.json").exists()
        assert (r / "segments" / f"{video}.h5").exists()
    assert (r / "models" / "flow.pt").exists() and (r / "flow" / "test.h5").exists()
    frames = pd.read_parquet(r / "scores" / "frames.parquet")
    assert len(frames) == man.loc[man["split"] == "test", "frames"].sum()
    html = (r / "eval" / "report.html").read_text()
    assert "data:image/png;base64" in html
    n_test = (man["split"] == "test").sum()
    assert len(list((r / "eval" / "plots").glob("*.png"))) >= n_test
    assert (r / "benchmarks" / "train_flow.tsv").exists()
    assert not list(r.rglob(".*.tmp*")), "temporary files left behind"


def test_metrics_contract_and_auc_above_chance(workdir):
    m = json.loads((workdir / "results" / "tiny" / "eval" / "metrics.json").read_text())
    assert m["dataset"] == "tiny" and m["n_videos"] == 6 and m["n_frames"] == 6 * 120
    assert set(m["scores"]) == {"nf", "fused"}
    for s in m["scores"].values():
        assert set(s) == {"micro_auc", "macro_auc", "by_type"}
        assert set(s["by_type"]) <= {"motion", "appearance", "scene"}
    # a flow trained for seconds on 6 tiny videos must still rank running/jumping/falling far above chance
    assert m["scores"]["nf"]["by_type"]["motion"] > 0.7
    assert m["scores"]["fused"]["micro_auc"] == pytest.approx(m["scores"]["nf"]["micro_auc"])


def test_rerun_is_a_no_op_and_a_param_change_reruns_only_downstream(workdir):
    proc = snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    changed = {**TINY, "score": {"smoothing_sigmas": [2]}}
    (workdir / "changed.yaml").write_text(yaml.safe_dump(changed))
    proc = snakemake(workdir, "-n", "--configfile", "changed.yaml")
    out = proc.stdout + proc.stderr
    assert "fuse_scores" in out and "evaluate" in out
    for upstream in ("train_flow", "encode_flow", "build_segments", "import_pose", "make_demo_dataset"):
        assert upstream not in out.split("Job stats")[-1], f"{upstream} would rerun:\n{out}"


def test_misspelt_config_key_fails_before_any_rule(workdir):
    bad = {**TINY, "flow": {"model": {"n_flow": 3}}}
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "n_flow" in proc.stderr + proc.stdout and "was unexpected" in proc.stderr + proc.stdout
