"""The one FromDict rule: an unknown key is an error naming it; config_hash is stable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from mgenet import MgenetError
from mgenet.config import FromDict, SettingsError, config_hash


@dataclass
class _S(FromDict):
    SECTION: ClassVar[str] = "demo section"
    IGNORED: ClassVar[tuple[str, ...]] = ("enabled",)

    a: int = 1

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("a must be >= 0")


def test_unknown_key_is_a_settings_error_naming_it_and_the_section() -> None:
    with pytest.raises(SettingsError, match=r"unknown demo section settings \['b'\]"):
        _S.from_dict({"a": 2, "b": 3})
    assert issubclass(SettingsError, MgenetError) and issubclass(SettingsError, ValueError)


def test_ignored_keys_are_dropped_and_bad_values_are_settings_errors() -> None:
    assert _S.from_dict({"a": 2, "enabled": True}) == _S(a=2)
    with pytest.raises(SettingsError, match="a must be >= 0"):
        _S.from_dict({"a": -1})


def test_config_hash_ignores_key_order() -> None:
    assert config_hash({"a": 1, "b": [2]}) == config_hash({"b": [2], "a": 1})
    assert len(config_hash({})) == 16


def test_config_files_validate_as_the_dag_does_presets_included(tmp_path):
    """`validate_config` (score-video's --config): the repository's config and presets pass, partial as presets are;
    an unknown key or a negative weight names the file and the key."""
    import yaml

    from mgenet.config import SettingsError, validate_config

    repo = Path(__file__).resolve().parents[1]
    for f in [repo / "config.yaml", *sorted((repo / "config").glob("*.yaml"))]:
        validate_config(yaml.safe_load(f.read_text()) or {}, f)
    with pytest.raises(SettingsError, match=r"^x.yaml: dataset: Additional properties are not allowed \('nme'"):
        validate_config({"dataset": {"nme": "x"}}, "x.yaml")
    with pytest.raises(SettingsError, match=r"^x.yaml: fusion.weights.mo: -0.5 is less than the minimum of 0"):
        validate_config({"fusion": {"weights": {"mo": -0.5}}}, "x.yaml")
