"""The workflow against hostile names and changing datasets: every shell line quotes what it interpolates, and the
DAG notices when the dataset's files change."""

from __future__ import annotations

import ast
import re
import string
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, copy_workflow, make_stgnf_dataset, run_snakemake

from mgenet.datasets.adapters import SAFE_NAME
from mgenet.io import ALPHAPOSE_SUFFIX

# Interpolations that need no quoting: Snakemake's own integers.
UNQUOTED_OK = {"threads"}


def shell_commands(smk: Path) -> list[tuple[int, str]]:
    """(line number, command) of every `shell:` directive of a rules file, its string literals joined."""
    lines = smk.read_text().splitlines()
    out = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("shell:"):
            indent = len(lines[i]) - len(lines[i].lstrip())
            start, parts = i + 1, []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                if lines[i].strip().startswith(('"', "'")):
                    parts.append(ast.literal_eval(lines[i].strip()))
                i += 1
            out.append((start, "".join(parts)))
            continue
        i += 1
    return out


def unquoted_fields(command: str) -> list[str]:
    """The `{field}` interpolations of a shell command that lack Snakemake's `:q` (shell quoting)."""
    return [field for _, field, spec, _ in string.Formatter().parse(command)
            if field is not None and field not in UNQUOTED_OK and not (spec or "").endswith("q")]


def test_unquoted_fields_finds_what_a_shell_would_split():
    assert unquoted_fields("mgenet x --in {input:q} --out {output} --v {wildcards.video:q} > {log} 2>&1") == [
        "output", "log"]
    assert unquoted_fields("mgenet --threads {threads} x --p {params.a:q}") == []


def test_every_shell_line_of_every_rule_quotes_its_interpolations():
    commands = {(smk.name, line): cmd for smk in sorted((REPO / "workflow" / "rules").rglob("*.smk"))
                for line, cmd in shell_commands(smk)}
    assert len(commands) >= 20  # every rule with a shell line was found (21 at the time of writing)
    bad = {where: unquoted_fields(cmd) for where, cmd in commands.items() if unquoted_fields(cmd)}
    assert bad == {}, f"unquoted interpolations (add :q): {bad}"
    assert all(cmd.startswith("mgenet ") for cmd in commands.values())  # rules stay thin


@pytest.mark.parametrize("name", ["..", ".", "-rf", "a b", "x/../..", "$(touch PWNED)"])
def test_a_dataset_name_that_is_not_one_plain_folder_fails_the_schema(name):
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # the default passes
    config["dataset"]["name"] = name
    with pytest.raises(Exception, match="does not match"):
        validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def test_video_wildcard_allows_exactly_the_names_indexing_allows():
    m = re.search(r'video=r"([^"]+)"', (REPO / "Snakefile").read_text())
    assert m and m.group(1) == SAFE_NAME


# A pose-only dataset (no videos, stage 2 off: S_nf alone) whose root holds a space and a command substitution: every
# path of it reaches the shell lines (the interval table's through fuse_scores' params) and must stay one word.
HOSTILE_ROOT = "data/my $(touch PWNED) set"
POSE_ONLY = {
    "dataset": {"name": "edits", "root": HOSTILE_ROOT, "generate": False, "resolution": [320, 240]},
    "segments": {"seg_len": 12, "train_stride": 3},
    "flow": {"model": {"n_flows": 2}, "train": {"epochs": 1, "batch_size": 64}},
    "stage2": {"enabled": False},
    "crkr": {"enabled": False},  # the two-stream baseline reads the videos a pose-only dataset lacks
    "ablation": {"variants": {}},
}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, "edits.yaml", 1, *args, check=check)


def planned(proc: subprocess.CompletedProcess) -> set[str]:
    """The rules a dry run would run (its job stats table)."""
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return set()
    stats = out.split("Job stats")[-1].split("Reasons")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", stats, re.M)} - {"total", "all"}


@pytest.fixture(scope="module")
def edits(tmp_path_factory) -> Path:
    wd = copy_workflow(tmp_path_factory.mktemp("edits"))
    (wd / "edits.yaml").write_text(yaml.safe_dump(POSE_ONLY))
    root = make_stgnf_dataset(wd / HOSTILE_ROOT, n_frames=60)
    (root / "anomalies.csv").write_text("video,start,end,type,subtype\n01_0014,30,44,motion,running\n")
    snakemake(wd)
    return wd


def test_a_hostile_dataset_root_runs_the_whole_dag_without_running_its_command(edits):
    assert (edits / "results" / "edits" / "eval" / "metrics.json").exists()
    assert not list(edits.rglob("PWNED"))
    assert planned(snakemake(edits, "-n")) == set()  # and a rerun has nothing to do


def test_removing_and_restoring_a_pose_file_reindexes_and_reruns_what_it_touches(edits):
    pose = edits / HOSTILE_ROOT / "pose" / "train" / f"02_001{ALPHAPOSE_SUFFIX}"
    kept = pose.read_bytes()
    pose.unlink()
    try:
        assert "index_dataset" in planned(snakemake(edits, "-n"))
    finally:
        pose.write_bytes(kept)
    # restored as it was: the file set is the indexed one again, so nothing is stale
    assert planned(snakemake(edits, "-n")) == set()
    # removing a test video's pose file (its mask stays) is an error naming the mask, and leaves the manifest alone
    test_pose = edits / HOSTILE_ROOT / "pose" / "test" / f"02_0003{ALPHAPOSE_SUFFIX}"
    kept = test_pose.read_bytes()
    test_pose.unlink()
    try:
        proc = snakemake(edits, "--forcerun", "index_dataset", "results/edits/manifest.csv", check=False)
        log = (edits / "results" / "edits" / "logs" / "data" / "index_dataset.log").read_text()
        assert proc.returncode != 0
        assert "error: 1 test file(s) have no pose file" in log and "test_frame_mask/02_0003.npy" in log
    finally:
        test_pose.write_bytes(kept)
    snakemake(edits, "results/edits/manifest.csv")


def test_editing_a_ground_truth_mask_reruns_fusion_and_evaluation_only(edits):
    mask = edits / HOSTILE_ROOT / "gt" / "test_frame_mask" / "02_0003.npy"
    gt = np.load(mask)
    gt[10:20] = 1  # same length, same size: only its content changes
    np.save(mask, gt)
    assert planned(snakemake(edits, "-n")) == {"fuse_scores", "evaluate"}
    snakemake(edits)
    frames = pd.read_parquet(edits / "results" / "edits" / "scores" / "frames.parquet")
    assert frames.loc[frames["video"] == "02_0003", "gt"].sum() == gt.sum()


def test_a_truncated_artifact_stops_its_reader_with_one_line_and_deleting_it_recovers(edits):
    r = edits / "results" / "edits"
    flow = r / "flow" / "test.h5"
    data = flow.read_bytes()
    flow.write_bytes(data[: len(data) // 2])
    proc = snakemake(edits, check=False)
    assert proc.returncode != 0
    log = (r / "logs" / "score" / "score_components.log").read_text().strip().splitlines()
    assert log[-1].startswith(f"error: {Path('results/edits/flow/test.h5')}: flow scores is unreadable (")
    assert log[-1].endswith("delete it and run snakemake again (rule encode_flow remakes it).")
    assert not list(r.rglob(".*.tmp*"))  # nothing half-written
    flow.unlink()  # the fix the error names
    snakemake(edits)
    assert (r / "eval" / "metrics.json").exists() and planned(snakemake(edits, "-n")) == set()
