"""Scale without changing a number: shards, resume inside a cell, the Ray executor, devices."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

import robustbench_lite.running.grid.runner as runner_module
from robustbench_lite.errors import RBError
from robustbench_lite.protocol import registry
from robustbench_lite.running.grid.executors import LocalExecutor, Task, run_jobs
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store import shards
from robustbench_lite.store.layout import shard_dir
from robustbench_lite.store.models import ModelCache

ATTACKS = ["pgd", "square"]
CELLS = ["pgd", "square@budget=200"]


def _runner(root: Path, rb_home: Path, **kwargs: Any) -> Runner:
    settings = {"profile": "quick", "n": 60, "quiet": True, "batch_size": 20, "budget": 200}
    return Runner(results_dir=root, cache=ModelCache(rb_home), **{**settings, **kwargs})


def _samples(root: Path) -> dict[str, Any]:
    folder = root / "mnist-5k" / "quick" / "none"
    return {name: json.loads((folder / f"{name}.json").read_text())["samples"] for name in CELLS}


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
    pgd = registry.attack_class("pgd")
    real, calls = pgd.run, []

    def dies_on_the_second_batch(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # a real Ctrl-C arrives during the second batch
            os.kill(os.getpid(), signal.SIGINT)
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


def test_a_defense_s_cells_go_to_the_executor_together(
    tmp_path: Path, rb_home: Path, serial: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One map per defense with every cell's shards and the diagnostics: a cluster works on all
    of them at once instead of waiting for each cell's slowest shard."""
    maps: list[list[Any]] = []

    class Recording(LocalExecutor):
        def map(self, tasks: Any, done: Any, failed: Any) -> None:
            maps.append([task.key for task in tasks])
            super().map(tasks, done, failed)

    monkeypatch.setattr(runner_module, "executor", lambda name, address=None: Recording())
    _runner(tmp_path, rb_home, shard_size=1).run(ATTACKS, ["none"])
    keys = maps[-1]
    assert keys[0] == ("diagnostics", "none")
    assert {k[0] for k in keys[1:]} == set(CELLS) and len(keys) == 1 + 2 * 3  # 3 shards each
    assert _samples(tmp_path) == serial


class _Job:
    def __init__(self, name: str, shards: int, log: list[str]) -> None:
        self.name, self.log = name, log
        self.tasks = [Task((name, k), _shard, (name, k)) for k in range(shards)]
        self.remaining = {task.key for task in self.tasks}
        self.errors: list[str] = []

    def done(self, task: Task, result: Any) -> None:
        self.log.append(f"{result} done")
        self.remaining.discard(task.key)

    def failed(self, task: Task, exc: BaseException) -> None:
        self.errors.append(str(exc))
        self.remaining.discard(task.key)

    def finish(self) -> None:
        self.log.append(f"{self.name} finished" + (" failed" if self.errors else ""))


def _shard(name: str, k: int) -> str:
    if name == "bad" and k == 0:
        raise ValueError("plugin bug")
    return f"{name}{k}"


def test_jobs_finish_as_their_last_task_returns_and_a_failure_stays_in_its_job() -> None:
    log: list[str] = []
    jobs = [_Job("a", 2, log), _Job("bad", 2, log), _Job("empty", 0, log), _Job("b", 1, log)]
    finished: list[str] = []
    run_jobs(LocalExecutor(), jobs, lambda job: finished.append(job.name))  # type: ignore[attr-defined]
    assert log == [
        "empty finished",  # nothing left to run: finished before any task
        "a0 done",
        "a1 done",
        "a finished",
        "bad1 done",
        "bad finished failed",
        "b0 done",
        "b finished",
    ]
    assert finished == ["empty", "a", "bad", "b"]
    with pytest.raises(ValueError, match="unique"):
        run_jobs(LocalExecutor(), [_Job("a", 1, log), _Job("a", 1, log)])


def test_declared_units_resume_mid_cell_on_another_number_of_workers(
    tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defense whose samples take minutes declares small units (ABS: 4 digits): a cell of one
    batch is then many units, each checkpointed; killed after two, it resumes on two Ray workers
    with the arrays of an uninterrupted run in one process (units are seeded by index)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    monkeypatch.setattr(registry.defense_class("none"), "unit_samples", {"quick": 7})

    def pgd_cell(root: Path) -> dict[str, Any]:
        return json.loads((root / "mnist-5k" / "quick" / "none" / "pgd.json").read_text())

    _runner(tmp_path / "whole", rb_home, batch_size=250).run(["pgd"], ["none"])
    whole = pgd_cell(tmp_path / "whole")
    assert whole["config"]["unit_samples"] == 7
    pgd = registry.attack_class("pgd")
    real, calls = pgd.run, []

    def dies_on_the_third_unit(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pgd, "run", dies_on_the_third_unit)
    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path / "split", rb_home, batch_size=250).run(["pgd"], ["none"])
    assert len(list(tmp_path.glob("split/mnist-5k/quick/none/.shards/pgd/*.json"))) == 2
    monkeypatch.setattr(pgd, "run", real)
    kept = {
        p.name: p.read_bytes() for p in tmp_path.glob("split/mnist-5k/quick/none/.shards/pgd/*")
    }
    seen: dict[str, bytes] = {}
    monkeypatch.setattr(  # keep the units for a look, as the resumed cell left them
        shards,
        "clear_shards",
        lambda path: seen.update({p.name: p.read_bytes() for p in shard_dir(path).glob("*")}),
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _runner(tmp_path / "split", rb_home, batch_size=250, executor="ray").run(["pgd"], ["none"])
    finally:
        ray.shutdown()
    assert pgd_cell(tmp_path / "split")["samples"] == whole["samples"]
    assert all(seen[name] == body for name, body in kept.items())  # resumed, not recomputed
    assert len(seen) > len(kept)


def test_a_shard_of_another_size_is_recomputed_not_merged(
    tmp_path: Path, rb_home: Path, serial: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell stopped with one shard size and resumed with another: the old shard covers other
    samples, so it is recomputed, never merged into the wrong group."""
    pgd = registry.attack_class("pgd")
    real, calls = pgd.run, []

    def dies_on_the_second_batch(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pgd, "run", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path, rb_home, shard_size=1).run(["pgd"], ["none"])
    monkeypatch.setattr(pgd, "run", real)
    _runner(tmp_path, rb_home, shard_size=2).run(ATTACKS, ["none"])
    assert _samples(tmp_path) == serial
