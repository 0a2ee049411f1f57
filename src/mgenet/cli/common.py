"""What every verb shares: reading ``--params`` into a typed settings object, ``NAME=PATH`` arguments, and how a
verb registers itself on the parser."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from mgenet import MgenetError
from mgenet.config import FromDict, config_hash

log = logging.getLogger("mgenet")

S = TypeVar("S", bound=FromDict)


class AddVerb(Protocol):
    """``add(name, fn, help, params=True)``: a subparser for verb ``name`` that runs ``fn``, with ``--params`` unless
    ``params`` is false."""

    def __call__(self, name: str, fn: Callable[[argparse.Namespace], None], help: str,
                 params: bool = True) -> argparse.ArgumentParser: ...


@dataclass
class DeviceParams(FromDict):
    """``--params`` of a verb whose only setting is the device (score-arnet, rewrite-matching)."""

    device: str = "auto"


def read_params(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--params`` JSON object, as sent (its hash is the artifacts' provenance)."""
    try:
        p = json.loads(args.params) if args.params else {}
    except json.JSONDecodeError as e:
        raise MgenetError(f"--params is not valid JSON: {e}") from e
    if not isinstance(p, dict):
        raise MgenetError("--params must be a JSON object")
    return p


def settings(args: argparse.Namespace, cls: type[S]) -> tuple[S, str]:
    """``--params`` as a ``cls`` settings object, and the hash of the JSON as sent."""
    p = read_params(args)
    return cls.from_dict(p), config_hash(p)


def named_paths(items: list[str], what: str) -> dict[str, str]:
    """``NAME=PATH`` arguments -> {name: path}, in order; ``what`` says what the paths are, for the error."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise MgenetError(f"{item!r}: give NAME=PATH ({what}).")
        out[name] = path
    return out


def progress_flag(args: argparse.Namespace) -> bool:
    """``--progress`` / ``--no-progress``, else progress bars when stderr is a terminal."""
    import sys

    return args.progress if args.progress is not None else sys.stderr.isatty()


def add_progress(sp: argparse.ArgumentParser, help: str) -> None:
    sp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help=help)
