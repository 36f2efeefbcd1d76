"""A leaderboard column as a typed value: what it holds (an attack cell, a worst case, a
certificate, a fixed field), its overrides (`@eps=0.1`, `@budget=1`, `@no-eot`) and its
statistic (the value, its interval's bounds, a median, a count). `Column.parse(name).name` gives
the name back, so every place that reads a column's meaning reads it here, never by slicing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from robustbench_lite.names import StrEnum
from robustbench_lite.protocol.threat_models import TM
from robustbench_lite.store import certificates

#: Threat models in the order the board shows them (the dataset's main threat model first).
TM_ORDER: dict[str, int] = {TM.LINF: 0, TM.L2: 1, TM.SPATIAL: 2}
TM_TITLE: dict[str, str] = {TM.LINF: "Linf", TM.L2: "L2", TM.SPATIAL: "spatial"}
WORST = "worst_"
EPS = "eps_"
FLAGS = "flags"
#: The verdict's columns (report/verdict.py): the rank of a ranked row, and why the others are not.
RANK, VERDICT = "rank", "verdict"
FIXED = ("defense", "n", "clean_acc", FLAGS, RANK, VERDICT)


class Kind(StrEnum):
    """What a column's value is."""

    FIXED = "fixed"  # defense, n, clean_acc, flags
    ATTACK = "attack"  # one attack cell's robust accuracy
    WORST = "worst"  # the per-sample worst case of a threat model's cells
    CERTIFIED = "certified"  # a certificate the runner recomputed itself
    CLAIMED = "claimed"  # a certificate it could not: the defense's word
    EPS = "eps"  # the default eps of a threat model's headline worst case (`eps_<tm>`)


class Stat(StrEnum):
    """Which statistic of the column's quantity: the value, or a suffix naming another."""

    VALUE = ""
    LO = "_lo"  # the 95% Wilson interval's lower bound
    HI = "_hi"  # its upper bound
    QUERIES = "_queries"  # median queries of the successful samples (query attacks)
    DIST = "_dist"  # median distance (minimal attacks)
    N = "_n"  # the samples it covers, where fewer than the row's


#: Suffixes of per-cell statistics (every Stat but the value), as the CSV spells them.
EXTRA = tuple(s.value for s in Stat if s is not Stat.VALUE)
INTERVAL = (Stat.LO.value, Stat.HI.value)


@dataclass(frozen=True)
class Column:
    """One leaderboard column: `kind`, `base` (attack name, threat model, certificate column or
    fixed name), `overrides` (the cell name's `@...` part) and `stat`."""

    kind: Kind
    base: str
    overrides: str = ""
    stat: Stat = Stat.VALUE

    @classmethod
    def parse(cls, name: str) -> Column:
        """The column a leaderboard header names."""
        stat = Stat.VALUE
        if name not in FIXED:
            for s in Stat:
                if s is not Stat.VALUE and name.endswith(s.value):
                    stat, name = s, name[: -len(s.value)]
                    break
        base, at, rest = name.partition("@")
        overrides = at + rest
        if name in FIXED:
            return cls(Kind.FIXED, name, "", stat)
        if base.startswith(WORST):
            return cls(Kind.WORST, base.removeprefix(WORST), overrides, stat)
        if base.startswith(EPS) and base.removeprefix(EPS) in TM_ORDER and not overrides:
            return cls(Kind.EPS, base.removeprefix(EPS), overrides, stat)
        if base == certificates.CLAIMED:
            return cls(Kind.CLAIMED, base, overrides, stat)
        if base == certificates.COLUMN:
            return cls(Kind.CERTIFIED, base, overrides, stat)
        return cls(Kind.ATTACK, base, overrides, stat)

    @classmethod
    def worst(cls, threat_model: str, overrides: str = "") -> Column:
        """The worst case of a threat model's cells sharing `overrides`."""
        return cls(Kind.WORST, str(threat_model), overrides)

    @classmethod
    def eps_of(cls, threat_model: str) -> Column:
        """The column holding the default eps of a threat model's headline worst case."""
        return cls(Kind.EPS, str(threat_model))

    @property
    def name(self) -> str:
        """The header, as the CSV and every table write it."""
        prefix = {Kind.WORST: WORST, Kind.EPS: EPS}.get(self.kind, "")
        return f"{prefix}{self.base}{self.overrides}{self.stat.value}"

    def title(self, default_eps: float | None = None) -> str:
        """The header a reader sees: a worst case with its threat model and eps (`worst Linf
        (eps 0.3)`), given the threat model's default eps; other columns by their name."""
        if self.kind is Kind.FIXED and self.base == RANK:
            return "#"
        if self.kind is not Kind.WORST or not self.is_value:
            return self.name
        eps = self.eps if self.eps is not None else default_eps
        if eps is None:  # a frame that does not say its eps keeps the plain name
            return self.name
        return f"worst {TM_TITLE.get(self.base, self.base)} (eps {eps_text(eps)})"

    def of(self, stat: Stat) -> Column:
        """The same quantity's other statistic (its interval bound, median, count)."""
        return replace(self, stat=stat)

    @property
    def is_value(self) -> bool:
        """A quantity itself, not one of its statistics."""
        return self.stat is Stat.VALUE

    @property
    def is_accuracy(self) -> bool:
        """A robust, worst-case or certified accuracy (not a fixed field, not an eps)."""
        return self.kind not in (Kind.FIXED, Kind.EPS)

    @property
    def is_certificate(self) -> bool:
        return self.kind in (Kind.CERTIFIED, Kind.CLAIMED)

    @property
    def is_headline(self) -> bool:
        """A worst case at the threat model's default budget and settings."""
        return self.kind is Kind.WORST and not self.overrides

    @property
    def threat_model(self) -> str | None:
        """The threat model of a worst case or certificate (an attack cell's is in its file)."""
        if self.kind in (Kind.WORST, Kind.EPS):
            return self.base
        return str(certificates.THREAT_MODEL) if self.is_certificate else None

    @property
    def eps(self) -> float | None:
        """The eps its overrides name (`@eps=0.1`), None at the default."""
        for part in self.overrides.split("@"):
            key, _, value = part.partition("=")
            if key == "eps":
                return float(value)
        return None


def eps_text(eps: float) -> str:
    """An eps as people write it: `8/255` where it is a whole number of 255ths that `:g` would
    print with more than 3 decimals, else `:g` (0.3, 1.5)."""
    steps = eps * 255
    if abs(steps - round(steps)) < 1e-6 and len(f"{eps:g}") > 5:
        return f"{round(steps)}/255"
    return f"{eps:g}"


def headline_eps(row: Mapping[str, Any]) -> dict[str, float]:
    """Threat model -> the default eps of its headline worst case, from a row's `eps_<tm>`."""
    out = {}
    for name, value in row.items():
        column = Column.parse(str(name))
        if column.kind is Kind.EPS and isinstance(value, int | float) and value == value:
            out[column.base] = float(value)
    return out


def titles(names: Sequence[str], row: Mapping[str, Any] | None) -> dict[str, str]:
    """Header -> what a reader sees (`worst Linf (eps 0.3)`), given a row with `eps_<tm>`."""
    eps = headline_eps(row or {})
    return {n: Column.parse(n).title(eps.get(Column.parse(n).base)) for n in names}


def order(name: str, threat_models: dict[str, str]) -> tuple[int, bool, str]:
    """Sort key of the accuracy columns: threat model, its cells before its worst case, name;
    `threat_models` maps attack cell names to theirs."""
    column = Column.parse(name)
    tm = column.base if column.kind is Kind.WORST else threat_models.get(name, "")
    return TM_ORDER.get(tm, len(TM_ORDER)), column.kind is Kind.WORST, name
