"""Declarative hyper-parameters: a plugin is a keyword-only dataclass whose fields are its
hyper-parameters, each declared with `hp(default, *checks)` from a small vocabulary of checks.
`hyperparameters()` and `config()` come from the fields, and every check runs on construction
with one message per field ("steps must be at least 1, got 0"), so no constructor repeats them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """One rule a hyper-parameter's value must meet, and how a refusal says it."""

    test: Callable[[Any], bool]
    says: str


def at_least(low: float) -> Check:
    return Check(lambda v: v >= low, f"must be at least {low:g}")


def positive() -> Check:
    return Check(lambda v: v > 0, "must be positive")


def non_negative() -> Check:
    return Check(lambda v: v >= 0, "must be at least 0")


def between(low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> Check:
    """Within [low, high], either end open on request."""
    left, right = "(" if open_low else "[", ")" if open_high else "]"

    def test(v: Any) -> bool:
        above = v > low if open_low else v >= low
        below = v < high if open_high else v <= high
        return bool(above and below)

    return Check(test, f"must lie in {left}{low:g}, {high:g}{right}")


def one_of(choices: Iterable[Any]) -> Check:
    options = tuple(choices)
    return Check(lambda v: v in options, f"must be one of {', '.join(map(str, options))}")


def optional(check: Check) -> Check:
    """The check, or None."""
    return Check(lambda v: v is None or check.test(v), f"{check.says} (or None)")


def hp(default: Any, *checks: Check, doc: str = "") -> Any:
    """A hyper-parameter field: its default, the checks its value must pass, a line on it."""
    return dataclasses.field(default=default, metadata={"checks": checks, "doc": doc})


def check_fields(plugin: Any) -> None:
    """Run every field's checks; the first refusal is a ValueError naming field and value."""
    for field in dataclasses.fields(plugin):
        value = getattr(plugin, field.name)
        for check in field.metadata.get("checks", ()):
            if not check.test(value):
                raise ValueError(f"{field.name} {check.says}, got {value!r}")


#: How a plugin class is declared: keyword-only fields, identity equality (instances are keys).
plugin = dataclasses.dataclass(kw_only=True, eq=False, repr=False)
