"""A cell run with another budget or hyper-parameters attacks the same ball, and the runner
verified its examples: it counts in its threat model's worst case and toward a complete
evaluation, under a column that still names the override; another eps, or no EOT, does not."""

from __future__ import annotations

from robustbench_lite.report.leaderboard import worst_case, worst_groups
from robustbench_lite.report.verdict import _missing
from tests._helpers.records import fake_cell

PGD = fake_cell({"robust": [True, True, False, True]}, cell="pgd")
SQUARE = fake_cell(
    {"robust": [False, True, False, True]},
    cell="square@budget=50",
    attack="square",
    knowledge="scores",
    budget=50,
)


def test_a_budget_override_counts_in_the_worst_case_and_completes_the_row() -> None:
    groups = worst_groups([PGD, SQUARE])
    assert list(groups) == ["worst_linf"]  # no worst_linf@budget=50 beside it
    assert worst_case(groups["worst_linf"])[0] == 0.5  # pgd alone: 0.75; square broke one more
    assert _missing([PGD]) == ["incomplete: linf (eps 0.3) by gradient attacks only"]
    assert _missing([PGD, SQUARE]) == []


def test_another_eps_or_no_eot_keeps_a_worst_case_of_its_own() -> None:
    wider = fake_cell({"robust": [False] * 4}, cell="pgd@eps=0.4@steps=5", attack="pgd", eps=0.4)
    no_eot = fake_cell({"robust": [False] * 4}, cell="pgd@no-eot", attack="pgd", no_eot=True)
    groups = worst_groups([PGD, wider, no_eot])
    assert sorted(groups) == ["worst_linf", "worst_linf@eps=0.4", "worst_linf@no-eot"]
    assert worst_case(groups["worst_linf"])[0] == 0.75
