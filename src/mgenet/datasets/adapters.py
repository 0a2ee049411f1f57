"""Dataset adapters: find a dataset's videos, pose files and ground truth, and write the manifest.

Layouts:
    ``stgnf`` — ShanghaiTech as STG-NF ships it (and the demo dataset)::

        root/pose/{train,test}/{video}_alphapose_tracked_person.json
        root/gt/test_frame_mask/{video}.npy                  1 = anomalous frame
        videos (optional): root/videos/{train,test}/{video}.mp4|.avi, root/{training,testing}/videos/{video}.avi,
                           or frame folders root/{training,testing}/frames/{video}/*.jpg
        root/scenes.csv (optional: video,split,scene; else the scene is the name's prefix before '_')

    ``ubnormal`` — UBnormal with STG-NF's pose files::

        root/pose/{train,test,validation}/{video}_alphapose_tracked_person.json
        root/gt/{video}_tracks.txt                           either UBnormal's per-object intervals (id,start,end
                                                             lines: STG-NF's training and validation files) or a
                                                             NumPy array of per-frame labels, 1 = normal (STG-NF's
                                                             test files); recognised by content
        root/gt/abnormal_{training,validation,test}_video_names.txt   (optional) the official split lists
        videos (optional): root/**/{video}.mp4               (UBnormal ships Scene{N}/{video}.mp4)
        scene = the N of ``scene_N`` in the name; a test video without a tracks file has no anomaly

A validation split (``val``) is read where the dataset has one: ``pose/validation/`` or ``pose/val/`` (its ground
truth as for test). STG-NF's ``pose/abnormal_train/`` (anomalous training videos, for its supervised setting) is not
indexed: the flow trains on normal videos only.

Without videos the frame size comes from ``dataset.resolution`` and the frame count from the ground truth (test) or
the last posed frame (train).

Video names become file names under ``results/`` and words of shell commands, so only :data:`SAFE_NAME` names are
indexed; every other one is refused with one error listing the offending files.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from mgenet import MgenetError
from mgenet.io import ALPHAPOSE_SUFFIX, is_numpy_file, load_gt_mask, read_alphapose
from mgenet.io.video import VIDEO_EXTS, probe

SPLITS = ("train", "test", "val")
POSE_FOLDERS = {"train": ("train",), "test": ("test",), "val": ("validation", "val")}
LONG_NAMES = {"train": "training", "test": "testing", "val": "validation"}
# UBnormal's official lists of its anomalous videos per split, as STG-NF ships them in gt/
SPLIT_LISTS = {"train": "abnormal_training_video_names.txt", "val": "abnormal_validation_video_names.txt",
               "test": "abnormal_test_video_names.txt"}
DATASET_LAYOUTS = ("stgnf", "ubnormal")
# The names a video may have: letters, digits, '.', '_', '-', not starting with '.' or '-' (no space, no shell
# character, no path separator), as the workflow's `video` wildcard constraint also says.
SAFE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"

log = logging.getLogger("mgenet")


def check_names(files: dict[Path, str]) -> None:
    """Refuse video names outside :data:`SAFE_NAME`.

    Args:
        files: each dataset file (pose file, video, frame folder, mask) and the video name it gives.
    Raises:
        MgenetError: one line listing every offending file, and the allowed pattern.
    """
    bad = sorted(str(p) for p, name in files.items() if not re.fullmatch(SAFE_NAME, name))
    if bad:
        shown = ", ".join(repr(b) for b in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise MgenetError(f"{len(bad)} dataset file(s) have a video name outside {SAFE_NAME} (letters, digits, "
                          f"'.', '_', '-'; no space or shell character): {shown}. Rename them (pose file, video and "
                          f"mask together).")


def _pose_files(root: Path, split: str) -> dict[str, Path]:
    for name in POSE_FOLDERS[split]:
        folder = root / "pose" / name
        if folder.is_dir():
            return {p.name[: -len(ALPHAPOSE_SUFFIX)]: p for p in sorted(folder.glob(f"*{ALPHAPOSE_SUFFIX}"))}
    return {}


def _video_files(root: Path, split: str) -> dict[str, Path]:
    """Videos (files or frame folders) of a split, for datasets whose pose is extracted from the videos."""
    long = LONG_NAMES[split]
    found: dict[str, Path] = {}
    for folder in (root / "videos" / split, root / long / "videos", root / long / "frames"):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if (p.is_file() and p.suffix.lower() in VIDEO_EXTS) or p.is_dir():
                found.setdefault(p.stem if p.is_file() else p.name, p)
    return found


def _find_video_stgnf(root: Path, video: str, split: str) -> Path | None:
    long = LONG_NAMES[split]
    for folder in (root / "videos" / split, root / long / "videos"):
        for ext in VIDEO_EXTS:
            if (p := folder / f"{video}{ext}").exists():
                return p
    for folder in (root / "videos" / split / video, root / long / "frames" / video):
        if folder.is_dir():
            return folder
    return None


def _find_video_ubnormal(root: Path, video: str, index: dict[str, Path]) -> Path | None:
    return index.get(video)


def _scene_stgnf(root: Path) -> dict[str, str]:
    table = root / "scenes.csv"
    if not table.exists():
        return {}
    df = pd.read_csv(table, dtype=str, keep_default_na=False)
    return dict(zip(df["video"], df["scene"]))


def check_split_lists(root: Path, df: pd.DataFrame) -> None:
    """Check each video's split against UBnormal's official lists of anomalous videos, where ``gt/`` has them.

    Raises:
        MgenetError: an anomalous training video among the normal training poses (the flow would learn it as
            normal), or a video in another split's folder than its list says; each names the video, the folder and
            the list.
    """
    listed: dict[str, str] = {}
    for split, name in SPLIT_LISTS.items():
        if (path := root / "gt" / name).exists():
            listed.update({v.strip(): split for v in path.read_text().splitlines() if v.strip()})
    # an anomalous training video belongs in pose/abnormal_train, never among the indexed splits
    wrong = [(v, s, listed[v]) for v, s in zip(df["video"], df["split"])
             if v in listed and (listed[v] != s or listed[v] == "train")]
    if wrong:
        lines = [f"{v} (in pose/{POSE_FOLDERS[s][0]}, but gt/{SPLIT_LISTS[want]} lists it"
                 f"{' as an anomalous training video: those go to pose/abnormal_train' if want == 'train' else ''})"
                 for v, s, want in wrong[:10]]
        raise MgenetError(f"{root}: {len(wrong)} video(s) in a split folder their official list contradicts: "
                          f"{'; '.join(lines)}. Move each pose file to its list's folder.")


def _scene_key(scene: object) -> object:
    """Scene ids compare as numbers when both are numbers ("01" == 1), else as strings."""
    s = str(scene)
    return int(s) if s.isdigit() else s


def select_scenes(df: pd.DataFrame, scenes: list | None = None, move_to_train: dict | None = None,
                  intervals: str | Path | None = None) -> pd.DataFrame:
    """Restrict a manifest to some scenes and move some test videos into training (the paper's §4.6 scene split).

    Args:
        df: the manifest of :func:`index_dataset`.
        scenes: scene ids to keep (``None``: all); ids match as numbers when numeric ("01" keeps scene 1).
        move_to_train: ``{"scenes": [...], "subtypes": [...]}``: a test video of one of these scenes whose anomalous
            intervals (in the ``intervals`` table) all have one of these subtypes becomes a training video, its
            anomalies taken as normal behaviour of that scene (e.g. running in a park). Videos that mix such
            intervals with others stay in the test set.
        intervals: the dataset's interval table (video,start,end,type,subtype), needed by ``move_to_train``.

    Raises:
        MgenetError: a listed scene that the dataset lacks, ``move_to_train`` without an interval table.
    """
    out = df.copy()
    if scenes is not None:
        wanted = {_scene_key(s) for s in scenes}
        have = {_scene_key(s) for s in out["scene"]}
        missing = sorted(map(str, wanted - have))
        if missing:
            raise MgenetError(f"dataset.scenes lists scene(s) {missing} that the dataset does not have (it has "
                              f"{sorted(set(out['scene']))}).")
        out = out[out["scene"].map(_scene_key).isin(wanted)]
    if move_to_train and move_to_train.get("scenes") and move_to_train.get("subtypes"):
        from mgenet.io import read_intervals

        if not intervals or not Path(intervals).exists():
            raise MgenetError(f"{intervals}: dataset.move_to_train needs the interval table with a subtype per "
                              f"anomalous interval (video,start,end,type,subtype); set dataset.intervals.")
        iv = read_intervals(intervals)
        subtypes = {str(t) for t in move_to_train["subtypes"]}
        in_scene = out["scene"].map(_scene_key).isin({_scene_key(s) for s in move_to_train["scenes"]})
        pure = iv.groupby(iv["video"].astype(str))["subtype"].agg(lambda x: set(map(str, x)) <= subtypes)
        moved = (out["split"] == "test") & in_scene & out["video"].map(pure).eq(True)
        out.loc[moved, "split"] = "train"
        out.loc[moved, "gt_path"] = ""
    return out.reset_index(drop=True)


def check_dataset_files(root: Path, layout: str, sources: dict[str, dict[str, Path]], extract: bool) -> None:
    """Check the files that name the videos before anything is read: safe names, one split per name, and (stgnf) no
    test video or mask left without its pose file, which would silently drop it from the test set.

    Args:
        sources: per split, {video name: pose file (import) or video (extract)}, as the index lists them.
        extract: whether poses come from the videos (pose.source: extract).
    Raises:
        MgenetError: one line per kind of problem, listing the offending files.
    """
    named: dict[Path, str] = {p: v for split in SPLITS for v, p in sources[split].items()}
    videos = {split: _video_files(root, split) for split in SPLITS} if layout == "stgnf" else {}
    masks = ({p.stem: p for p in sorted((root / "gt" / "test_frame_mask").glob("*.npy"))}
             if layout == "stgnf" else {})
    named.update({p: v for split in videos for v, p in videos[split].items()})
    named.update({p: v for v, p in masks.items()})
    check_names(named)
    seen = [v for split in SPLITS for v in sources[split]]
    both = sorted({v for v in seen if seen.count(v) > 1})
    if both:
        raise MgenetError(f"{root}: video name(s) {both} are in both pose/train and pose/test (or two of the train, "
                          f"test and val folders); a name must be unique, since results/<dataset>/ keeps one file per "
                          f"video.")
    if layout != "stgnf" or not any(sources.values()):  # none at all: index_dataset says where it looked
        return
    what = "video" if extract else "pose file"
    # masks serve the test and the validation split alike (gt/test_frame_mask/ holds both)
    orphans = sorted(str(p) for v, p in masks.items() if v not in sources["test"] and v not in sources["val"])
    if not extract:
        orphans += sorted(str(p) for v, p in videos["test"].items() if v not in sources["test"])
        no_pose = sorted(str(p) for v, p in videos["train"].items() if v not in sources["train"])
        if no_pose:
            log.warning("%d training video(s) have no pose file under %s and are left out: %s", len(no_pose),
                        root / "pose" / "train", ", ".join(no_pose[:10]) + (" ..." if len(no_pose) > 10 else ""))
    if orphans:
        shown = ", ".join(orphans[:10]) + (f" and {len(orphans) - 10} more" if len(orphans) > 10 else "")
        raise MgenetError(f"{len(orphans)} test file(s) have no {what} in the test split, so their videos would be "
                          f"left out of the evaluation: {shown}. Restore the {what} "
                          f"({'videos/test/<video>' if extract else f'pose/test/<video>{ALPHAPOSE_SUFFIX}'}) or "
                          f"remove the video and its mask.")


def index_dataset(root: str | Path, layout: str, resolution: list[int] | None = None,
                  pose_source: str = "import", scenes: list | None = None, move_to_train: dict | None = None,
                  intervals: str | None = None) -> pd.DataFrame:
    """Build the manifest: one row per video with its split, scene, size, frame count and file paths.

    With ``pose_source="extract"`` the videos are listed from ``root/videos/{train,test}/`` (files or frame folders;
    ShanghaiTech's ``{training,testing}/videos|frames`` too) instead of from the pose files, which do not exist yet
    (rule extract_pose makes them); ``pose_path`` is then empty. ``scenes`` and ``move_to_train`` (with the
    ``intervals`` table, relative to ``root``) select a scene split, see :func:`select_scenes`.

    Raises:
        MgenetError: unknown layout, no pose file at all, a video name outside :data:`SAFE_NAME`, a name in both
            splits, a test video or mask without its pose file, a test video without ground truth, a ground truth
            whose length differs from the video's frame count, a missing resolution for a dataset without videos.
    """
    root = Path(root)
    if layout not in DATASET_LAYOUTS:
        raise MgenetError(f"dataset.layout {layout!r} is not a known layout; use one of {list(DATASET_LAYOUTS)}.")
    if not root.is_dir():
        raise MgenetError(f"{root}: dataset root not found. Set dataset.root in config.yaml "
                          f"(or keep dataset.generate: true for the synthetic demo).")
    scene_of = _scene_stgnf(root) if layout == "stgnf" else {}
    ub_videos = ({p.stem: p for ext in VIDEO_EXTS for p in root.rglob(f"*{ext}")} if layout == "ubnormal" else {})
    if pose_source not in ("import", "extract"):
        raise MgenetError(f"pose.source {pose_source!r}: use import or extract.")
    extract = pose_source == "extract"
    sources = {split: _video_files(root, split) if extract else _pose_files(root, split) for split in SPLITS}
    check_dataset_files(root, layout, sources, extract)
    rows = []
    for split in SPLITS:
        for video, source in sources[split].items():
            pose_path = None if extract else source
            if layout == "stgnf":
                video_path = source if extract else _find_video_stgnf(root, video, split)
                scene = scene_of.get(video, video.split("_")[0])
                gt_path = root / "gt" / "test_frame_mask" / f"{video}.npy"
                if split != "train" and not gt_path.exists():
                    raise MgenetError(f"{gt_path}: ground truth missing for {split} video {video} "
                                      f"({f'video {video_path}' if extract else f'pose file {pose_path}'}). Add the "
                                      f"mask or move the {'video' if extract else 'pose file'} out of the {split} "
                                      f"split.")
            else:
                video_path = source if extract else _find_video_ubnormal(root, video, ub_videos)
                m = re.search(r"scene_(\d+)", video)
                scene = m.group(1) if m else "0"
                gt_path = root / "gt" / f"{video}_tracks.txt"
            if split == "train" or not gt_path.exists():
                gt_path = None
            if video_path is not None:
                info = probe(video_path)
                frames, fps, height, width = info.frames, info.fps, info.height, info.width
            else:
                if not resolution:
                    raise MgenetError(f"{root}: no video found for {video} and dataset.resolution is not set. "
                                      f"Put the videos under {root}/videos/{split}/ or set dataset.resolution: "
                                      f"[width, height] in config.yaml.")
                width, height = resolution
                fps = 25.0
                if split != "train" and gt_path is not None and (gt_path.suffix == ".npy" or is_numpy_file(gt_path)):
                    frames = len(load_gt_mask(gt_path))  # per-frame labels: their length is the video's
                else:
                    poses = read_alphapose(pose_path)
                    last = max((f for p in poses.values() for f in p), default=-1)
                    frames = last + 1
            if split != "train":
                load_gt_mask(gt_path, frames)  # fails on a length mismatch, naming the file
            rows.append({"video": video, "split": split, "scene": str(scene), "frames": int(frames),
                         "fps": float(fps), "height": int(height), "width": int(width),
                         "video_path": str(video_path) if video_path else "",
                         "pose_path": str(pose_path) if pose_path else "",
                         "gt_path": str(gt_path) if gt_path else ""})
    if not rows and extract:
        raise MgenetError(f"{root}: no video found under videos/train or videos/test (pose.source: extract looks "
                          f"for <video>.mp4|.avi files or frame folders there).")
    if not rows:
        raise MgenetError(f"{root}: no pose file found under pose/train or pose/test "
                          f"(expected <video>{ALPHAPOSE_SUFFIX}); is dataset.layout ({layout}) right?")
    if layout == "ubnormal":
        check_split_lists(root, pd.DataFrame(rows))
    df = select_scenes(pd.DataFrame(rows), scenes, move_to_train, root / intervals if intervals else None)
    if not (df["split"] == "train").any() or not (df["split"] == "test").any():
        raise MgenetError(f"{root}: need both training and test videos (pose/train and pose/test"
                          f"{', in the scenes of dataset.scenes' if scenes is not None else ''}).")
    return df


def video_coverage(root: str | Path, layout: str) -> tuple[list[str], list[str]]:
    """Which of a dataset's posed videos have a video file (or frame folder), found as :func:`index_dataset` finds
    them but without opening anything: cheap enough for every Snakemake start, which decides from it whether the
    run is pose-only (no video at all) before the manifest exists.

    Returns:
        (names with a video, names without one), each sorted; both empty when the root or its pose files are missing
        (index_dataset then says so).
    """
    root = Path(root)
    if layout not in DATASET_LAYOUTS or not root.is_dir():
        return [], []
    ub_videos = ({p.stem: p for ext in VIDEO_EXTS for p in root.rglob(f"*{ext}")} if layout == "ubnormal" else {})
    have, lack = [], []
    for split in SPLITS:
        for video in _pose_files(root, split):
            found = (_find_video_stgnf(root, video, split) if layout == "stgnf"
                     else _find_video_ubnormal(root, video, ub_videos))
            (have if found is not None else lack).append(video)
    return sorted(have), sorted(lack)


def check_weak_split(path: str | Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """Read the weak split (:func:`mgenet.io.read_weak_split`) and check it against the manifest: every video is in
    the manifest, its test part lies in the test split, training videos of the manifest are labelled 0, and a test
    video's label says whether its ground truth holds an anomalous frame.

    Raises:
        MgenetError: naming the file and the first video that breaks a rule.
    """
    from mgenet.io import read_weak_split

    weak = read_weak_split(path)
    fix = "fix the file or dataset.weak_split (README, 'AR-Net: the weak split')"
    rows = manifest.set_index(manifest["video"].astype(str))
    unknown = [v for v in weak["video"] if v not in rows.index]
    if unknown:
        raise MgenetError(f"{path}: video {unknown[0]!r} is not in the dataset ({len(unknown)} such video(s): not "
                          f"under the dataset root, or left out by dataset.scenes); {fix}.")
    for r in weak.itertuples():
        m = rows.loc[r.video]
        if r.split == "test" and m["split"] != "test":
            raise MgenetError(f"{path}: video {r.video!r} is in the weak split's test part but is a {m['split']} "
                              f"video of the dataset; the weak test part must lie in the test split; {fix}.")
        truth = int(load_gt_mask(m["gt_path"] or None, int(m["frames"])).any()) if m["split"] == "test" else 0
        if r.label != truth:
            what = ("has anomalous frames in its ground truth" if truth else "is a training video (normal)"
                    if m["split"] == "train" else "has no anomalous frame in its ground truth")
            raise MgenetError(f"{path}: video {r.video!r} is labelled {r.label} but {what}; label 1 = the video holds "
                              f"an anomaly; {fix}.")
    return weak


def index_and_check(root: str | Path, out: str | Path, layout: str = "stgnf", resolution: list[int] | None = None,
                    pose_source: str = "import", scenes: list | None = None, move_to_train: dict | None = None,
                    intervals: str | None = None, weak_split: str | None = None) -> pd.DataFrame:
    """Index a dataset (:func:`index_dataset`), check its weak split (a path under ``root``) against it, and write
    the manifest CSV at ``out``.

    Raises:
        MgenetError: the dataset or its weak split is unusable; the weak split is checked before the manifest
            appears, so a bad file stops the run there.
    """
    from mgenet.io import write_manifest

    df = index_dataset(root, layout, resolution, pose_source, scenes=scenes, move_to_train=move_to_train,
                       intervals=intervals)
    if weak_split:
        weak = check_weak_split(Path(root) / weak_split, df)
        log.info("weak split %s: %d training videos (%d anomalous), %d test videos", weak_split,
                 int((weak["split"] == "train").sum()), int(weak.loc[weak["split"] == "train", "label"].sum()),
                 int((weak["split"] == "test").sum()))
    write_manifest(df, out)
    counts = df["split"].value_counts().to_dict()
    log.info("indexed %d videos (%s) in %d scenes -> %s", len(df), counts, df["scene"].nunique(), out)
    return df
