"""One grid of the site (a `<dataset>/<profile>` folder of results) and what its pages show: the
leaderboard, the headline ranking, each row's flags with their evidence, the attack leaderboard
and the zoo cards of its models."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robustbench_lite.report.columns import Column, Kind, Stat
from robustbench_lite.report.format import FLAGS, is_missing
from robustbench_lite.report.leaderboard import rows
from robustbench_lite.report.verdict import headline_columns
from robustbench_lite.store.cell_record import CellRecord
from robustbench_lite.store.certificates import CertificateRecord
from robustbench_lite.store.zoo import ZooEntry


@dataclass
class Grid:
    """One dataset/profile folder of results and what the site shows of it."""

    source: str  # the folder it was built from, as shown (never an absolute local path)
    label: str  # e.g. 'mnist-5k / standard' (with its results sub-root, if any)
    slug: str  # its folder in the site and its anchor on the index, e.g. 'mnist-5k/standard'
    frame: pd.DataFrame  # the leaderboard (leaderboard.build)
    cells: list[CellRecord]
    certificates: list[CertificateRecord]
    evidence: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # row -> flags
    attacks: pd.DataFrame = field(default_factory=pd.DataFrame)  # ranking.table
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)  # ranking.scores
    zoo: dict[str, ZooEntry] = field(default_factory=dict)  # model key -> shipped model
    pages: dict[str, str] = field(default_factory=dict)  # defense -> page path from the index
    attack_page: str = ""  # the attack leaderboard's path from the index

    def row_cells(self, label: str) -> list[CellRecord]:
        """The cells of one leaderboard row (a row is one model: `defense@<id>` when a defense
        has cells of several)."""
        return next((g for lab, _, g in rows(self.cells) if lab == label), [])

    def row_key(self, label: str) -> str | None:
        """The model key of a row."""
        return next((key for lab, key, _ in rows(self.cells) if lab == label), None)

    def row_certificates(self, label: str) -> list[CertificateRecord]:
        """The certificates of the model of one row."""
        for lab, key, group in rows(self.cells):
            if lab == label:
                defense = group[0].defense
                return [
                    c for c in self.certificates if c.defense == defense and c.model_identity == key
                ]
        return []

    @property
    def anchor(self) -> str:
        return self.slug.replace("/", "-")

    @property
    def worst_columns(self) -> list[str]:
        """`worst_<tm>` at the threat models' default budgets, main threat model first."""
        return headline_columns(list(self.frame.columns))

    @property
    def certified_columns(self) -> list[str]:
        parsed = [Column.parse(c) for c in self.frame.columns]
        return [c.name for c in parsed if c.kind is Kind.CERTIFIED and c.is_value]

    def row_flags(self, label: str) -> list[str]:
        """The flag codes of one row, as its leaderboard column lists them."""
        value = self.frame.set_index("defense").loc[label].get(FLAGS)
        return [] if is_missing(value) else [c for c in str(value).split(";") if c]


def describe(column: str) -> str:
    """The tooltip of a leaderboard column."""
    if column == "defense":
        return "the defense; its page has every cell's details"
    if column == "n":
        return "test samples of the row (its widest cell)"
    if column == "clean_acc":
        return "accuracy on the n clean test samples"
    parsed = Column.parse(column)
    if parsed.kind is Kind.WORST:
        return "per-sample worst case over the attacks of this threat model"
    if parsed.kind is Kind.CERTIFIED:
        return "verified (certified) accuracy at the Linf eps, recomputed by the runner"
    if parsed.kind is Kind.CLAIMED:
        return "the defense's own certificate at the Linf eps, not recomputed by the runner"
    if column == FLAGS:
        return "flags of this row (see the notes below the table)"
    if parsed.stat is Stat.QUERIES:
        return "median queries per sample of the successful samples"
    if parsed.stat is Stat.DIST:
        return "median distance found by the minimal attack"
    return "robust accuracy under this attack (verified by the runner)"


def relative(target: Path, start: Path) -> str:
    """A POSIX relative link from the folder `start` to `target`."""
    return Path(os.path.relpath(target, start)).as_posix()


def shown_path(folder: Path) -> str:
    """How the site names a results folder: relative to the working directory when inside it,
    else by its own name; never an absolute local path."""
    folder = Path(folder)
    if not folder.is_absolute():
        return folder.as_posix()
    try:
        return folder.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return folder.name
