# Config validation, paths and input functions. No logic beyond path plumbing lives here: every stage's work is an
# `mgenet <command>` of the package.
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pandas as pd
from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml", set_default=True)

DS = config["dataset"]["name"]
R = f"results/{DS}"  # every artifact of this dataset
DATA_ROOT = config["dataset"]["root"]
STAGE2 = config["stage2"]["enabled"]
# STG-NF's supervised setting (UBnormal): pose/abnormal_train is indexed and its windows labelled only then (not when
# flow.checkpoint imports an official model instead of training)
SUPERVISED = config["flow"]["train"]["supervised"] and not config["flow"]["checkpoint"]
STAGE2_COMPONENTS = ("mo", "app", "mm")

# Which ready job runs first when cores are short (Snakemake's `priority`; unlisted rules 0): poses and segments
# unblock everything; then the chain to the main model (flow, its latents, stage 2) so that it trains beside the
# per-video feature and baseline jobs instead of after them; then the features it reads; then the scores; then CR,
# the longest chain of the baselines (train, then score), so that it does not end the run alone. On the demo's 2
# cores this ordering, with one thread per job, keeps both cores busy (README, 'Quick start').
PRIORITY = {"segments": 50, "models": 40, "features": 30, "scores": 20, "cr": 10}

# A default that depends on another key, so it is filled here rather than in the schema: Eq. 16 with stage 2
# (S_nf is still reported beside it), STG-NF's S_nf alone without.
if "weights" not in config["fusion"]:
    config["fusion"]["weights"] = {"mo": 1.0, "app": 0.1, "mm": 0.1} if STAGE2 else {"nf": 1.0}
if not STAGE2 and set(config["fusion"]["weights"]) & set(STAGE2_COMPONENTS):
    # config files merge key by key, so a pose-only config inherits config.yaml's stage-2 weights: they are left out
    # (said at start), and S_nf alone is the score unless the weights give nf one
    _dropped = sorted(set(config["fusion"]["weights"]) & set(STAGE2_COMPONENTS))
    config["fusion"]["weights"] = {c: w for c, w in config["fusion"]["weights"].items() if c not in _dropped} or {
        "nf": 1.0
    }
    print(
        f"mgenet: stage2.enabled is false: fusion.weights of {', '.join(_dropped)} are left out; fused ="
        f" {config['fusion']['weights']}.",
        file=sys.stderr,
    )
if not STAGE2 and config["matching_seeds"]:
    raise ValueError(
        f"matching_seeds {config['matching_seeds']} rewrite stage 2's matching memory but stage2.enabled is false;"
        " enable stage 2 or drop matching_seeds."
    )


# The weak split (dataset.weak_split). The generated demo writes one, weak_split.csv, used unless the config names
# another or "" (none); a scene split (dataset.scenes / move_to_train) changes which videos are test videos, so it
# gets none by default. Filled into the config so that index_dataset checks it (its params carry the dataset section).
if "weak_split" not in config["dataset"] and config["dataset"]["generate"] and not (
        config["dataset"].get("scenes") or config["dataset"].get("move_to_train")):
    config["dataset"]["weak_split"] = "weak_split.csv"
WEAK_SPLIT = str(Path(DATA_ROOT) / config["dataset"]["weak_split"]) if config["dataset"].get("weak_split") else ""


# The demo generator's version (mgenet.datasets.demo.GENERATOR_VERSION, kept equal by a test): a param of
# make_demo_dataset, so a changed generator regenerates an existing demo and everything made from it.
DEMO_GENERATOR_VERSION = "4"


def params_json(*sections, **extra):
    """The config sections a step depends on, as one JSON string for its params, so editing any of them reruns it."""
    out = {}
    for s in sections:
        value = config[s]
        if isinstance(value, dict):
            out.update(value)
        else:
            out[s] = value
    out.update(extra)
    return json.dumps(out, sort_keys=True)


def get_dataset_root(wildcards):
    """The dataset folder: made by make_demo_dataset when dataset.generate is set, else supplied by the user."""
    return DATA_ROOT


def dataset_listing():
    """A hash of the dataset's file set, a param of index_dataset, so that adding, removing, renaming or resizing a
    file (a pose file, video, frame, mask) reindexes it. Names and sizes only, not contents or mtimes: listing is
    cheap on a real dataset at every start, and copying or touching files does not retrain everything. Content edits
    reach the rules that read the files, which have them as inputs. The small tables index_dataset reads itself
    (scenes.csv, the interval table) are hashed whole. A generated demo is make_demo_dataset's output (its params
    track it): "" there."""
    if config["dataset"]["generate"]:
        return ""
    small = {"scenes.csv", Path(config["dataset"]["intervals"]).as_posix()}
    if config["dataset"].get("weak_split"):
        small.add(Path(config["dataset"]["weak_split"]).as_posix())
    h = hashlib.sha256()

    def walk(folder, rel):  # os.scandir, not os.walk + Path: 0.4-0.75 s instead of 2.7 s for 43k frame images
        for entry in sorted((e for e in os.scandir(folder) if not e.name.startswith(".")), key=lambda e: e.name):
            if entry.is_dir():
                walk(entry.path, f"{rel}{entry.name}/")
            else:
                h.update(f"{rel}{entry.name}\0{entry.stat().st_size}\n".encode())
                if f"{rel}{entry.name}" in small:
                    h.update(Path(entry.path).read_bytes())

    if Path(DATA_ROOT).is_dir():  # else index_dataset says the root is missing
        walk(DATA_ROOT, "")
    return h.hexdigest()


def manifest(wildcards):
    """The manifest of the dataset (evaluating the index_dataset checkpoint)."""
    return pd.read_csv(checkpoints.index_dataset.get().output[0], dtype={"video": str}, keep_default_na=False)


def videos_of(wildcards, split):
    df = manifest(wildcards)
    return sorted(df.loc[df["split"] == split, "video"])


def get_segments(wildcards):
    """Segments files of every video of a split (the split wildcard)."""
    return expand(f"{R}/segments/{{video}}.h5", video=videos_of(wildcards, wildcards.split))


def get_train_segments(wildcards):
    return get_split_segments(wildcards, "train")


def get_flow_checkpoint(wildcards):
    """An official STG-NF checkpoint to import instead of training (flow.checkpoint), as an input so that replacing
    the file reruns the import."""
    return [config["flow"]["checkpoint"]] if config["flow"]["checkpoint"] else []


def get_pose_source(wildcards):
    """A video's pose file as given by the dataset (imported and validated by import_pose)."""
    df = manifest(wildcards)
    row = df[df["video"] == wildcards.video]
    if row.empty:
        raise ValueError(f"video {wildcards.video} is not in {R}/manifest.csv")
    return row["pose_path"].iloc[0]


def get_ground_truth(wildcards, split="test"):
    """The files fuse_scores reads the truth from: every test (or validation) video's mask (or tracks file) and the
    interval table, so that editing one refuses stale metrics (fuse_scores and evaluate rerun)."""
    df = manifest(wildcards)
    gt = sorted(p for p in df.loc[df["split"] == split, "gt_path"] if p)
    return gt + ([intervals_path()] if Path(intervals_path()).is_file() else [])


def get_val_truth(wildcards):
    return get_ground_truth(wildcards, "val")


def has_split(wildcards, split):
    return bool(videos_of(wildcards, split))


def get_split_segments(wildcards, split):
    """Segments files of every video of ``split``: their person boxes are the detections of RBDC / TBDC."""
    return expand(f"{R}/segments/{{video}}.h5", video=videos_of(wildcards, split))


def get_validation_metrics(wildcards):
    """eval/val_metrics.json when the dataset has a validation split (the test report shows it), else nothing."""
    return [f"{R}/eval/val_metrics.json"] if has_split(wildcards, "val") else []


def get_weak_split(wildcards):
    """The weak split file (dataset.weak_split), once index_dataset has checked it, or none: an input of the rules
    that read it, so that editing it reruns them."""
    if not WEAK_SPLIT:
        return []
    manifest(wildcards)  # the file lies in the dataset, which the generated demo makes before indexing
    return [WEAK_SPLIT]


def get_video_path(wildcards):
    """A video's file (or frame folder) as the manifest lists it."""
    df = manifest(wildcards)
    row = df[df["video"] == wildcards.video]
    if row.empty:
        raise ValueError(f"video {wildcards.video} is not in {R}/manifest.csv")
    path = row["video_path"].iloc[0]
    if not path:
        raise ValueError(f"video {wildcards.video} has no video file under {DATA_ROOT} (pose-only dataset)")
    return path


def get_feature_weights(wildcards):
    """The Video Swin checkpoint features.weights names (none for `random`), so that replacing it reruns features."""
    weights = config["features"]["weights"]
    if weights == "random":
        return []
    if not Path(weights).is_file():
        raise ValueError(
            f"{weights}: Video Swin checkpoint not found. Download swin_tiny_patch244_window877_kinetics400_1k.pth"
            " (README, 'Features and weights') or set features.weights: random."
        )
    return weights


def get_all_features(wildcards):
    """Features files of every video that has a video file (pose-only datasets have none to crop); the anomalous
    training videos of STG-NF's supervised setting serve the flow alone."""
    df = manifest(wildcards)
    df = df[df["split"] != "abnormal_train"]
    return expand(f"{R}/features/{{video}}.h5", video=sorted(df.loc[df["video_path"] != "", "video"]))


_ANNOTATION_DIRS = {}


def annotation_dirs():
    """UBnormal's annotation folders under the dataset root, by video (walked once, on first use)."""
    if not _ANNOTATION_DIRS and config["dataset"]["layout"] == "ubnormal" and Path(DATA_ROOT).is_dir():
        from mgenet.io.annotations import find_annotation_dirs

        _ANNOTATION_DIRS.update({v: str(p) for v, p in find_annotation_dirs(DATA_ROOT).items()})
    return _ANNOTATION_DIRS


def get_abnormal_train_segments(wildcards):
    """flow.train.supervised: segments files of the anomalous training videos (pose/abnormal_train), else none."""
    return get_split_segments(wildcards, "abnormal_train") if SUPERVISED else []


def get_window_labels(wildcards):
    """flow.train.supervised: the label table of each anomalous training video, in the order of its segments."""
    if not SUPERVISED:
        return []
    return expand(f"{R}/labels/{{video}}.csv", video=videos_of(wildcards, "abnormal_train"))


def get_annotation_dir(wildcards):
    """A video's UBnormal annotation folder; none for a normal video (its windows all keep label 1)."""
    folder = annotation_dirs().get(wildcards.video)
    return [folder] if folder else []


def get_annotation_dirs_of_test(wildcards):
    """The test videos' annotation folders (the boxes of RBDC / TBDC on UBnormal)."""
    dirs = annotation_dirs()
    return sorted(dirs[v] for v in videos_of(wildcards, "test") if v in dirs)


def _features_of(wildcards, split):
    df = manifest(wildcards)
    df = df[df["split"] == split]
    no_video = sorted(df.loc[df["video_path"] == "", "video"])
    if no_video:
        raise ValueError(
            f"stage 2 needs the videos (features are cropped from them), but {len(no_video)} {split} video(s) have"
            f" none, e.g. {no_video[:3]}; put the videos under {DATA_ROOT} or set stage2.enabled: false."
        )
    return expand(f"{R}/features/{{video}}.h5", video=sorted(df["video"]))


def get_train_features(wildcards):
    """Features files of every training video (stage 2's training set)."""
    return _features_of(wildcards, "train")


def get_test_features(wildcards):
    """Features files of every test video (scored by stage 2)."""
    return _features_of(wildcards, "test")


def gpus(stage2=False):
    """The `gpu` resource of a step that can run on a GPU, which the SLURM plugin submits as --gpus. 1 when the config
    lets the step use one (`device` auto or cuda and, for a stage-2 step, stage 2 enabled), else 0, so that no job
    asks for a GPU it will not use (`device: cpu` on a cluster without GPUs, whose sbatch refuses a --gpus request)."""
    if config["device"] == "cpu" or (stage2 and not STAGE2):
        return 0
    return 1


def stage2_params(section, seed=None):
    """What shapes stage-2 training, as the JSON its rule's params carry: model, train, seed, device (not
    `enabled` or `score_batch_size`, which do not change the model)."""
    seed = config["seed"] if seed is None else seed
    keep = {"model": section["model"], "train": section["train"], "seed": seed, "device": config["device"]}
    return json.dumps(keep, sort_keys=True)


def stage2_score_params():
    """What scoring with a trained stage-2 model depends on beyond the model: S_mm's form is a scoring-time choice."""
    return json.dumps({"batch_size": config["stage2"]["score_batch_size"], "device": config["device"],
                       "mm_form": config["stage2"]["mm_form"]}, sort_keys=True)


def intervals_path():
    return str(Path(DATA_ROOT) / config["dataset"]["intervals"])


def ubnormal_boxes():
    """Whether ubnormal_boxes makes the boxes table (a UBnormal dataset with object annotations); STG-NF's pose
    files alone have none, and RBDC / TBDC are then left out."""
    return config["dataset"]["layout"] == "ubnormal" and bool(annotation_dirs())


def boxes_path():
    """The dataset's boxes of the anomalous objects (RBDC / TBDC). A param, not an input: it may not exist (then
    evaluate leaves the two figures out), and for the demo it lies inside make_demo_dataset's folder. UBnormal's are
    made from its object masks by rule ubnormal_boxes (an input of evaluate, get_boxes)."""
    if ubnormal_boxes():
        return f"{R}/gt/anomaly_boxes.csv"
    return str(Path(DATA_ROOT) / config["dataset"]["boxes"])


def get_boxes(wildcards):
    return [boxes_path()] if ubnormal_boxes() else []


def evaluate_params(**extra):
    """What the evaluation figures depend on: the bootstrap's resamples and seed (the main `seed` for every run, so
    that runs are resampled alike) and the RBDC / TBDC settings."""
    return json.dumps({"dataset": DS, "seed": config["seed"], "evaluation": config["evaluation"], **extra},
                      sort_keys=True)


def get_test_segments(wildcards):
    """Segments files of every test video: their person boxes are the detections of RBDC / TBDC."""
    return get_split_segments(wildcards, "test")


def report_models():
    """The checkpoints whose sha256 the report records."""
    return [f"{R}/models/flow.pt"] + ([f"{R}/models/stage2.pt"] if STAGE2 else [])


def get_val_segments(wildcards):
    return get_split_segments(wildcards, "val")


def get_report_features(wildcards):
    """The test features files, whose backbone checkpoint hash the report records (none without stage 2)."""
    return get_test_features(wildcards) if STAGE2 else []


def content_sha256(path):
    """A table's content hash ("" for no table), so that a new or changed table reruns evaluate (see rule evaluate)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""


def get_final_outputs():
    """What `snakemake` makes: the evaluation and report; with stage 2 also every video's features (an input function:
    the video list comes from the manifest checkpoint). A pose-only run (stage2.enabled: false) reads no features,
    so it extracts none."""
    outputs = [f"{R}/eval/metrics.json", f"{R}/eval/report.html"]
    return outputs + [get_all_features] if STAGE2 else outputs


# Baselines beside MGENet (workflow/rules/baselines/): each enabled baseline's rules file adds {method: its per-frame
# score table, relative to a run's folder}, which fuse_scores joins to the frame table. The tables are read by an input
# function (get_run_baselines in runs.smk), so the order of the includes does not matter. Every baseline trains once
# per training seed: a seed's run reads its own tables (results/{ds}/runs/seed<n>/scores/baselines/...).
BASELINE_SCORES = {}


# {method: JSON of its figures under its paper's own protocol}, added to metrics.json `paper_protocol` by evaluate
PAPER_PROTOCOL = {}


def get_paper_protocol(wildcards):
    return [PAPER_PROTOCOL[m] for m in sorted(PAPER_PROTOCOL)]
