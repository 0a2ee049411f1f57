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


# The splits whose segments are scored: test (the final figures), val (settings are chosen on it: rule evaluate_val,
# `snakemake tune`) and train (its segment scores, for fusion.normalise: train). A split's files carry its name but
# the test split's, which keep their short names (scores/segments.parquet, scores/frames.parquet, eval/metrics.json).
SCORED_SPLITS = ("test", "val", "train")


# fusion.normalise: train scales the fused score by the training segments' scores of the same model: every fuse and
# evaluate rule then reads its run's scores/segments_train.parquet (train_scores), which rule score_components_train
# and its seeds / ablation / matching-seeds / tune twins write.
NORMALISE_TRAIN = config["fusion"]["normalise"] == "train"


def train_scores(path):
    """[path] (a run's training segment scores) when the fusion is scaled by them, else nothing."""
    return [path] if NORMALISE_TRAIN else []


def split_suffix(split):
    return "" if split == "test" else f"_{split}"


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


# Snippet features (snippets.smk) for the video-level baselines; each baseline's rules ask for its snippet_len.
def snippets_params(wildcards):
    """The settings the snippet vectors depend on: the snippets section, the backbone's weights, seed and device."""
    return json.dumps({**config["snippets"], "weights": config["features"]["weights"], "seed": config["seed"],
                       "device": config["device"]}, sort_keys=True)


def snippet_files(videos, snippet_len):
    """Snippets files of ``videos`` at ``snippet_len`` frames per snippet (what a baseline's rule takes as input)."""
    return expand(f"{R}/snippets/len{snippet_len}/{{video}}.h5", video=sorted(videos))


def get_all_features(wildcards):
    """Features files of every video that has a video file (pose-only datasets have none to crop)."""
    df = manifest(wildcards)
    return expand(f"{R}/features/{{video}}.h5", video=sorted(df.loc[df["video_path"] != "", "video"]))


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


# ---------------------------------------------------------------------------------------------------- ablations
# Each variant of ablation.variants is the main config with its stage2 / fusion keys merged over it. Variants whose
# stage-2 settings equal the main ones reuse the main model and segment scores; only fusion then differs.


def merged(base, override):
    """`override` merged key by key over `base` (mappings recurse, anything else replaces), as config files merge."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _variant(name, spec):
    full = merged(config, {"stage2": spec.get("stage2", {}), "fusion": spec.get("fusion", {})})
    try:
        validate(full, schema="../schemas/config.schema.yaml", set_default=True)
    except Exception as e:
        raise ValueError(f"ablation.variants.{name}: {e}") from e
    if full["stage2"]["mm_form"] != config["stage2"]["mm_form"]:
        # a variant scores with the main model unless it retrains, and always with the main scoring params
        raise ValueError(
            f"ablation.variants.{name}: stage2.mm_form differs from the main config's; a variant cannot change how"
            " S_mm is scored (set it in the main config, or compare the two forms with two runs)."
        )
    return full


ABLATIONS = {name: _variant(name, spec) for name, spec in config["ablation"]["variants"].items()}


def _own_stage2(name):
    """Whether a variant needs a stage-2 model of its own (its training settings differ from the main ones)."""
    return stage2_params(ABLATIONS[name]["stage2"]) != stage2_params(config["stage2"])


def get_ablation_stage2_params(wildcards):
    return stage2_params(ABLATIONS[wildcards.ablation]["stage2"])


def get_ablation_segments(wildcards):
    """A variant's segment scores: its own when it trains its own stage 2, else the main run's."""
    if _own_stage2(wildcards.ablation):
        return f"{R}/ablation/{wildcards.ablation}/scores/segments.parquet"
    return f"{R}/scores/segments.parquet"


def get_ablation_train_scores(wildcards):
    """A variant's training segment scores when its fusion is scaled by them (its own model's, or the main run's)."""
    if ABLATIONS[wildcards.ablation]["fusion"]["normalise"] != "train":
        return []
    if _own_stage2(wildcards.ablation):
        return [f"{R}/ablation/{wildcards.ablation}/scores/segments_train.parquet"]
    return [f"{R}/scores/segments_train.parquet"]


def get_ablation_fusion_params(wildcards):
    v = ABLATIONS[wildcards.ablation]
    return json.dumps({**v["fusion"], **v["score"]}, sort_keys=True)


def get_ablation_evaluate_params(wildcards):
    """A variant's evaluation settings: the main ones, with the variant's fusion for its RBDC / TBDC detections."""
    return evaluate_params(fusion=ABLATIONS[wildcards.ablation]["fusion"])


def get_ablation_metrics(wildcards):
    """Every variant's metrics.json, named by the variant, in the config's order."""
    return {name: f"{R}/ablation/{name}/eval/metrics.json" for name in ABLATIONS}


def ablation_metrics_args(wildcards, input):
    """NAME=PATH arguments, one list item each, so that the shell line quotes every one (`{params.metrics:q}`)."""
    return [f"{name}={path}" for name, path in input.items()]


def intervals_path():
    return str(Path(DATA_ROOT) / config["dataset"]["intervals"])


def boxes_path():
    """The dataset's boxes of the anomalous objects (RBDC / TBDC). A param, not an input: it may not exist (then
    evaluate leaves the two figures out), and for the demo it lies inside make_demo_dataset's folder."""
    return str(Path(DATA_ROOT) / config["dataset"]["boxes"])


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


def get_report_features(wildcards):
    """The test features files, whose backbone checkpoint hash the report records (none without stage 2)."""
    return get_test_features(wildcards) if STAGE2 else []


def summary_table(name, enabled):
    """eval/{name}.csv if the config asks for it (``enabled``) and `snakemake {name}` has made it, else "": the report
    shows the ablation table and the summaries over seeds when they exist (see rule evaluate)."""
    path = f"{R}/eval/{name}.csv"
    return path if enabled and Path(path).is_file() else ""


ABLATION_TABLE = summary_table("ablation", STAGE2 and ABLATIONS)  # ablations need stage 2
SEEDS_TABLE = summary_table("seeds", config["seeds"])
MATCHING_SEEDS_TABLE = summary_table("matching_seeds", STAGE2 and config["matching_seeds"])
TUNING_TABLE = summary_table("tuning", True)


def content_sha256(path):
    """A table's content hash ("" for no table), so that a new or changed table reruns evaluate (see rule evaluate)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""


def get_final_outputs():
    """What `snakemake` makes: the evaluation and report; with stage 2 also every video's features (an input function:
    the video list comes from the manifest checkpoint). A pose-only run (stage2.enabled: false) reads no features,
    so it extracts none."""
    outputs = [f"{R}/eval/metrics.json", f"{R}/eval/report.html"]
    return outputs + [get_all_features] if STAGE2 else outputs


# Baselines beside MGENet: each enabled baseline's rules file adds {method: its per-frame score table}, which
# fuse_scores joins to the frame table (the files are read by an input function, so include order does not matter).
# A baseline that trains once per seed of `seeds` adds itself to BASELINE_SEEDED and makes the same table under
# results/{ds}/seeds/{seed}/; the others' single table serves every seed's run.
BASELINE_SCORES = {}
BASELINE_SEEDED = set()


# {method: JSON of its figures under its paper's own protocol}, added to metrics.json `paper_protocol` by evaluate
PAPER_PROTOCOL = {}


def get_paper_protocol(wildcards):
    return [PAPER_PROTOCOL[m] for m in sorted(PAPER_PROTOCOL)]


def get_baseline_scores(wildcards):
    """The enabled baselines' per-frame score tables, by method name."""
    return [BASELINE_SCORES[m] for m in sorted(BASELINE_SCORES)]


def get_seed_baseline_scores(wildcards):
    """A seed's baseline tables: its own for the baselines trained per seed, the main run's for the others."""
    return [BASELINE_SCORES[m].replace(f"{R}/", f"{R}/seeds/{wildcards.seed}/", 1) if m in BASELINE_SEEDED
            else BASELINE_SCORES[m] for m in sorted(BASELINE_SCORES)]


# AR-Net (arnet.smk): trained on the weak split's training videos only. Without a weak split it cannot run; a config
# that sets a real dataset over config.yaml inherits arnet.enabled from it, so that is said, not an error.
ARNET = config["arnet"]["enabled"]
if ARNET and not WEAK_SPLIT:
    ARNET = False
    print("mgenet: arnet.enabled but no dataset.weak_split: AR-Net does not run (it trains on the weak split's "
          "training videos and is evaluated on its test videos only; README, 'AR-Net'). Set dataset.weak_split, "
          "or arnet.enabled: false to silence this.", file=sys.stderr)


def arnet_params(seed=None):
    """What shapes AR-Net's training: the arnet section (but `enabled`), seed and device."""
    keep = {k: v for k, v in config["arnet"].items() if k != "enabled"}
    return json.dumps({**keep, "seed": config["seed"] if seed is None else seed, "device": config["device"]},
                      sort_keys=True)


def seed_arnet_params(wildcards):
    return arnet_params(int(wildcards.seed))


def _weak_videos(wildcards, split):
    weak = pd.read_csv(get_weak_split(wildcards)[0], dtype=str, keep_default_na=False)
    return sorted(weak.loc[weak["split"].str.strip() == split, "video"])


def get_arnet_train_snippets(wildcards):
    """Snippets files of the weak split's training videos (index_dataset has checked the split)."""
    return snippet_files(_weak_videos(wildcards, "train"), config["arnet"]["snippet_len"])


def get_arnet_test_snippets(wildcards):
    """Snippets files of every test video: AR-Net's table covers the test split (evaluate keeps the weak test part)."""
    return snippet_files(videos_of(wildcards, "test"), config["arnet"]["snippet_len"])


# Seeds (seeds.smk): the main seed's run stands in for itself, the others train under results/{ds}/seeds/{seed}/.
SEEDS = [s for s in config["seeds"] if s != config["seed"]]


def seed_flow_params(wildcards):
    return params_json("flow", "device", seg_len=config["segments"]["seg_len"], seed=int(wildcards.seed))


def seed_stage2_params(wildcards):
    return stage2_params(config["stage2"], seed=int(wildcards.seed))


def get_seed_metrics(wildcards):
    """Every seed's metrics.json, named by the seed, in the config's order (the main run's for the main seed)."""
    return {
        str(s): f"{R}/eval/metrics.json" if s == config["seed"] else f"{R}/seeds/{s}/eval/metrics.json"
        for s in config["seeds"]
    }


# Matching-memory seeds (seeds.smk): M^r of the main model written again; the main seed's M^r is the main run's.
MATCHING_SEEDS = [s for s in config["matching_seeds"] if s != config["seed"]]


def get_matching_seed_metrics(wildcards):
    """Every matching seed's metrics.json, named by the seed (the main run's for the main seed)."""
    return {
        str(s): f"{R}/eval/metrics.json" if s == config["seed"] else f"{R}/matching_seeds/{s}/eval/metrics.json"
        for s in config["matching_seeds"]
    }


def get_seed_val_metrics(wildcards):
    """Every seed's validation metrics, named by the seed (the main run's eval/val_metrics.json for the main seed)."""
    return {
        str(s): f"{R}/eval/val_metrics.json" if s == config["seed"] else f"{R}/seeds/{s}/eval/val_metrics.json"
        for s in config["seeds"]
    }


def get_seed_matching_metrics(wildcards):
    """metrics.json of every (training seed, matching seed) run, named SEED-MSEED: the main seed's are the
    matching_seeds runs, another seed's own M^r is its seeds run, the rest are M^r rewrites of its model."""
    out = {}
    for s in config["seeds"]:
        for m in config["matching_seeds"]:
            if s == config["seed"]:
                out[f"{s}-{m}"] = get_matching_seed_metrics(wildcards)[str(m)]
            elif m == s:
                out[f"{s}-{m}"] = f"{R}/seeds/{s}/eval/metrics.json"
            else:
                out[f"{s}-{m}"] = f"{R}/seeds/{s}/matching_seeds/{m}/eval/metrics.json"
    return out


def seed_metrics_args(wildcards, input):
    """SEED=PATH arguments, one list item each (quoted one by one by `{params.metrics:q}`)."""
    return [f"{seed}={path}" for seed, path in input.items()]


# Tuning (tune.smk): the stage2.* keys of tune.grid, one value at a time around the main config, each a candidate
# with its own stage 2; "main" is the main model itself.
def _dotted(cfg, key):
    for part in key.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def _tune_grid():
    """tune.grid as it applies to this config: without stage 2 (pose-only runs, STG-NF alone) its stage-2 keys and the
    stage-2 components' weights name nothing to tune, and are left out (said at start, not an error: config.yaml's
    demo grid is inherited by every config)."""
    grid = {k: v for k, v in config["tune"]["grid"].items() if v is not None}  # null: left out (see the schema)
    if not STAGE2:
        dropped = [k for k in grid if k.startswith("stage2.") or k.split(".")[-1] in STAGE2_COMPONENTS]
        for k in dropped:
            del grid[k]
        if dropped:
            print(f"mgenet: stage2.enabled is false: tune.grid's {', '.join(dropped)} are left out.", file=sys.stderr)
    return grid


TUNE_GRID = _tune_grid()


def _tune_candidates():
    out = {}
    for key, values in TUNE_GRID.items():
        if not key.startswith("stage2."):
            continue
        for v in values:
            if _dotted(config, key) == v:
                continue
            text = v if isinstance(v, str) else json.dumps(v)
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{key.split('.')[-1]}-{text}").strip("_")
            override = {}
            node = override
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = v
            full = merged(config, override)
            try:
                validate(full, schema="../schemas/config.schema.yaml", set_default=True)
            except Exception as e:
                raise ValueError(f"tune.grid.{key}: value {v!r}: {e}") from e
            out[name] = {"override": override, "stage2": full["stage2"], "retrain": key != "stage2.mm_form"}
    retrained = [k for k, v in out.items() if v["retrain"]]
    if len(retrained) > config["tune"]["max_retrain"]:
        raise ValueError(
            f"tune.grid asks for {len(retrained)} retrained stage-2 candidates ({', '.join(retrained)}) but"
            f" tune.max_retrain is {config['tune']['max_retrain']}; raise the budget or list fewer stage2.* values."
        )
    return out


TUNE_CANDIDATES = _tune_candidates()
TUNE_RETRAINED = [k for k, v in TUNE_CANDIDATES.items() if v["retrain"]]
# the training segments' scores are read when some setting normalises by them
TUNE_TRAIN = config["fusion"].get("normalise") == "train" or "train" in TUNE_GRID.get("fusion.normalise", [])


def get_tune_stage2_params(wildcards):
    return stage2_params(TUNE_CANDIDATES[wildcards.retrained]["stage2"])


def get_tune_model(wildcards):
    """A candidate's stage-2 model: its own when it retrains, the main one when it only rescores (stage2.mm_form)."""
    if TUNE_CANDIDATES[wildcards.candidate]["retrain"]:
        return f"{R}/tune/{wildcards.candidate}/models/stage2.pt"
    return f"{R}/models/stage2.pt"


def get_tune_score_params(wildcards):
    s2 = TUNE_CANDIDATES[wildcards.candidate]["stage2"]
    return json.dumps({"batch_size": s2["score_batch_size"], "device": config["device"], "mm_form": s2["mm_form"]},
                      sort_keys=True)


def _tune_files():
    files = {"val_main": f"{R}/scores/segments_val.parquet"}
    for name in TUNE_CANDIDATES:
        files[f"val_{name}"] = f"{R}/tune/{name}/scores/segments_val.parquet"
    if TUNE_TRAIN:
        files["train_main"] = f"{R}/scores/segments_train.parquet"
        for name in TUNE_CANDIDATES:
            files[f"train_{name}"] = f"{R}/tune/{name}/scores/segments_train.parquet"
    return files


def get_tune_inputs(wildcards):
    return _tune_files()


def tune_args(prefix):
    """NAME=PATH arguments of the candidates' segment scores whose input name starts with ``prefix`` (quoted one
    by one by `{params...:q}`)."""
    return [f"{k[len(prefix):]}={v}" for k, v in _tune_files().items() if k.startswith(prefix)]


def tune_params():
    return json.dumps(
        {
            "grid": TUNE_GRID,
            "metric": config["tune"]["metric"],
            "fusion": config["fusion"],
            "smoothing_sigmas": config["score"]["smoothing_sigmas"],
            "overrides": {k: v["override"] for k, v in TUNE_CANDIDATES.items()},
        },
        sort_keys=True,
    )


# Two-stream baseline (crkr.smk): its params and input functions
CRKR = config["crkr"]


def crkr_params(stream, seed=None):
    """What a stream's training (and scoring) depends on: its section, plus for CR the backbone's weights, and the
    seed and device."""
    out = {**CRKR[stream], "seed": config["seed"] if seed is None else seed, "device": config["device"]}
    if stream == "cr":  # F_B is fixed: the main seed's (for random weights), whatever the training seed
        out.update(weights=config["features"]["weights"], backbone_seed=config["seed"])
    return json.dumps(out, sort_keys=True)


def _split_video_files(wildcards, split):
    df = manifest(wildcards)
    paths = df.loc[df["split"] == split, "video_path"]
    if (paths == "").any():
        raise ValueError(f"crkr.enabled: the two-stream baseline reads the videos, but {(paths == '').sum()} {split} "
                         f"video(s) of {R}/manifest.csv have no video file (pose-only dataset); set crkr.enabled: "
                         f"false or put the videos under the dataset root.")
    return sorted(paths)


def get_cr_train_videos(wildcards):
    """The training videos' files: the CR stream learns from them alone (never a test video)."""
    return _split_video_files(wildcards, "train")


def get_cr_test_videos(wildcards):
    return _split_video_files(wildcards, "test")


def get_kr_snippets(split):
    def files(wildcards):
        return snippet_files(videos_of(wildcards, split), CRKR["kr"]["snippet_len"])

    return files


def seed_crkr_params(stream):
    def params(wildcards):
        return crkr_params(stream, seed=int(wildcards.seed))

    return params
