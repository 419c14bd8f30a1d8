"""Settings objects built from user-supplied dicts (connection extras, CLI JSON, admin API)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def settings_from_dict(cls: type[T], data: dict[str, Any], what: str) -> T:
    """Build a settings dataclass, naming any unknown key and the keys that exist."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {sorted(unknown)}; use {sorted(known)}")
    return cls(**data)
