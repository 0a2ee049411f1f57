"""A job dies with the Snakemake run that started it and publishes nothing after it (mgenet.io.owner): here with a
stand-in `snakemake` (a Python script of that name) that starts a job through a shell, as Snakemake does; the real
run is in tests/test_workflow_hostile.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from helpers import wait_gone

from mgenet.io.owner import _is_snakemake

SRC = Path(__file__).resolve().parents[2] / "src"


def test_snakemake_is_recognised_by_its_script_or_module_name():
    assert _is_snakemake(["/venv/bin/python", "/venv/bin/snakemake", "--cores", "1"])
    assert _is_snakemake(["python3", "-m", "snakemake", "-n"])
    assert _is_snakemake(["snakemake"])
    assert not _is_snakemake(["/usr/bin/bash", "-c", "set -euo pipefail; mgenet train-flow --out results/a/snakemake"])
    assert not _is_snakemake(["python", "-m", "pytest", "tests/snakemake"])


JOB = """
import sys, time
from pathlib import Path
from mgenet.io import owner, write_json
mode, target = sys.argv[1], Path(sys.argv[2])
if mode == "watch":
    assert owner.watch_run(poll_s=0.1, grace_s=10)
else:  # no watchdog: only the check before the rename
    owner._owners[:] = owner.find_owners()
    assert owner._owners
Path(str(target) + ".ready").write_text("")
if mode == "watch":
    time.sleep(60)  # a long job; the watchdog ends it
else:
    while owner.gone() is None:
        time.sleep(0.05)
try:
    write_json({"stale": True}, target)
except owner.RunGoneError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
"""

FAKE_SNAKEMAKE = """
import subprocess, sys, time
job = subprocess.Popen(["bash", "-c", 'set -euo pipefail; "$0" "$@"; true', *sys.argv[1:]])
print(job.pid, flush=True)
job.wait()
time.sleep(60)
"""


def start_job(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, psutil.Process, psutil.Process, Path]:
    """The stand-in snakemake, its job's shell and the job (a Python process), and the job's target."""
    (tmp_path / "job.py").write_text(textwrap.dedent(JOB))
    (tmp_path / "snakemake").write_text(textwrap.dedent(FAKE_SNAKEMAKE))
    target = tmp_path / "out" / "result.json"
    target.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    err = open(tmp_path / "job.err", "w")  # noqa: SIM115 - the job's stderr, read after it ends
    sm = subprocess.Popen([sys.executable, str(tmp_path / "snakemake"), sys.executable, str(tmp_path / "job.py"),
                           mode, str(target)], stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    shell = psutil.Process(int(sm.stdout.readline()))
    t0 = time.monotonic()
    while not Path(str(target) + ".ready").exists():
        assert time.monotonic() - t0 < 60 and sm.poll() is None, (tmp_path / "job.err").read_text()
        time.sleep(0.05)
    job = next(p for p in shell.children() if "job.py" in " ".join(p.cmdline()))
    return sm, shell, job, target


@pytest.mark.parametrize("victim", ["snakemake", "shell"])
def test_a_job_stops_when_snakemake_or_its_shell_is_killed(tmp_path, victim):
    sm, shell, job, target = start_job(tmp_path, "watch")
    try:
        (sm if victim == "snakemake" else shell).send_signal(signal.SIGKILL)
        wait_gone(job, 30)
    finally:
        sm.kill()
        sm.wait()
    err = (tmp_path / "job.err").read_text()
    assert "error: job stopped: the Snakemake run that started this job is gone (" in err
    assert ("snakemake (pid" if victim == "snakemake" else "the job's shell bash (pid") in err
    assert "Traceback" not in err
    assert not target.exists() and not list(target.parent.glob(".*.tmp*"))


def test_a_job_whose_run_is_gone_does_not_rename_its_output(tmp_path):
    sm, _, job, target = start_job(tmp_path, "check")
    try:
        sm.kill()
        wait_gone(job, 30)
    finally:
        sm.wait()
    assert not target.exists() and not list(target.parent.glob(".*.tmp*"))
    err = (tmp_path / "job.err").read_text()
    assert f"error: {target}: not written: the Snakemake run that started this job is gone (snakemake (pid" in err


def test_without_snakemake_nothing_is_watched():
    from mgenet.io import owner

    assert owner.find_owners() == [] and owner.watch_run() is False
    owner.ensure_alive()  # no run to lose
