"""The Snakemake run that started this job, so that a job dies with it and never publishes an artifact after it.

Why: Snakemake starts a job as ``snakemake -> shell -> mgenet``. If Snakemake is killed outright (``kill -9``, an OOM
kill, a lost login shell) or the job's shell is killed, nothing stops the ``mgenet`` process: it runs on, and its atomic
rename then replaces the artifact a later run has made (or one Snakemake has already reported as failed), so the later
run accepts a stale file. Snakemake's own lock (``.snakemake/locks``) is a plain file, not an OS lock, so it cannot
tell a job that its run is gone.

The choice made here: at start, a job records its ancestors from its parent up to the nearest ``snakemake`` process
(pid and start time, so a reused pid is not taken for the same process). Then

- a watchdog thread checks them every :data:`POLL_S` seconds; when one is gone the job stops itself (SIGTERM to
  itself, which unwinds like Ctrl-C and removes its temporary files; :data:`GRACE_S` seconds later, ``os._exit``);
- :func:`mgenet.io.atomic_path` checks them again just before its rename, so a job that outlived its run by less than
  one poll still does not publish its output.

A job with no ``snakemake`` ancestor (run by hand from a terminal) watches nothing. On a cluster, Snakemake starts each
job through a ``snakemake`` process inside the allocation: that one is watched (cancelling the cluster job is the
cluster's business).
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from mgenet import MgenetError

POLL_S = 1.0  # the longest a job outlives its run while computing
GRACE_S = 30.0  # SIGTERM unwinds between two Python bytecodes; a job stuck in C code that long is ended outright

log = logging.getLogger("mgenet")

_owners: list[tuple] = []  # (psutil.Process, its description) of each ancestor up to snakemake, parent first
_lost: list[str] = []  # the description of the first ancestor found gone


class RunGoneError(MgenetError):
    """The Snakemake run (or the job's shell) that started this job is gone: its output is not published."""

    def __init__(self, path: str | os.PathLike | None, gone: str) -> None:
        self.path = path
        what = f"{path}: not written" if path is not None else "job stopped"
        super().__init__(f"{what}: the Snakemake run that started this job is gone ({gone} ended), so the job does "
                         f"not publish its output; run snakemake again (after `snakemake --unlock` if it says the "
                         f"directory is locked).")


def _is_snakemake(cmdline: list[str]) -> bool:
    """Whether a command line is Snakemake's (the ``snakemake`` script, or ``python -m snakemake``)."""
    if not cmdline:
        return False
    if Path(cmdline[0]).name == "snakemake":
        return True
    if not Path(cmdline[0]).name.startswith("python"):
        return False
    if len(cmdline) > 1 and Path(cmdline[1]).name == "snakemake":  # the console script run by its interpreter
        return True
    return any(a == "-m" and b == "snakemake" for a, b in itertools.pairwise(cmdline))


def _describe(p) -> str:
    try:
        name = "snakemake" if _is_snakemake(p.cmdline()) else f"the job's shell {p.name()}"
    except Exception:  # noqa: BLE001 - gone or not ours to read: the pid still names it
        name = "a parent process"
    return f"{name} (pid {p.pid})"


def find_owners() -> list[tuple]:
    """This process's ancestors from its parent up to the nearest ``snakemake`` process, each with its description
    (made now, while it can be read), or [] if none is Snakemake."""
    try:
        import psutil
    except ImportError:  # a dependency of mgenet and of Snakemake; an install without it watches nothing
        return []
    chain = []
    try:
        for p in psutil.Process().parents():
            chain.append(p)
            if _is_snakemake(p.cmdline()):
                return [(q, _describe(q)) for q in chain]
    except (psutil.Error, OSError):
        return []
    return []


def gone() -> str | None:
    """The first watched ancestor that is gone (its description), or None while the run is alive."""
    if _lost:
        return _lost[0]
    import psutil

    for p, info in _owners:
        try:
            # is_running compares the start time too (a reused pid is not the same process); a killed process stays a
            # zombie until its parent reaps it, and is gone all the same
            alive = p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        if not alive:
            _lost.append(info)
            return info
    return None


def ensure_alive(path: str | os.PathLike | None = None) -> None:
    """Raise :class:`RunGoneError` (naming ``path``, the output not written) if the run that started this job is
    gone."""
    lost = gone()
    if lost is not None:
        raise RunGoneError(path, lost)


def _watch(poll_s: float, grace_s: float) -> None:
    while gone() is None:
        time.sleep(poll_s)
    print(f"error: {RunGoneError(None, _lost[0])}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    os._exit(1)


def watch_run(poll_s: float = POLL_S, grace_s: float = GRACE_S) -> bool:
    """Start watching the run that started this process (see the module's docstring); whether there is one."""
    _owners[:] = find_owners()
    _lost.clear()
    if not _owners:
        return False
    log.debug("watching the run that started this job: %s", ", ".join(info for _, info in _owners))
    threading.Thread(target=_watch, args=(poll_s, grace_s), name="mgenet-run-watch", daemon=True).start()
    return True
