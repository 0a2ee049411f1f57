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
    abnormal_train: bool = False  # flow.train.supervised: index pose/abnormal_train (STG-NF's supervised setting)


def cmd_make_demo(args: argparse.Namespace) -> None:
    from mgenet.datasets.demo import make_demo_job

    make_demo_job(args.out, read_params(args), workers=args.threads or 1)


def cmd_index(args: argparse.Namespace) -> None:
    from mgenet.datasets.adapters import index_and_check

    s, _ = settings(args, IndexParams)
    index_and_check(s.root, args.out, layout=s.layout, resolution=s.resolution, pose_source=s.pose_source,
                    scenes=s.scenes, move_to_train=s.move_to_train, intervals=s.intervals, weak_split=s.weak_split,
                    abnormal_train=s.abnormal_train)


def cmd_import_pose(args: argparse.Namespace) -> None:
    from mgenet.io import manifest_row
    from mgenet.pose.imported import import_pose

    import_pose(manifest_row(args.manifest, args.video), args.out)


def cmd_ubnormal_boxes(args: argparse.Namespace) -> None:
    import logging
    from pathlib import Path

    from mgenet.io import read_manifest, write_anomaly_boxes
    from mgenet.io.annotations import anomaly_boxes, find_annotation_dirs
    from mgenet.io.common import MissingFileError

    man = read_manifest(args.manifest)  # a manifest cut short or of another kind is one error naming it
    if not Path(args.root).is_dir():  # os.walk of a missing root finds nothing, silently: no boxes, no RBDC
        raise MissingFileError(args.root, "dataset root (folder)", "set dataset.root to UBnormal's folder, which holds "
                               "Scene<N>/<video>_annotations/")
    videos = sorted(man.loc[man["split"] == "test", "video"])
    df = anomaly_boxes(videos, find_annotation_dirs(args.root), args.root)
    write_anomaly_boxes(df, args.out)
    logging.getLogger("mgenet").info("%d boxes of %d anomalous objects in %d test videos -> %s", len(df),
                                     df.groupby(["video", "track"]).ngroups, df["video"].nunique(), args.out)


def register(add: AddVerb) -> None:
    sp = add("make-demo", cmd_make_demo, "generate the synthetic demo dataset")
    sp.add_argument("--out", required=True, help="dataset root to create")
    sp = add("index", cmd_index, "index a dataset into the manifest CSV")
    sp.add_argument("--out", required=True)
    sp = add("ubnormal-boxes", cmd_ubnormal_boxes, "the test videos' anomalous objects' boxes per frame from "
                                                   "UBnormal's object masks (RBDC / TBDC)", params=False)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--root", required=True, help="the dataset root (Scene<N>/<video>_annotations/ below it)")
    sp.add_argument("--out", required=True)
    sp = add("import-pose", cmd_import_pose, "validate and normalise one video's AlphaPose tracked-person JSON",
             params=False)
    sp.add_argument("--manifest", required=True)
    sp.add_argument("--video", required=True)
    sp.add_argument("--out", required=True)
