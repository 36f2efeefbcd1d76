"""The runner end to end: verification, query accounting, caching, resume, determinism."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from robustbench_lite.errors import RBError
from robustbench_lite.protocol import registry
from robustbench_lite.protocol.contracts import Attack, QueryModel
from robustbench_lite.report import tables
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.models import ModelCache


class Overreach(Attack):
    """Test double: claims a perturbation far outside the ball, after one query per sample."""

    name = "overreach"
    knowledge = "scores"
    profiles: ClassVar = {}

    def __init__(self, *, queries: int = 1) -> None:
        self.queries = queries

    def run(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        budget: int | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        for _ in range(self.queries):
            model(x)
        return (1.0 - x).clamp(0, 1)  # an inverted digit: adversarial, but not within eps


@pytest.fixture
def with_test_attacks(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.entry_points
    extra = importlib.metadata.EntryPoint(
        "overreach", "tests.running.test_runner:Overreach", registry.ATTACK_GROUP
    )

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), *([extra] if group == extra.group else [])]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _runner(tmp_path: Path, rb_home: Path, **kwargs: Any) -> Runner:
    kwargs = {"profile": "quick", "n": 60, "quiet": True, "cache": ModelCache(rb_home), **kwargs}
    return Runner(results_dir=tmp_path, **kwargs)


def _cell(tmp_path: Path, defense: str, cell: str) -> dict[str, Any]:
    return json.loads((tmp_path / "mnist-5k" / "quick" / defense / f"{cell}.json").read_text())


def test_pgd_breaks_the_baseline_and_the_record_is_complete(tmp_path: Path, rb_home: Path) -> None:
    board = _runner(tmp_path, rb_home).run(["pgd"], ["none"])
    row = board.set_index("defense").loc["none"]
    assert row["clean_acc"] >= 0.85
    assert row["pgd"] <= 0.05
    assert row["worst_linf"] == row["pgd"]
    record = _cell(tmp_path, "none", "pgd")
    for key in ("config_hash", "seed", "versions", "wall_time_s", "queries", "samples", "eps"):
        assert key in record
    samples = record["samples"]
    assert len(samples["robust"]) == record["n"] == 60
    attacked = [q for q, c in zip(samples["queries"], samples["clean_correct"], strict=True) if c]
    assert min(attacked) > 0
    assert all(
        q == 0 for q, c in zip(samples["queries"], samples["clean_correct"], strict=True) if not c
    )
    assert record["queries"]["total"] == sum(samples["queries"])
    # Numbers are stored as numbers.
    assert isinstance(record["robust_acc"], float) and isinstance(record["eps"], float)


def test_runner_projects_what_an_attack_returns(
    tmp_path: Path, rb_home: Path, with_test_attacks: None
) -> None:
    _runner(tmp_path, rb_home).run(["overreach"], ["none"])
    record = _cell(tmp_path, "none", "overreach")
    eps = record["eps"]
    found = [d for d in record["samples"]["distance"] if d is not None]
    assert all(d <= eps + 1e-6 for d in found)  # graded inside the ball, not as returned
    assert record["queries"]["max"] == 1.0


def test_overspending_the_query_budget_is_refused(
    tmp_path: Path, rb_home: Path, with_test_attacks: None
) -> None:
    runner = _runner(tmp_path, rb_home, budget=3, settings={"overreach": {"queries": 4}})
    with pytest.raises(RBError, match="over its budget of 3"):
        runner.run(["overreach"], ["none"])


def test_same_seed_same_numbers_other_seed_other_model(tmp_path: Path, rb_home: Path) -> None:
    first = _runner(tmp_path / "a", rb_home).run(["pgd-l2"], ["none"])
    second = _runner(tmp_path / "b", rb_home, cache=ModelCache(tmp_path / "fresh")).run(
        ["pgd-l2"], ["none"]
    )
    csv_a = (tmp_path / "a" / "mnist-5k" / "quick" / "leaderboard.csv").read_text()
    csv_b = (tmp_path / "b" / "mnist-5k" / "quick" / "leaderboard.csv").read_text()
    assert csv_a == csv_b  # retrained from scratch, identical
    assert first.equals(second)
    a, b = _cell(tmp_path / "a", "none", "pgd-l2"), _cell(tmp_path / "b", "none", "pgd-l2")
    assert a["samples"] == b["samples"] and a["config_hash"] == b["config_hash"]
    other = _runner(tmp_path / "c", rb_home, seed=1).run(["pgd-l2"], ["none"])
    assert _cell(tmp_path / "c", "none", "pgd-l2")["config_hash"] != a["config_hash"]
    assert other is not None


def test_finished_cells_are_not_recomputed_and_survive_an_interrupt(
    tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _runner(tmp_path, rb_home)
    pgd_l2 = registry.attack_class("pgd-l2")
    # A real Ctrl-C: the signal arrives while the attack runs.
    monkeypatch.setattr(pgd_l2, "run", lambda *a, **k: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        runner.run(["pgd", "pgd-l2"], ["none"])
    done = tmp_path / "mnist-5k" / "quick" / "none" / "pgd.json"
    assert done.is_file()
    assert not done.with_name("pgd-l2.json").exists()
    monkeypatch.undo()
    stamp = done.stat().st_mtime_ns
    _runner(tmp_path, rb_home).run(["pgd", "pgd-l2"], ["none"])
    assert done.stat().st_mtime_ns == stamp  # cached by its config hash
    assert done.with_name("pgd-l2.json").is_file()
    # A changed hyper-parameter is another cell, named for it; the plain one stays as it was.
    _runner(tmp_path, rb_home, settings={"pgd": {"steps": 3}}).run(["pgd"], ["none"])
    assert done.stat().st_mtime_ns == stamp
    other = done.with_name("pgd@steps=3.json")
    assert json.loads(other.read_text())["config"]["attack"]["config"]["steps"] == 3


def test_corrupt_checkpoint_is_one_clear_error(tmp_path: Path, rb_home: Path) -> None:
    cache = ModelCache(tmp_path / "home")
    runner = _runner(tmp_path, rb_home, cache=cache, settings={"none": {"epochs": 1}})
    runner.run(["pgd"], ["none"])
    (weights,) = cache.root.glob("none-*.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    other = _runner(tmp_path / "again", rb_home, cache=cache, settings={"none": {"epochs": 1}})
    with pytest.raises(RBError, match=r"corrupt checkpoint .*none-.*\.safetensors"):
        other.run(["pgd"], ["none"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": -0.1}, "eps must be a positive number"),
        ({"eps": 2.0}, "linf eps 2 is above 1"),
        ({"n": 0}, "--n must be a positive number"),
        ({"profile": "huge"}, "unknown profile 'huge'; known: quick"),
        ({"dataset": "cifar"}, "unknown dataset 'cifar'; known: cifar10, "),
    ],
)
def test_bad_settings_are_rb_errors(
    tmp_path: Path, rb_home: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(RBError, match=message):
        _runner(tmp_path, rb_home, **kwargs).run(["pgd"], ["none"])


def test_an_attack_cap_limits_its_cells_and_shows_in_the_leaderboard(
    tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry.attack_class("pgd-l2"), "max_eval_samples", {"quick": 7})
    runner = _runner(tmp_path, rb_home, n=None)
    board = runner.run(["pgd", "pgd-l2"], ["none"]).set_index("defense")
    capped, full = _cell(tmp_path, "none", "pgd-l2"), _cell(tmp_path, "none", "pgd")
    assert capped["n"] == len(capped["samples"]["robust"]) == capped["max_eval_samples"] == 7
    assert full["n"] == 200 and full["max_eval_samples"] is None
    assert board.loc["none", "n"] == 200 and board.loc["none", "pgd-l2_n"] == 7
    assert "pgd_n" not in board.columns and "worst_linf_n" not in board.columns
    assert board.loc["none", "worst_l2_n"] == 7  # the worst case covers what all its cells saw
    assert "pgd-l2 on 7" in tables._capped(board.reset_index())
    # An explicit --n overrides the cap; the leaderboard then has no per-cell n.
    explicit = _runner(tmp_path / "explicit", rb_home, n=20)
    board = explicit.run(["pgd", "pgd-l2"], ["none"])
    assert _cell(tmp_path / "explicit", "none", "pgd-l2")["n"] == 20
    assert "pgd-l2_n" not in board.columns
