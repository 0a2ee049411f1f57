"""The workflow against an unlucky user: Snakemake killed during a long job (the job dies with it and publishes
nothing), a job's shell killed, a full disk (one error line, nothing half-written), a dataset without a validation
split asked to tune. On a pose-only dataset (STG-NF's layout, no videos), which runs in seconds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import copy_workflow, make_stgnf_dataset, mount_tmpfs, run_snakemake, snakemake_env, wait_gone

POSE_ONLY = {
    "dataset": {"name": "hostile", "root": "data/set", "generate": False, "resolution": [320, 240]},
    "segments": {"seg_len": 12, "train_stride": 3},
    "flow": {"model": {"n_flows": 2}, "train": {"epochs": 1, "batch_size": 64}},
    "stage2": {"enabled": False},
    "crkr": {"enabled": False},
    "ablation": {"variants": {}},
}
LONG = {**POSE_ONLY, "flow": {**POSE_ONLY["flow"], "train": {"epochs": 5000, "batch_size": 64}}}
FLOW = Path("results/hostile/models/flow.pt")


@pytest.fixture(scope="module")
def wd(tmp_path_factory) -> Path:
    wd = copy_workflow(tmp_path_factory.mktemp("hostile"))
    (wd / "short.yaml").write_text(yaml.safe_dump(POSE_ONLY))
    (wd / "long.yaml").write_text(yaml.safe_dump(LONG))
    make_stgnf_dataset(wd / "data" / "set", n_frames=60)
    run_snakemake(wd, "short.yaml", 1, "results/hostile/manifest.csv")
    return wd


def is_train_flow(p: psutil.Process) -> bool:
    try:
        cmd = p.cmdline()
    except psutil.Error:  # a short-lived process, already gone
        return False
    return "train-flow" in cmd and "mgenet" in " ".join(cmd[:2])


def start_long_training(wd: Path) -> tuple[subprocess.Popen, psutil.Process, psutil.Process]:
    """Snakemake on the long config, its train_flow job's shell and the job's `mgenet` process, once training runs."""
    (wd / FLOW).unlink(missing_ok=True)
    log = open(wd / "snakemake.log", "w")  # noqa: SIM115 - closed with the test's process
    sm = subprocess.Popen([sys.executable, "-m", "snakemake", "--configfile", "long.yaml", "--cores", "1", str(FLOW)],
                          cwd=wd, env=snakemake_env(), stdout=log, stderr=subprocess.STDOUT)
    train_log = wd / "results" / "hostile" / "logs" / "flow" / "train_flow.log"
    t0 = time.monotonic()
    while True:
        jobs = [p for p in psutil.Process(sm.pid).children(recursive=True) if is_train_flow(p)]
        if jobs and train_log.exists() and "epoch 2/" in train_log.read_text():
            return sm, jobs[0].parent(), jobs[0]
        if sm.poll() is not None or time.monotonic() - t0 > 180:
            sm.kill()
            raise AssertionError(f"train_flow did not start:\n{(wd / 'snakemake.log').read_text()[-3000:]}")
        time.sleep(0.2)


def test_killing_snakemake_stops_its_job_and_a_rerun_keeps_its_own_output(wd):
    sm, _, job = start_long_training(wd)
    sm.send_signal(signal.SIGKILL)  # Snakemake only: its job and the job's shell are left behind
    sm.wait()
    # the sequence: unlock, rerun with another config at once; the orphan must not replace its output
    run_snakemake(wd, "short.yaml", 1, "--unlock")
    run_snakemake(wd, "short.yaml", 1, str(FLOW))
    written = (wd / FLOW).stat().st_mtime_ns
    wait_gone(job, 60)
    time.sleep(2)
    assert (wd / FLOW).stat().st_mtime_ns == written, "the orphaned job replaced the rerun's flow.pt"
    import torch

    assert len(torch.load(wd / FLOW, weights_only=True)["history"]) == 1  # the rerun's 1 epoch, not the orphan's
    assert not list((wd / "results").rglob(".*.tmp*"))
    proc = run_snakemake(wd, "short.yaml", 1, "-n", str(FLOW))
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_killing_a_jobs_shell_stops_the_job_before_it_writes(wd):
    sm, shell, job = start_long_training(wd)
    shell.send_signal(signal.SIGKILL)
    wait_gone(job, 60)
    sm.wait(timeout=120)
    assert sm.returncode != 0  # Snakemake reports the job failed ...
    time.sleep(2)
    assert not (wd / FLOW).exists()  # ... and nothing appears afterwards for a rerun to accept
    assert not list((wd / "results").rglob(".*.tmp*"))
    log = (wd / "results" / "hostile" / "logs" / "flow" / "train_flow.log").read_text()
    assert "error: job stopped: the Snakemake run that started this job is gone (the job's shell bash (pid" in log
    assert "Traceback" not in log


def test_a_full_disk_is_one_error_line_and_leaves_nothing_half_written(wd, tmp_path):
    full = copy_workflow(tmp_path)
    (full / "full.yaml").write_text(yaml.safe_dump({**POSE_ONLY, "dataset": {**POSE_ONLY["dataset"], "name": "full",
                                                                             "root": str(wd / "data" / "set")}}))
    results = full / "results" / "full"
    mount_tmpfs(results, "1m")  # the test set's segments alone need 0.8 MB
    try:
        proc = run_snakemake(full, "full.yaml", 1, "--keep-going", check=False)
        assert proc.returncode != 0
        logs = {p: p.read_text() for p in (results / "logs").rglob("*.log")}
        failed = {p: text for p, text in logs.items() if "error:" in text}
        assert failed, proc.stderr[-3000:]
        for p, text in failed.items():  # the log is not empty, and ends with the one line
            last = text.strip().splitlines()[-1]
            assert last.startswith("error: results/full/") and " no space left on device (" in last, (p, text)
            assert "MB free)" in last
        for text in [proc.stdout + proc.stderr, *logs.values()]:
            assert "Traceback" not in text and "Segmentation fault" not in text
        assert not list(results.rglob(".*.tmp*"))  # no partial file, and no half-written artifact
        for h5 in results.rglob("*.h5"):
            from mgenet.io import read_attrs

            read_attrs(h5, "artifact")
    finally:
        subprocess.run(["umount", str(results)], check=False)


def test_tune_without_a_validation_split_is_one_line_at_dag_build(wd):
    proc = run_snakemake(wd, "short.yaml", 1, "tune", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert ("results/hostile/manifest.csv: dataset hostile has no validation split, and `snakemake tune` chooses "
            "settings on the validation split only") in out
    assert "expected at least one argument" not in out  # it no longer reaches encode_flow
    assert "Traceback" not in out and "InputFunctionException" not in out
    assert not (wd / "results" / "hostile" / "flow" / "val.h5").exists()
    assert not list((wd / "results" / "hostile" / "logs").rglob("*val*"))


def test_tuned_yaml_names_the_users_own_config_files(tmp_path):
    wd = copy_workflow(tmp_path)
    root = make_stgnf_dataset(wd / "data" / "set", n_frames=60)
    (root / "pose" / "val").mkdir()
    for v in ("01_0014", "02_0003"):  # a validation split: the test videos under other names
        src = next((root / "pose" / "test").glob(f"{v}_*"))
        (root / "pose" / "val" / src.name.replace(v, f"{v}9")).write_bytes(src.read_bytes())
        mask = root / "gt" / "test_frame_mask"
        (mask / f"{v}9.npy").write_bytes((mask / f"{v}.npy").read_bytes())
    (wd / "my run.yaml").write_text(yaml.safe_dump(POSE_ONLY))
    (wd / "grid.yaml").write_text(yaml.safe_dump({"tune": {"grid": {"fusion.weights.nf": [1.0, 2.0]}}}))
    run_snakemake(wd, "my run.yaml", 1, "--configfile", "my run.yaml", "grid.yaml", "--cores", "1", "tune")
    header = (wd / "results" / "hostile" / "eval" / "tuned.yaml").read_text().splitlines()[1]
    assert header == ("# Use it with: snakemake --configfile config.yaml 'my run.yaml' grid.yaml "
                      "results/hostile/eval/tuned.yaml")


def test_a_manifest_cut_short_stops_the_dag_naming_it(wd):
    manifest = wd / "results" / "hostile" / "manifest.csv"
    kept = manifest.read_bytes()
    manifest.write_bytes(kept[: len(kept) // 2 + 3])
    try:
        proc = run_snakemake(wd, "short.yaml", 1, "-n", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "results/hostile/manifest.csv: manifest is unreadable (cut short: its last row is incomplete)" in out
        assert "Traceback" not in out and "InputFunctionException" not in out
    finally:
        manifest.write_bytes(kept)
