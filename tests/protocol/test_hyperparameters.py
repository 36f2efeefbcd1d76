"""Declarative hyper-parameters (issue 38): a plugin's fields are its hyper-parameters,
`hyperparameters()` and `config()` come from them, and every declared check refuses a bad value
with one line naming the field, for every registered plugin alike."""

from __future__ import annotations

import dataclasses
import re

import pytest

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.registry import (
    attack_class,
    attack_names,
    defense_class,
    defense_names,
    instantiate,
)

PLUGINS = [attack_class(n) for n in attack_names()] + [defense_class(n) for n in defense_names()]
DECLARED = [c for c in PLUGINS if dataclasses.is_dataclass(c)]


def test_most_plugins_are_declared() -> None:
    # NES, boundary and the low-frequency wrapper take a positional sampler: classic __init__
    assert len(DECLARED) >= len(PLUGINS) - 5


@pytest.mark.parametrize("cls", DECLARED, ids=lambda c: c.name)
def test_hyperparameters_and_config_come_from_the_fields(cls: type) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(cls.hyperparameters()) == set(fields)
    plugin = instantiate(cls, "quick")
    assert plugin.config() == {name: getattr(plugin, name) for name in fields}


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("apgd", {"rho": 0.0}, "rho must lie in (0, 1], got 0.0"),
        ("square", {"norm": "l7"}, "norm must be one of linf, l2, got 'l7'"),
        ("spatial", {"tries": 0}, "tries must be at least 1, got 0"),
        ("transfer", {"norm": "spatial"}, "norm must be one of linf, l2"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_field(name: str, overrides: dict, message: str) -> None:
    with pytest.raises(RBError, match=re.escape(message)):
        instantiate(attack_class(name), "quick", overrides)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("alp", {"clean_weight": 1.0}, "clean_weight must lie in [0, 1), got 1.0"),
        ("ibp", {"size": "huge"}, "size must be one of small, medium, large"),
        ("randomization", {"resize_max": 2.0, "canvas": 1.5}, "need 1 < resize_max <= canvas"),
        ("abs", {"steps": -1}, "steps must be at least 0, got -1"),
    ],
)
def test_a_defense_refuses_what_its_fields_and_validate_refuse(
    name: str, overrides: dict, message: str
) -> None:
    with pytest.raises(RBError, match=re.escape(message)):
        instantiate(defense_class(name), "quick", overrides)
