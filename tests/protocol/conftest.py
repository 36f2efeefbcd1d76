"""Fixtures of the hostile-plugin tests: the hostile attacks registered through entry points, as
a third party's are, and the honest pgd cell every hostile run is compared with."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

from robustbench_lite.protocol import registry
from tests._helpers import doubles, hostile
from tests.protocol.hostile_cells import cell, small_runner

HOSTILE = [
    hostile.ReachModel,
    hostile.GradThroughScores,
    hostile.LabelsPeek,
    hostile.Overspend,
    hostile.RoundRobin,
    hostile.ZeroLastLayer,
    hostile.TrainMode,
    hostile.InPlaceX,
    hostile.InPlaceY,
    hostile.Malformed,
]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.entry_points
    extra = [
        importlib.metadata.EntryPoint(
            c.name, f"tests._helpers.hostile:{c.__name__}", registry.ATTACK_GROUP
        )
        for c in HOSTILE
    ]

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), *(extra if group == registry.ATTACK_GROUP else [])]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory, rb_home: Path) -> dict[str, Any]:
    """The honest pgd cell on the same samples, made before any hostile plugin ran."""
    root = tmp_path_factory.mktemp("honest")
    small_runner(root, rb_home).run(["pgd"], ["none"])
    return cell(root, "pgd")


MORE = [
    hostile.KeepOracle,
    hostile.StaleOracle,
    hostile.Threads,
    hostile.Lingering,
    hostile.Cheat,
]


@pytest.fixture
def more(monkeypatch: pytest.MonkeyPatch) -> None:
    doubles.register(monkeypatch, **{c.name: f"tests._helpers.hostile:{c.__name__}" for c in MORE})
