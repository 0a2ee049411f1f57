"""Typed settings: config sections and ``--params`` become dataclasses through :class:`FromDict`, under one rule: an
unknown key is an error that names it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from mgenet import MgenetError

C = TypeVar("C", bound="FromDict")


class SettingsError(MgenetError, ValueError):
    """A setting that does not exist or has a bad value. A :class:`MgenetError`, so the CLI prints it as one
    ``error:`` line, and a ``ValueError``, as a bad argument to a dataclass is."""


class FromDict:
    """Mixin for settings dataclasses: ``from_dict`` rejects unknown keys, so a misspelt setting fails loudly.

    A subclass converts and validates values in ``__post_init__`` (lists to tuples, ranges), names itself in errors
    through ``SECTION``, and lists in ``IGNORED`` the keys its callers send that do not shape it (accepted and
    dropped, never kept).
    """

    SECTION: ClassVar[str] = ""
    IGNORED: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls: type[C], d: Any) -> C:
        if not isinstance(d, dict):
            raise SettingsError(f"{cls.SECTION or cls.__name__} settings must be a mapping, not {d!r}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known - set(cls.IGNORED))
        if unknown:
            raise SettingsError(f"unknown {cls.SECTION or cls.__name__} settings {unknown}; known: {sorted(known)}")
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except MgenetError:
            raise
        except (TypeError, ValueError) as e:  # a value ``__post_init__`` refuses, or one of the wrong type
            raise SettingsError(str(e)) from e


def config_hash(params: dict[str, Any]) -> str:
    """Short stable hash of a settings object, stored as provenance in every artifact."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


# The JSON Schema of config.yaml, which Snakemake validates the config against before it builds the DAG; a config read
# outside the workflow (``mgenet score-video --config``) goes through the same file.
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _without_required(schema: Any) -> Any:
    """The schema with every ``required`` list left out (types, ranges and unknown keys are still checked)."""
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


def validate_config(cfg: Any, source: str | Path) -> dict[str, Any]:
    """``cfg`` (a config file's mapping, read from ``source``) checked against the workflow's schema: an unknown key,
    a value of the wrong type or out of range is a :class:`SettingsError` naming the file and the key. A partial config
    (a preset merged over config.yaml) is checked for what it has.

    Raises:
        SettingsError: the config breaks the schema.
        MgenetError: the schema is not where the checkout keeps it.
    """
    import jsonschema
    import yaml

    if not isinstance(cfg, dict):
        raise SettingsError(f"{source}: expected a mapping of config sections, got {type(cfg).__name__}.")
    if not SCHEMA.is_file():
        raise MgenetError(f"{SCHEMA}: the config schema is not found; run mgenet from its checkout (pip install -e .).")
    # a preset (config/*.yaml) merges over config.yaml key by key, so it may leave out what the schema requires
    schema = _without_required(yaml.safe_load(SCHEMA.read_text()))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if error is not None:
        key = ".".join(str(k) for k in error.absolute_path) or "the top level"
        raise SettingsError(f"{source}: {key}: {error.message} (as {SCHEMA.name} says); fix it or leave it out.")
    return cfg
