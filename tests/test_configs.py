"""The ready-made configs under config/: every one valid over config.yaml and naming its own results; the scene
splits of the paper's §4.6 selecting the scenes they say (the papers' presets: tests/test_presets.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
CONFIGS = sorted((REPO / "config").glob("*.yaml"))
SCENE_SPLITS = [p for p in CONFIGS if "_scene_split_" in p.stem]


def merged(path: Path) -> dict:
    """config.yaml with the file merged over it, key by key, as `snakemake --configfile path` does."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, yaml.safe_load(path.read_text()))
    validate(config, SCHEMA, set_default=True)
    return config


def test_there_are_scene_split_configs() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"ubnormal_scene_split_ACD", "ubnormal_scene_split_BCD", "ubnormal_scene_split_ABCD"} <= names
    assert {"demo_scene_split_01_03", "demo_scene_split_02_03", "demo_scene_split_01_02_03"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_valid_and_names_its_own_results(path: Path) -> None:
    config = merged(path)
    assert config["dataset"]["name"] != "demo"  # never overwrites the default demo's results
    if path in SCENE_SPLITS:
        assert config["dataset"]["scenes"]


def test_ubnormal_supervised_preset_is_stgnfs_supervised_setting() -> None:
    config = merged(REPO / "config" / "ubnormal_stgnf_supervised.yaml")
    assert config["dataset"]["layout"] == "ubnormal" and config["segments"]["seg_len"] == 16  # --seg_len 16
    assert config["flow"]["model"]["prior_mean"] == 10.0  # --R 10
    train = config["flow"]["train"]
    assert train["supervised"] and train["label_persons"] == "stgnf"
    assert (train["epochs"], train["batch_size"], train["lr"]) == (8, 256, 5e-4)  # args.py
    assert config["segments"]["train_stride"] == 6 and not config["stage2"]["enabled"]


def test_ubnormal_settings_follow_the_paper() -> None:
    sets = {k: merged(REPO / "config" / f"ubnormal_scene_split_{k}.yaml")["dataset"] for k in ("ACD", "BCD", "ABCD")}
    scenes = {k: set(v["scenes"]) for k, v in sets.items()}
    assert scenes["ABCD"] == {1, 3, 4, 5, 11, 20, 21}
    assert scenes["ACD"] | scenes["BCD"] == scenes["ABCD"] and scenes["ACD"] != scenes["BCD"]
    for k, v in sets.items():
        assert set(v["move_to_train"]["subtypes"]) == {"running", "jumping"}
        assert set(v["move_to_train"]["scenes"]) < scenes[k]  # types A and/or B, never C or D
    moved = {k: set(v["move_to_train"]["scenes"]) for k, v in sets.items()}
    assert moved["ACD"] | moved["BCD"] == moved["ABCD"] and not moved["ACD"] & moved["BCD"]
    for k in sets:  # the paper's sizes, not the CPU demo's
        config = merged(REPO / "config" / f"ubnormal_scene_split_{k}.yaml")
        assert config["stage2"]["model"]["dim"] == 256 and config["segments"]["seg_len"] == 16


def test_demo_splits_keep_the_scene_where_exercise_is_normal() -> None:
    for path in (REPO / "config").glob("demo_scene_split_*.yaml"):
        config = merged(path)
        assert "03" in config["dataset"]["scenes"] and config["dataset"]["generate"]


def test_a_misspelt_key_fails() -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, {"dataset": {"scene": ["01"]}})
    with pytest.raises(Exception, match="scene"):
        validate(copy.deepcopy(config), SCHEMA, set_default=True)
