"""The `mgenet` command: one subcommand per pipeline stage, each a thin wrapper over the library.

Snakemake rules call these with explicit inputs, outputs and a ``--params`` JSON object holding every setting that
should trigger a rerun. A user-fixable problem ends with one ``error:`` line naming the file and the fix.

One module per rule file registers its verbs; a verb parses its arguments into a typed settings object
(:class:`mgenet.config.FromDict`) and calls the library.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable

from mgenet import MgenetError, __version__
from mgenet.cli import apps, baselines, data, features, flow, pose, score, stage2, studies
__all__ = ["build_parser", "main"]

# in the order `mgenet --help` lists their verbs
MODULES = (data, pose, features, baselines, flow, stage2, score, studies, apps)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mgenet", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"mgenet {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (Snakemake passes {threads})")
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], None], help: str,
            params: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        if params:
            sp.add_argument("--params", default="{}", help="JSON object of this stage's settings")
        return sp

    for module in MODULES:
        module.register(add)
    return ap


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # SIGTERM (Snakemake stopping its jobs on Ctrl-C, a cluster cancelling one) unwinds like Ctrl-C, so temporary
    # files are removed on the way out instead of left beside the artifacts.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    if main_thread:
        # a job dies with the Snakemake run (and the shell) that started it, and never publishes an output after it
        # (mgenet.io.owner says why and how)
        from mgenet.io.owner import watch_run

        watch_run()
    try:
        args.fn(args)
    except MgenetError as e:
        from mgenet.cli.rules import explain

        print(f"error: {explain(e)}", file=sys.stderr)
        return 1
    except Exception as e:
        # a write outside mgenet.io's writers (which raise DiskFullError themselves) that ran out of space
        from mgenet.io.common import DiskFullError, disk_full

        if not disk_full(e):
            raise
        print(f"error: {DiskFullError(getattr(e, 'filename', None) or '.')}", file=sys.stderr)
        return 1
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0
