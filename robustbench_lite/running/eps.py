"""eps as people write it: `8/255`, `0.0314`, `linf:8/255`, `l2:0.5,1`, resolved once at the
boundary (the CLI's `--eps` and the Python API's `eps=`) into plain floats per attack.

A value that is the data's default eps for an attack's threat model, to the precision it was
typed in (`0.0314` and `0.031` for 8/255 = 0.031372..., `8/255` exactly), *is* the default: the
attack runs in its default cell (`pgd`), never in an override column (`pgd@eps=0.0314`) beside
it. Imports no torch, so a bad eps fails fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from robustbench_lite.errors import RBError

#: The threat models an eps may be scoped to (protocol/threat_models.py's TM values; kept as
#: strings here so that parsing an eps imports no torch).
THREAT_MODEL_NAMES = ("linf", "l2", "spatial")


def parse_eps(text: str | float) -> float:
    """One eps: a number (`0.0314`, `3e-2`) or a fraction (`8/255`) -> a positive finite float;
    an RBError (one line) for anything else."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        value = _number(str(text))
    if not (math.isfinite(value) and value > 0):
        raise RBError(f"eps must be a positive number (8/255, 0.3...), got {text!s}")
    return value


def _number(text: str) -> float:
    word = text.strip()
    top, slash, bottom = word.partition("/")
    try:
        if not slash:
            return float(word)
        numerator, denominator = float(top), float(bottom)
    except ValueError:
        raise RBError(f"{text!r} is not a number (an eps is 0.031 or 8/255)") from None
    if denominator == 0:
        raise RBError(f"{text!r} divides by zero")
    return numerator / denominator


@dataclass(frozen=True)
class Eps:
    """One eps as given: its value, the text it was typed as, and the threat model it is limited
    to (None: every selected attack's)."""

    value: float
    text: str
    threat_model: str | None = None

    @classmethod
    def of(cls, given: str | float, threat_model: str | None = None) -> Eps:
        """An eps from text (`8/255`) or a number (a float's shortest repr is its precision)."""
        text = given.strip() if isinstance(given, str) else repr(float(given))
        return cls(parse_eps(given), text, threat_model)

    def is_default(self, default: float) -> bool:
        """Whether this eps is `default` to the precision it was typed in: exactly for a fraction
        or a float; for a decimal with d decimals, when `default` rounded to d decimals is it."""
        if math.isclose(self.value, default, rel_tol=1e-9, abs_tol=0.0):
            return True
        try:
            typed = Decimal(self.text)
        except InvalidOperation:  # a fraction: only the exact value is the default
            return False
        exponent = typed.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        rounded = Decimal(repr(float(default))).quantize(
            Decimal(1).scaleb(-places), ROUND_HALF_EVEN
        )
        return rounded == typed


def parse_eps_spec(items: str | float | Sequence[str | float]) -> list[Eps]:
    """`--eps` values (repeatable) or `eps=`: `0.1,8/255`, `linf:8/255`, `l2:0.5,1`, or numbers
    -> every eps in order, each with the threat model it is limited to (None: all)."""
    given = [items] if isinstance(items, str | int | float) else list(items)
    out: list[Eps] = []
    for item in given:
        if not isinstance(item, str):
            out.append(Eps.of(item))
            continue
        scope, _, values = item.rpartition(":")
        scope = scope.strip().lower()
        if scope and scope not in THREAT_MODEL_NAMES:
            raise RBError(
                f"--eps {item}: unknown threat model {scope!r}; known: "
                f"{', '.join(THREAT_MODEL_NAMES)}"
            )
        for text in values.split(","):
            try:
                out.append(Eps.of(text, scope or None))
            except RBError as exc:
                raise RBError(f"--eps {item}: {scope + ' ' if scope else ''}{exc}") from None
    return out


def eps_groups(
    spec: Sequence[Eps],
    attacks: Mapping[str, str],
    default_eps: Callable[[str], float],
) -> list[tuple[float | None, list[str]]]:
    """The runs an eps plan makes: [(eps, attack names)], eps None for the default cell.

    `attacks`: each selected attack's threat model, in order; `default_eps`: the data's default
    eps of a threat model. An eps that is an attack's default (`Eps.is_default`) runs it in its
    default cell; no spec at all runs every attack at its default. An RBError when no attack has
    the threat model of any eps given."""
    if not spec:
        return [(None, list(attacks))]
    groups: dict[float | None, list[str]] = {}
    for eps in spec:
        for name, tm in attacks.items():
            if eps.threat_model not in (None, tm):
                continue
            key = None if eps.is_default(default_eps(tm)) else eps.value
            chosen = groups.setdefault(key, [])
            if name not in chosen:
                chosen.append(name)
    if not groups:
        raise RBError("no selected attack has the threat model of any --eps given")
    return list(groups.items())
