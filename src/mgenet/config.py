"""Typed settings: config sections and ``--params`` become dataclasses through :class:`FromDict`, under one rule: an
unknown key is an error that names it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
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
