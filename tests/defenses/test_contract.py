"""The contract every registered defense meets, parametrized over the registry; the checks are
robustbench_lite.testing's, which a third party's CI runs too."""

from __future__ import annotations

import pytest

from robustbench_lite.protocol.registry import defense_class, defense_names
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.testing import check_defense, check_defense_declares_itself

DEFENSES = defense_names()


def test_registry_has_the_defenses() -> None:
    assert {"none", "randomization", "ibp", "alp", "pgd-at", "abs"} <= set(DEFENSES)


@pytest.mark.parametrize("name", DEFENSES)
def test_defense_declares_itself(name: str) -> None:
    check_defense_declares_itself(defense_class(name))
    assert defense_class(name).name == name


@pytest.mark.parametrize("name", DEFENSES)
def test_quick_model_classifies_has_input_gradients_and_certifies_if_it_says(
    name: str, quick_runner: Runner
) -> None:
    check_defense(defense_class(name), cache=quick_runner.cache)
