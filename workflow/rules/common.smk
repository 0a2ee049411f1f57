# Config validation, paths and input functions. No logic beyond path plumbing lives here: every stage's work is an
# `mgenet <command>` of the package.
import json
from pathlib import Path

import pandas as pd
from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml", set_default=True)

DS = config["dataset"]["name"]
R = f"results/{DS}"  # every artifact of this dataset
DATA_ROOT = config["dataset"]["root"]



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
    return expand(f"{R}/segments/{{video}}.h5", video=videos_of(wildcards, "train"))


def get_pose_source(wildcards):
    """A video's pose file as given by the dataset (imported and validated by import_pose)."""
    df = manifest(wildcards)
    row = df[df["video"] == wildcards.video]
    if row.empty:
        raise ValueError(f"video {wildcards.video} is not in {R}/manifest.csv")
    return row["pose_path"].iloc[0]


def intervals_path():
    return str(Path(DATA_ROOT) / config["dataset"]["intervals"])


def get_final_outputs():
    return [
        f"{R}/eval/metrics.json",
        f"{R}/eval/report.html",
    ]
