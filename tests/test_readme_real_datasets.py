"""The README's "Real datasets" recipe, copied as written, on a pose-only dataset in STG-NF's ShanghaiTech layout (pose
files and test masks, no videos), run as `.venv/bin/snakemake` without an activated environment: it runs to
metrics.json, saying once at start what it leaves out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO, copy_workflow, make_stgnf_dataset

SNAKEMAKE = Path(sys.executable).parent / "snakemake"  # the environment's own, by its path


def readme_recipe() -> dict:
    """The first YAML block of the README's "Real datasets" section."""
    section = (REPO / "README.md").read_text().split("\n## Real datasets\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block, "README: no yaml block under 'Real datasets'"
    return yaml.safe_load(block.group(1))


@pytest.mark.skipif(not SNAKEMAKE.is_file(), reason=f"no snakemake beside {sys.executable}")
def test_the_readme_recipe_runs_pose_only_with_the_venvs_snakemake_and_no_activated_env(tmp_path):
    recipe = readme_recipe()
    workdir = copy_workflow(tmp_path)
    make_stgnf_dataset(workdir / recipe["dataset"]["root"])
    (workdir / "my.yaml").write_text(yaml.safe_dump(recipe))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env["PATH"] = "/usr/bin:/bin"  # neither the environment's bin nor an `mgenet` on it
    proc = subprocess.run([str(SNAKEMAKE), "--cores", "2", "--configfile", "my.yaml"], cwd=workdir, env=env,
                          capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    logs = "\n".join(p.read_text()[-1000:] for p in workdir.glob("results/*/logs/**/*.log"))
    assert proc.returncode == 0, out[-3000:] + logs
    assert "command not found" not in logs
    said = [x for x in out.splitlines() if "pose-only dataset" in x]
    assert len(said) == 1 and "stage 2" in said[0] and "CR/KR" in said[0] and "AR-Net" in said[0]
    assert not [x for x in out.splitlines() if x.startswith("mgenet: ") and x not in said]  # the one line at start
    metrics = json.loads((workdir / "results" / recipe["dataset"]["name"] / "eval" / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"nf", "fused"} and metrics["n_videos"] == 2
    assert (workdir / "results" / recipe["dataset"]["name"] / "eval" / "report.html").is_file()
