"""The values of `rb`'s options: `--set key=value`, `--normalize` (and `--eps`, parsed by
running/eps.py, which the Python API shares), typed and checked before any work is done (a bad
one is one line, RBError)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.registry import attack_class, attack_names, defense_class


def parse_settings(items: Sequence[str], plugins: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--set key=value` / `--set plugin.key=value` -> {plugin: {key: typed value}}.

    A bare key goes to every selected plugin that has it; a key no selected plugin has is an error.
    """
    classes = {name: _plugin_class(name) for name in plugins}
    settings: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RBError(f"--set expects key=value or plugin.key=value, got {item!r}")
        scope, _, key = key.strip().rpartition(".")
        targets = [scope] if scope else [n for n in plugins if key in classes[n].hyperparameters()]
        if scope and scope not in classes:
            raise RBError(
                f"--set {item}: {scope!r} is not a selected plugin ({', '.join(plugins)})"
            )
        if not targets:
            raise RBError(
                f"--set {item}: no selected plugin has a hyper-parameter {key!r} "
                f"({'; '.join(f'{n}: ' + ', '.join(classes[n].hyperparameters()) for n in plugins)})"
            )
        for name in targets:
            known = classes[name].hyperparameters()
            if key not in known:
                raise RBError(
                    f"{name} has no hyper-parameter {key!r}; known: {', '.join(known) or '(none)'}"
                )
            try:
                settings.setdefault(name, {})[key] = parse_value(text, known[key])
            except RBError as exc:
                raise RBError(f"--set {item}: {exc}") from None
    return settings


def _plugin_class(name: str) -> Any:
    return attack_class(name) if name in attack_names() else defense_class(name)


def parse_value(text: str, default: Any) -> Any:
    """Parse a `--set` value, guided by the type of the hyper-parameter's default.

    A number where the default is a number must be finite (`inf`, `nan` and `none` are refused);
    `none` is taken only where the default itself is None or a string."""
    word = text.strip().lower()
    booleans = {"true": True, "yes": True, "false": False, "no": False}
    numeric = isinstance(default, int | float) and not isinstance(default, bool)
    if word in ("none", "null"):
        if numeric or isinstance(default, bool):
            raise RBError(f"expected a number, got {text!r}")
        return None
    if isinstance(default, bool):
        if word not in booleans:
            raise RBError(f"expected true or false, got {text!r}")
        return booleans[word]
    casters: list[Callable[[str], Any]]
    if isinstance(default, int):
        return _integer(text)
    if isinstance(default, float):
        casters = [float]
    else:  # a string or None default: take the narrowest reading
        if word in booleans:
            return booleans[word]
        casters = [int, float, str]
    for cast in casters:
        try:
            value = cast(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise RBError(f"expected a finite number, got {text!r}")
        return value
    raise RBError(f"expected a number, got {text!r}")


INT64 = (-(2**63), 2**63 - 1)


def _integer(text: str) -> int:
    """An integer hyper-parameter: `12`, or `1e3` where it is a whole number, within int64."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise RBError(f"expected an integer, got {text!r}") from None
        if not math.isfinite(number) or not number.is_integer():
            raise RBError(f"expected an integer, got {text!r}") from None
        value = int(number)
    if not INT64[0] <= value <= INT64[1]:
        raise RBError(f"{text} is out of an integer's range ({INT64[0]} to {INT64[1]})")
    return value


def parse_normalize(text: str | None) -> tuple[list[float], list[float]] | None:
    """`--normalize MEAN,STD` (channels separated by ':') -> ([means], [stds]); None if not given."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 2:
        raise RBError(f"--normalize {text!r}: expected MEAN,STD (channels separated by ':')")
    try:
        mean, std = ([float(v) for v in part.split(":")] for part in parts)
    except ValueError:
        raise RBError(f"--normalize {text!r}: MEAN and STD must be numbers") from None
    return mean, std
