"""Errors found while Snakemake builds the DAG are one `error:` line, never a traceback (mgenet.cli.dag), and the rules
run the mgenet beside the Python that runs Snakemake."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO, copy_workflow, make_stgnf_dataset, snakemake_env

from mgenet import MgenetError
from mgenet.cli import dag


def test_dag_errors_keeps_the_signature_snakemake_reads_and_ends_with_one_line(capsys):
    @dag.dag_errors
    def get_thing(wildcards, threads):
        raise MgenetError("thing.txt: not found (some.key): make it")

    assert list(inspect.signature(get_thing).parameters) == ["wildcards", "threads"]
    with pytest.raises(SystemExit) as exit_:
        get_thing(None, 1)
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: thing.txt: not found (some.key): make it\n"

    @dag.dag_errors
    def buggy(wildcards):
        raise KeyError("a bug keeps its traceback")

    with pytest.raises(KeyError):
        buggy(None)


def test_schema_errors_name_the_key():
    from snakemake.utils import validate

    schema = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["flow"]["model"]["n_flow"] = 3
    with pytest.raises(MgenetError, match=r"^config key flow\.model\.n_flow: .*'n_flow' was unexpected"):
        dag.validate_config(lambda d: validate(d, schema), config)
    del config["flow"]["model"]["n_flow"]
    config["segments"] = {"seg_len": "long"}
    with pytest.raises(MgenetError, match=r"^x: config key segments\.seg_len: 'long' is not valid: type"):
        dag.validate_config(lambda d: validate(d, schema), config, where="x: ")


def test_the_rules_mgenet_is_the_running_pythons(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    exe = Path(dag.use_own_mgenet())
    assert exe.is_absolute() and exe.name == "mgenet" and exe.parent == Path(sys.executable).parent
    assert os.environ["PATH"] == f"{exe.parent}:/usr/bin:/bin"
    dag.use_own_mgenet()  # a second parse (a cluster job's) does not stack it again
    assert os.environ["PATH"] == f"{exe.parent}:/usr/bin:/bin"

    class Conda:
        name = "CONDA"

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert dag.use_own_mgenet({Conda()}) == "mgenet" and os.environ["PATH"] == "/usr/bin:/bin"  # the env's own


# Each way Snakemake surfaces an exception, on a Snakefile of its own: raised while the Snakefile is parsed, by an
# input function while the DAG is first built, and by one while the DAG is updated after a checkpoint.
MECHANISM = '''
from mgenet import MgenetError
from mgenet.cli.dag import dag_errors, user_errors

if config["where"] == "parse":
    with user_errors():
        raise MgenetError("parse.yaml: bad (a.key): fix it")

checkpoint made:
    output: "made.txt"
    shell: "echo > {output}"

@dag_errors
def early(wildcards):
    if config["where"] == "input":
        raise MgenetError("early.txt: bad (b.key): fix it")
    return []

@dag_errors
def late(wildcards):
    checkpoints.made.get()
    raise MgenetError("late.txt: bad (c.key): fix it")

rule all:
    input: early, late
    default_target: True
    shell: "true"
'''


@pytest.mark.parametrize("where, line", [("parse", "error: parse.yaml: bad (a.key): fix it"),
                                         ("input", "error: early.txt: bad (b.key): fix it"),
                                         ("checkpoint", "error: late.txt: bad (c.key): fix it")])
def test_each_way_snakemake_shows_an_error_gives_one_line(tmp_path, where, line):
    (tmp_path / "Snakefile").write_text(MECHANISM)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--config", f"where={where}"],
                          cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert [x for x in out.splitlines() if x.startswith("error:")] == [line], out
    if where == "checkpoint":  # Snakemake cancels the run as on Ctrl-C, and says so after the line
        assert "At least one job did not complete successfully" in out
    else:
        assert [x for x in out.splitlines() if "error" in x.lower()] == [line], out
    assert "Traceback" not in out and "File \"" not in out and "InputFunctionException" not in out
    # the lock is released: the next run starts (and stops at the same error, not at a locked directory)
    again = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--config", f"where={where}"],
                           cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True, check=False)
    assert line in again.stderr and "lock" not in again.stderr.lower()


# ------------------------------------------------------------------------------------ the workflow's own errors
POSE_ONLY = {"dataset": {"name": "tiny", "generate": False, "root": "data", "resolution": [320, 240]},
             "segments": {"seg_len": 12}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    w = copy_workflow(tmp_path_factory.mktemp("dag"))
    make_stgnf_dataset(w / "data")
    return w


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def dry_run(workdir: Path, over: dict, name: str) -> str:
    (workdir / f"{name}.yaml").write_text(yaml.safe_dump(_merged(POSE_ONLY, over)))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", f"{name}.yaml"],
                          cwd=workdir, env=snakemake_env(), capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "File \"" not in out, out
    errors = [x for x in out.splitlines() if "error" in x.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: "), out
    return errors[0]


@pytest.mark.parametrize("name, over, expect", [
    ("misspelt", {"flow": {"model": {"n_flow": 3}}}, "config key flow.model.n_flow: "),
    ("badvalue", {"segments": {"seg_len": "long"}}, "config key segments.seg_len: 'long' is not valid"),
    ("layout", {"dataset": {"layout": "avenue"}}, "config key dataset.layout: 'avenue' is not valid"),
    ("noroot", {"dataset": {"root": "nowhere"}}, "nowhere: dataset root not found (dataset.root)"),
    ("checkpoint", {"flow": {"checkpoint": "missing.tar"}}, "missing.tar: STG-NF checkpoint not found"),
    ("mseeds", {"stage2": {"enabled": False}, "matching_seeds": [1]}, "stage2.enabled is false (matching_seeds)"),
    ("variant", {"ablation": {"variants": {"x": {"stage2": {"bogus": 1}}}}},
     "ablation.variants.x: config key stage2.bogus: "),
    ("tune", {"tune": {"grid": {"stage2.model.top_k": [1, 2]}, "max_retrain": 0}}, "tune.max_retrain is 0"),
])
def test_an_error_found_while_the_dag_is_built_is_one_line(workdir, name, over, expect):
    if name == "tune":  # stage 2 has something to tune only on a dataset with videos: the videos exist, empty
        for split, video in (("train", "01_001"), ("train", "02_001"), ("test", "01_0014"), ("test", "02_0003")):
            (workdir / "data" / "videos" / split).mkdir(parents=True, exist_ok=True)
            (workdir / "data" / "videos" / split / f"{video}.mp4").touch()
    try:
        assert expect in dry_run(workdir, over, name)
    finally:
        for p in (workdir / "data" / "videos").rglob("*.mp4"):
            p.unlink()


def test_a_dataset_with_some_videos_missing_names_them(workdir):
    (workdir / "data" / "videos" / "train").mkdir(parents=True, exist_ok=True)
    (workdir / "data" / "videos" / "train" / "01_001.mp4").touch()  # only its existence is looked at
    try:
        line = dry_run(workdir, {}, "some")
    finally:
        (workdir / "data" / "videos" / "train" / "01_001.mp4").unlink()
    assert line.startswith("error: 3 of 4 videos have pose files but no video under data (01_0014, 02_0003, 02_001)")
    assert "stage2.enabled, crkr.enabled, arnet.enabled: false" in line
