"""The one place drawenv's user-facing errors come from.

User mistakes (a bad constructor argument, a malformed dataset) raise :class:`DrawEnvError` with
the argument, the bad value and a hint for the fix. Model mistakes never raise: the env turns them
into a defined outcome and a message in ``info["errors"]``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class DrawEnvError(ValueError):
    """A user mistake: wrong argument, bad configuration or malformed data."""


def invalid_argument(name: str, value: Any, expected: str, hint: str = "") -> DrawEnvError:
    """Build the error for argument ``name``: "Expected X, got Y" plus an optional hint."""
    message = f"Invalid `{name}`: expected {expected}, got {value!r}."
    if hint:
        message += f" {hint}"
    return DrawEnvError(message)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise with a "did you mean"."""
    allowed = list(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, allowed, n=1)
        if close:
            hint = f"Did you mean {close[0]!r}?"
    expected = "one of " + ", ".join(repr(a) for a in allowed)
    raise invalid_argument(name, value, expected, hint)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
) -> Any:
    """Return ``value`` if it is a (finite) number within [low, high]; otherwise raise."""
    kinds = (int,) if integer else (int, float)
    kind = "an integer" if integer else "a number"
    bounds = ""
    if low is not None and high is not None:
        bounds = f" in [{low}, {high}]"
    elif low is not None:
        bounds = f" >= {low}"
    elif high is not None:
        bounds = f" <= {high}"
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    ok = ok and value == value and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise invalid_argument(name, value, kind + bounds)
    return value


def check_keys(keys: Iterable[Any], allowed: Iterable[str], owner: str) -> None:
    """Raise unless every key is one of ``allowed``, naming the first unknown key, ``owner``
    (whose keywords they are), the allowed keys and a "did you mean"."""
    allowed = list(allowed)
    unknown = [key for key in keys if key not in allowed]
    if not unknown:
        return
    key = unknown[0]
    if not allowed:
        raise DrawEnvError(f"Unknown keyword {key!r} for {owner}: it takes no keywords.")
    expected = ", ".join(repr(a) for a in allowed)
    message = f"Unknown keyword {key!r} for {owner}: expected one of {expected}."
    close = difflib.get_close_matches(key, allowed, n=1) if isinstance(key, str) else []
    if close:
        message += f" Did you mean {close[0]!r}?"
    raise DrawEnvError(message)
