"""The typed column: every header of the committed leaderboards parses and names itself back,
and each kind, override and statistic is read from the type, not by slicing strings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from robustbench_lite.report.columns import Column, Kind, Stat

BOARDS = sorted(Path(__file__).parents[2].glob("results/**/leaderboard.csv"))


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: str(p.parent.relative_to(p.parents[2])))
def test_every_committed_header_round_trips(board: Path) -> None:
    headers = list(pd.read_csv(board, nrows=0).columns)
    assert headers, board
    for name in headers:
        assert Column.parse(name).name == name


@pytest.mark.parametrize(
    ("name", "kind", "base", "overrides", "stat"),
    [
        ("defense", Kind.FIXED, "defense", "", Stat.VALUE),
        ("n", Kind.FIXED, "n", "", Stat.VALUE),
        ("clean_acc_lo", Kind.FIXED, "clean_acc", "", Stat.LO),
        ("worst_linf", Kind.WORST, "linf", "", Stat.VALUE),
        ("worst_l2@eps=0.5_hi", Kind.WORST, "l2", "@eps=0.5", Stat.HI),
        ("pgd", Kind.ATTACK, "pgd", "", Stat.VALUE),
        ("square@budget=100_queries", Kind.ATTACK, "square", "@budget=100", Stat.QUERIES),
        ("boundary_dist", Kind.ATTACK, "boundary", "", Stat.DIST),
        ("apgd-t@no-eot_n", Kind.ATTACK, "apgd-t", "@no-eot", Stat.N),
        ("certified_acc@eps=0.1", Kind.CERTIFIED, "certified_acc", "@eps=0.1", Stat.VALUE),
        ("claimed_certified_acc_lo", Kind.CLAIMED, "claimed_certified_acc", "", Stat.LO),
    ],
)
def test_a_header_is_read_by_its_parts(
    name: str, kind: Kind, base: str, overrides: str, stat: Stat
) -> None:
    column = Column.parse(name)
    assert (column.kind, column.base, column.overrides, column.stat) == (
        kind,
        base,
        overrides,
        stat,
    )
    assert column.name == name


def test_statistics_eps_and_headlines_come_from_the_type() -> None:
    worst = Column.worst("linf", "@eps=0.1")
    assert worst.name == "worst_linf@eps=0.1" and worst.eps == 0.1 and worst.threat_model == "linf"
    assert not worst.is_headline and Column.worst("l2").is_headline
    assert worst.of(Stat.LO).name == "worst_linf@eps=0.1_lo"
    assert Column.parse("pgd@eps=0.05@steps=1").eps == 0.05
    assert Column.parse("pgd").eps is None and Column.parse("pgd").threat_model is None
    assert Column.parse("certified_acc").threat_model == "linf"


def test_eps_reads_as_people_write_it() -> None:
    assert Column.worst("linf").title(8 / 255) == "worst Linf (eps 8/255)"
    assert Column.worst("linf").title(0.3) == "worst Linf (eps 0.3)"
    assert Column.worst("l2").title(0.5) == "worst L2 (eps 0.5)"
