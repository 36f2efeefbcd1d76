"""The plugin registry: entry-point discovery, duplicates, presets, hyper-parameter checks."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from robustbench_lite.cli.values import parse_value
from robustbench_lite.errors import RBError
from robustbench_lite.protocol import registry
from robustbench_lite.protocol.registry import instantiate


def test_builtins_come_from_entry_points() -> None:
    groups = {
        ep.name: ep.value for ep in importlib.metadata.entry_points(group=registry.ATTACK_GROUP)
    }
    assert groups["pgd"] == "robustbench_lite.attacks.pgd:PGD"
    assert set(registry.attack_names()) == set(groups)
    assert "none" in registry.defense_names()


def _fake_entry_points(extra: list[importlib.metadata.EntryPoint]) -> Any:
    real = importlib.metadata.entry_points

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), *(e for e in extra if e.group == group)]

    return entry_points


def test_a_duplicate_name_leaves_the_built_in_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clash = importlib.metadata.EntryPoint("pgd", "thirdparty.attack:Other", registry.ATTACK_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points([clash]))
    monkeypatch.setattr(registry, "_warned", set())
    assert "pgd" in registry.attack_names()  # the intruder is disabled, not the built-in
    assert registry.attack_class("pgd").__module__ == "robustbench_lite.attacks.pgd"
    assert [
        r.getMessage() for r in caplog.records if "duplicate plugin name 'pgd'" in r.getMessage()
    ]


def test_third_party_plugin_is_found_and_a_broken_one_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = importlib.metadata.EntryPoint(
        "pgd-copy", "robustbench_lite.attacks.pgd:PGD", registry.ATTACK_GROUP
    )
    broken = importlib.metadata.EntryPoint(
        "needs-jax", "no_such_module_xyz:Attack", registry.ATTACK_GROUP
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points([good, broken]))
    assert {"pgd-copy", "needs-jax"} <= set(registry.attack_names())  # listed, not vanished
    with pytest.raises(RBError, match=r"cannot be loaded.*no_such_module_xyz"):
        registry.attack_class("needs-jax")
    with pytest.raises(RBError, match="names itself 'pgd'"):
        registry.attack_class("pgd-copy")


def test_unknown_plugin_lists_known_ones() -> None:
    with pytest.raises(RBError, match=r"unknown attack 'pgdd'; known: .*pgd"):
        registry.attack_class("pgdd")
    with pytest.raises(RBError, match=r"unknown defense 'nope'; known: .*none"):
        registry.defense_class("nope")


def test_preset_changes_defaults_only() -> None:
    pgd, pgd_l2 = registry.attack_class("pgd"), registry.attack_class("pgd-l2")
    assert pgd_l2.hyperparameters() == {**pgd.hyperparameters(), "norm": "l2"}
    attack = instantiate(pgd_l2, "standard", {"steps": 7})
    assert (attack.norm, attack.threat_model, attack.steps) == ("l2", "l2", 7)


def test_profiles_and_overrides_are_applied_and_checked() -> None:
    pgd = registry.attack_class("pgd")
    assert instantiate(pgd, "quick").steps == 10
    assert instantiate(pgd, "standard").steps == 100
    assert pgd().steps == 40  # the constructor default; profiles scale it
    assert instantiate(pgd, "quick", {"steps": 3}).steps == 3
    with pytest.raises(RBError, match="has no hyper-parameter stepz; known: norm, steps"):
        instantiate(pgd, "quick", {"stepz": 3})
    with pytest.raises(RBError, match="pgd: steps must be at least 1, got 0"):
        instantiate(pgd, "quick", {"steps": 0})


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("3", 40, 3),
        ("0.5", 0.1, 0.5),
        ("2", 0.1, 2.0),
        ("true", False, True),
        ("l2", "linf", "l2"),
        ("none", None, None),
        ("0.2", None, 0.2),
        ("7", None, 7),
    ],
)
def test_parse_value_follows_the_default_type(text: str, default: Any, expected: Any) -> None:
    value = parse_value(text, default)
    assert value == expected and type(value) is type(expected)


def test_parse_value_rejects_garbage() -> None:
    with pytest.raises(RBError, match="expected an integer"):
        parse_value("many", 40)
    with pytest.raises(RBError, match="expected a number"):
        parse_value("many", 0.5)
    with pytest.raises(RBError, match="expected true or false"):
        parse_value("maybe", True)
