"""Scale without changing a number: shards, resume inside a cell, the Ray executor, devices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robustbench_lite import plugins
from robustbench_lite.cache import ModelCache
from robustbench_lite.errors import RBError
from robustbench_lite.runner import Runner

ATTACKS = ["pgd", "square"]


def _runner(root: Path, rb_home: Path, **kwargs: Any) -> Runner:
    settings = {"profile": "quick", "n": 60, "quiet": True, "batch_size": 20, "budget": 200}
    return Runner(results_dir=root, cache=ModelCache(rb_home), **{**settings, **kwargs})


def _samples(root: Path) -> dict[str, Any]:
    folder = root / "mnist-5k" / "quick" / "none"
    return {name: json.loads((folder / f"{name}.json").read_text())["samples"] for name in ATTACKS}


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory, rb_home: Path) -> dict[str, Any]:
    """The reference: one process, one shard per cell."""
    root = tmp_path_factory.mktemp("serial")
    _runner(root, rb_home, shard_size=100).run(ATTACKS, ["none"])
    return _samples(root)


def test_shard_layout_changes_no_number(
    tmp_path: Path, rb_home: Path, serial: dict[str, Any]
) -> None:
    _runner(tmp_path, rb_home, shard_size=1).run(ATTACKS, ["none"])
    assert _samples(tmp_path) == serial
    assert not list(tmp_path.glob("mnist-5k/quick/none/.shards/*/*"))  # cleaned up when whole


def test_a_killed_run_resumes_inside_the_cell(
    tmp_path: Path, rb_home: Path, serial: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pgd = plugins.attack_class("pgd")
    real, calls = pgd.run, []

    def dies_on_the_second_batch(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pgd, "run", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path, rb_home, shard_size=1).run(["pgd"], ["none"])
    shards = list(tmp_path.glob("mnist-5k/quick/none/.shards/pgd/*.json"))
    assert len(shards) == 1  # the first batch's shard survived the kill
    monkeypatch.setattr(pgd, "run", real)
    calls.clear()
    runner = _runner(tmp_path, rb_home, shard_size=1)
    runner.run(ATTACKS, ["none"])
    assert _samples(tmp_path) == serial


def test_the_ray_executor_gives_the_same_arrays(
    tmp_path: Path, rb_home: Path, serial: dict[str, Any]
) -> None:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _runner(tmp_path, rb_home, executor="ray", shard_size=1).run(ATTACKS, ["none"])
    finally:
        ray.shutdown()
    assert _samples(tmp_path) == serial


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"device": "cuda:7"}, "cuda:7"),
        ({"executor": "slurm"}, "unknown executor 'slurm'; known: local, ray"),
        ({"shard_size": 0}, "--shard-size must be at least 1"),
        ({"threads": 0}, "--threads must be at least 1"),
    ],
)
def test_bad_scale_settings_are_one_line_errors(
    tmp_path: Path, rb_home: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(RBError, match=message):
        _runner(tmp_path, rb_home, **kwargs)


def test_cpu_and_auto_devices_run_here(tmp_path: Path, rb_home: Path) -> None:
    for device in ("cpu", "auto"):
        _runner(tmp_path / device, rb_home, device=device, n=20).run(["pgd"], ["none"])
        record = json.loads((tmp_path / device / "mnist-5k/quick/none/pgd.json").read_text())
        assert record["device"] in ("cpu", "cuda")
