"""Verbs of workflow/rules/data.smk and pose.smk's import: make-demo, index, import-pose."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, ClassVar

from mgenet.cli.common import AddVerb, read_params, settings
from mgenet.config import FromDict


@dataclass
class IndexParams(FromDict):
    """``--params`` of index: the dataset section and ``pose.source``."""

    SECTION: ClassVar[str] = "dataset"
    IGNORED: ClassVar[tuple[str, ...]] = ("name", "generate", "boxes")  # where results go, how the data came, RBDC

    root: str = ""
    layout: str = "stgnf"
    resolution: Any = None
    pose_source: str = "import"
    scenes: Any = None
    move_to_train: Any = None
    intervals: Any = None
    weak_split: Any = None


def cmd_make_demo(args: argparse.Namespace) -> None:
    from mgenet.datasets.demo import make_demo_job

    make_demo_job(args.out, read_params(args), workers=args.threads or 1)


def cmd_index(args: argparse.Namespace) -> None:
    from mgenet.datasets.adapters import index_and_check

    s, _ = settings(args, IndexParams)
    index_and_check(s.root, args.out, layout=s.layout, resolution=s.resolution, pose_source=s.pose_source,
                    scenes=s.scenes, move_to_train=s.move_to_train, intervals=s.intervals, weak_split=s.weak_split)


def cmd_import_pose(args: argparse.Namespace) -> None:
    from mgenet.io import manifest_row
    from mgenet.pose.imported import import_pose

    import_pose(manifest_row(args.manifest, args.video), args.out)


def register(add: AddVerb) -> None:
    sp = add("make-demo", cmd_make_demo, "generate the synthetic demo dataset")
    sp.add_argument("--out", required=True, help="dataset root to create")
    sp = add("index", cmd_index, "index a dataset into the manifest CSV")
    sp.add_argument("--out", required=True)
    sp = add("import-pose", cmd_import_pose, "validate and normalise one video's AlphaPose tracked-person JSON",
             params=False)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--video", required=True)
    sp.add_argument("--out", required=True)
