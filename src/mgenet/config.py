"""Typed settings: config sections and ``--params`` become dataclasses through :class:`FromDict`, under one rule: an
unknown key is an error that names it."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

C = TypeVar("C")


class FromDict:
    """Mixin for config dataclasses: ``from_dict`` rejects unknown keys, so a misspelt setting fails loudly."""

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} settings {unknown}; known: {sorted(known)}")
        return cls(**d)
