"""Checks of a task's own arguments, with messages that name the argument, the valid values and the fix."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable
from typing import Any


def closest(value: str, valid: Iterable[str]) -> str | None:
    """The valid value a typo most likely meant (case-insensitive), or None when nothing is close."""
    options = {option.lower(): option for option in valid}
    match = difflib.get_close_matches(str(value).lower(), list(options), n=1, cutoff=0.6)
    return options[match[0]] if match else None


def did_you_mean(value: Any, valid: Iterable[str]) -> str:
    """`` (did you mean 'arrival'?)`` for a typo of a valid value, or nothing."""
    guess = closest(str(value), valid)
    return f" (did you mean {guess!r}?)" if guess else ""


def invalid_choice(parameter: str, value: Any, valid: Iterable[str]) -> str:
    """``wait_for='arived' is not valid: use 'arrival', 'completion' or 'return' (did you mean 'arrival'?)``."""
    options = list(valid)
    quoted = [repr(option) for option in options]
    listed = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]
    return f"{parameter}={value!r} is not valid: use {listed}{did_you_mean(value, options)}."


def check_choice(parameter: str, value: Any, valid: Iterable[str]) -> str:
    """``value`` when it is one of ``valid``; otherwise a ValueError naming the parameter and the closest value."""
    valid = list(valid)
    if value in valid:
        return str(value)
    raise ValueError(invalid_choice(parameter, value, valid))


def check_seconds(parameter: str, value: Any) -> float:
    """A non-negative number of seconds (a timedelta too), or a ValueError naming the parameter."""
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{parameter}={value!r} is not valid: give a number of seconds, 0 or more.")
    return float(value)
