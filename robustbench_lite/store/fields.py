"""Typed reads of a JSON record's fields: a field of the wrong type is a TypeError, which the
loaders turn into their own refusal (diagnostics: None; certificates: an RBError)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def of_type(value: object, kind: type[T]) -> T:
    """`value` if it is a `kind`, else a TypeError."""
    if not isinstance(value, kind):
        raise TypeError(f"{value!r} is not a {kind.__name__}")
    return value


def optional(record: Mapping[str, Any], key: str, kind: type[T]) -> T | None:
    """`record[key]` if it is a `kind`, None where it is missing or null, else a TypeError."""
    value = record.get(key)
    return None if value is None else of_type(value, kind)


def number(record: Mapping[str, Any], key: str) -> float:
    """`record[key]` if it is a number (an int or a float, kept as it is), else a TypeError."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} {value!r} is not a number")
    return value


def optional_number(record: Mapping[str, Any], key: str) -> float | None:
    """`number`, None where the field is missing or null."""
    return None if record.get(key) is None else number(record, key)
