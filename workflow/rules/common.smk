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

try:
    from mgenet import MgenetError
    from mgenet.cli.dag import dag_errors, fail, use_own_mgenet, user_errors, validate_config
    from mgenet.datasets.adapters import video_coverage
    from mgenet.io import read_manifest
except ImportError as e:  # the one error that cannot go through the package's own
    sys.exit(f"error: this snakemake's Python ({sys.executable}) cannot import the mgenet package ({e}): run the "
             "snakemake of the environment that has it (.venv/bin/snakemake, made by `make`) or `pip install -e .`")

# Errors found before any rule runs (config keys, dataset layout, missing files, split lists, input functions) are
# one `error:` line, never a traceback: code here raises MgenetError (the package's family) and the rules files turn
# it into that line, at parse time inside `with user_errors():`, in an input function (or a helper it calls) by
# decorating it with @dag_errors. How Snakemake shows exceptions otherwise, and why this works: mgenet/cli/dag.py.
with user_errors():
    validate_config(lambda d: validate(d, schema="../schemas/config.schema.yaml", set_default=True), config)
    # the rules' `mgenet` is the one beside the Python that runs this snakemake, whatever PATH held
    # (`.venv/bin/snakemake` works without an activated environment); under --sdm conda the rule's env's own
    use_own_mgenet(workflow.deployment_settings.deployment_method)

DS = config["dataset"]["name"]
R = f"results/{DS}"  # every artifact of this dataset
DATA_ROOT = config["dataset"]["root"]
if not config["dataset"]["generate"] and not Path(DATA_ROOT).is_dir():
    fail(f"{DATA_ROOT}: dataset root not found (dataset.root): set dataset.root to the folder that holds pose/ and gt/"
         " (README, 'Real datasets'), or dataset.generate: true for the synthetic demo.")

# A dataset without videos (STG-NF's pose files, what most researchers have) runs everything that needs none: the
# steps that read the frames are left out, said in one line at start. A dataset where only some videos are missing
# is an error naming them while any such step is on. Decided from the files before the manifest exists (cheap:
# names only); a generated demo and pose.source: extract have their videos by construction.
NEEDS_VIDEOS = {  # config section: what it is, for the line at start
    "stage2": "stage 2 (its features are cropped from the frames)",
    "crkr": "the two-stream baseline CR/KR",
    "arnet": "AR-Net (its snippet features)",
}
POSE_ONLY = False
if not config["dataset"]["generate"] and config["pose"]["source"] == "import":
    _on = [s for s in NEEDS_VIDEOS if config[s]["enabled"]]
    _have, _lack = video_coverage(DATA_ROOT, config["dataset"]["layout"]) if _on else ([], [])
    if _lack and not _have:
        POSE_ONLY = True
        for s in _on:
            config[s]["enabled"] = False
        _extra = []
        if "stage2" in _on and config["matching_seeds"]:  # M^r of stage 2's model: left out with it
            _extra, config["matching_seeds"] = [f"matching_seeds {config['matching_seeds']}"], []
        print(f"mgenet: {DATA_ROOT} has pose files but no videos (pose-only dataset): left out are "
              f"{', '.join([NEEDS_VIDEOS[s] for s in _on] + _extra)}; STG-NF (S_nf is the fused score), scoring, "
              "evaluation and the report run. Put the videos under the root (README, 'Real datasets') to run them.",
              file=sys.stderr)
    elif _lack:
        fail(f"{len(_lack)} of {len(_have) + len(_lack)} videos have pose files but no video under {DATA_ROOT} "
             f"({', '.join(_lack[:5])}{' ...' if len(_lack) > 5 else ''}), and {', '.join(f'{s}.enabled' for s in _on)}"
             f" read the frames of every video: put those videos under the root (README, 'Real datasets'), or set "
             f"{', '.join(f'{s}.enabled' for s in _on)}: false.")
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
    if not POSE_ONLY:  # else the pose-only line has said it
        print(
            f"mgenet: stage2.enabled is false: fusion.weights of {', '.join(_dropped)} are left out; fused ="
            f" {config['fusion']['weights']}.",
            file=sys.stderr,
        )
if not STAGE2 and config["matching_seeds"]:
    fail(f"matching_seeds {config['matching_seeds']} rewrite stage 2's matching memory but stage2.enabled is false"
         " (matching_seeds): enable stage 2 or drop matching_seeds.")


# The weak split (dataset.weak_split). The generated demo writes one, weak_split.csv, used unless the config names
# another or "" (none); a scene split (dataset.scenes / move_to_train) changes which videos are test videos, so it
# gets none by default. Filled into the config so that index_dataset checks it (its params carry the dataset section).
if "weak_split" not in config["dataset"] and config["dataset"]["generate"] and not (
        config["dataset"].get("scenes") or config["dataset"].get("move_to_train")):
    config["dataset"]["weak_split"] = "weak_split.csv"
if config["dataset"].get("weak_split") and not (Path(DATA_ROOT) / config["dataset"]["weak_split"]).is_file():
    # a split shipped with mgenet (resources/splits/, e.g. shanghaitech_weak.csv: README, 'AR-Net'), named relative to
    # the workflow's folder: rewritten relative to the dataset root, where every reader looks for it
    _shipped = Path(workflow.basedir) / config["dataset"]["weak_split"]
    if _shipped.is_file():
        config["dataset"]["weak_split"] = os.path.relpath(_shipped, DATA_ROOT)
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


@dag_errors
def manifest(wildcards):
    """The manifest of the dataset (evaluating the index_dataset checkpoint)."""
    # mgenet's reader: a manifest cut short or replaced by another file is one error naming it (an MgenetError)
    return read_manifest(checkpoints.index_dataset.get().output[0])


def videos_of(wildcards, split):
    df = manifest(wildcards)
    return sorted(df.loc[df["split"] == split, "video"])


def get_segments(wildcards):
    """Segments files of every video of a split (the split wildcard)."""
    return expand(f"{R}/segments/{{video}}.h5", video=videos_of(wildcards, wildcards.split))


def get_train_segments(wildcards):
    return get_split_segments(wildcards, "train")


@dag_errors
def get_flow_checkpoint(wildcards):
    """An official STG-NF checkpoint to import instead of training (flow.checkpoint), as an input so that replacing
    the file reruns the import."""
    path = config["flow"]["checkpoint"]
    if path and not Path(path).is_file():
        raise MgenetError(f"{path}: STG-NF checkpoint not found (flow.checkpoint): give the path of the official .tar "
                          "(README, 'Weights') or leave flow.checkpoint empty to train the flow.")
    return [path] if path else []


@dag_errors
def get_pose_source(wildcards):
    """A video's pose file as given by the dataset (imported and validated by import_pose)."""
    df = manifest(wildcards)
    row = df[df["video"] == wildcards.video]
    if row.empty:
        raise MgenetError(f"video {wildcards.video} is not in {R}/manifest.csv: ask for a video of the dataset (its"
                          " manifest lists them).")
    return row["pose_path"].iloc[0]


def get_ground_truth(wildcards, split="test"):
    """The files fuse_scores reads the truth from: every test (or validation) video's mask (or tracks file) and the
    interval table, so that editing one refuses stale metrics (fuse_scores and evaluate rerun)."""
    df = manifest(wildcards)
    gt = sorted(p for p in df.loc[df["split"] == split, "gt_path"] if p)
    return gt + ([intervals_path()] if Path(intervals_path()).is_file() else [])


@dag_errors
def get_val_truth(wildcards):
    """Rule tune's truth; a dataset without a validation split (ShanghaiTech) stops the DAG here with one line, not
    inside encode_flow with no segments to encode."""
    if not has_split(wildcards, "val"):
        raise MgenetError(
            f"{R}/manifest.csv: dataset {DS} has no validation split, and `snakemake tune` chooses settings on the"
            " validation split only; add one (pose/validation/ or pose/val/ with its ground truth) or keep the"
            " documented defaults (README, 'Validation split and tuning')."
        )
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


@dag_errors
def get_video_path(wildcards):
    """A video's file (or frame folder) as the manifest lists it."""
    df = manifest(wildcards)
    row = df[df["video"] == wildcards.video]
    if row.empty:
        raise MgenetError(f"video {wildcards.video} is not in {R}/manifest.csv: ask for a video of the dataset (its"
                          " manifest lists them).")
    path = row["video_path"].iloc[0]
    if not path:
        raise MgenetError(f"video {wildcards.video} has no video file under {DATA_ROOT} (pose-only dataset): put it "
                          "under the dataset root (README, 'Real datasets').")
    return path


@dag_errors
def get_feature_weights(wildcards):
    """The Video Swin checkpoint features.weights names (none for `random`), so that replacing it reruns features."""
    weights = config["features"]["weights"]
    if weights == "random":
        return []
    if not Path(weights).is_file():
        raise MgenetError(
            f"{weights}: Video Swin checkpoint not found (features.weights). Download"
            " swin_tiny_patch244_window877_kinetics400_1k.pth (README, 'Features and weights') or set features.weights: random."
        )
    return weights


def get_all_features(wildcards):
    """Features files of every video that has a video file (pose-only datasets have none to crop); the anomalous
    training videos of STG-NF's supervised setting serve the flow alone."""
    df = manifest(wildcards)
    df = df[df["split"] != "abnormal_train"]
    return expand(f"{R}/features/{{video}}.h5", video=sorted(df.loc[df["video_path"] != "", "video"]))


_ANNOTATION_DIRS = None


def annotation_dirs():
    """UBnormal's annotation folders under the dataset root, by video (walked once, on first use, found or not)."""
    global _ANNOTATION_DIRS
    if _ANNOTATION_DIRS is None:
        _ANNOTATION_DIRS = {}
        if config["dataset"]["layout"] == "ubnormal" and Path(DATA_ROOT).is_dir():
            from mgenet.io.annotations import find_annotation_dirs

            _ANNOTATION_DIRS = {v: str(p) for v, p in find_annotation_dirs(DATA_ROOT).items()}
    return _ANNOTATION_DIRS


@dag_errors
def get_abnormal_train_segments(wildcards):
    """flow.train.supervised: segments files of the anomalous training videos (pose/abnormal_train), else none."""
    return get_split_segments(wildcards, "abnormal_train") if SUPERVISED else []


@dag_errors
def get_window_labels(wildcards):
    """flow.train.supervised: the label table of each anomalous training video, in the order of its segments."""
    if not SUPERVISED:
        return []
    return expand(f"{R}/labels/{{video}}.csv", video=videos_of(wildcards, "abnormal_train"))


@dag_errors
def get_annotation_dir(wildcards):
    """A video's UBnormal annotation folder; none for a normal video (its windows all keep label 1)."""
    folder = annotation_dirs().get(wildcards.video)
    return [folder] if folder else []


@dag_errors
def get_annotation_dirs_of_test(wildcards):
    """The test videos' annotation folders (the boxes of RBDC / TBDC on UBnormal)."""
    dirs = annotation_dirs()
    return sorted(dirs[v] for v in videos_of(wildcards, "test") if v in dirs)


@dag_errors
def _features_of(wildcards, split):
    df = manifest(wildcards)
    df = df[df["split"] == split]
    no_video = sorted(df.loc[df["video_path"] == "", "video"])
    if no_video:
        raise MgenetError(
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
    that runs are resampled alike), the RBDC / TBDC settings, and the layout (which named protocols apply)."""
    return json.dumps({"dataset": DS, "layout": config["dataset"]["layout"], "seed": config["seed"],
                       "evaluation": config["evaluation"], **extra}, sort_keys=True)


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
