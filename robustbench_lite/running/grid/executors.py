"""Where units of work run: `local` (in this process, the default) or `ray` (tasks on a local or
remote Ray cluster; optional extra `.[ray]`). No scheduler of our own: an executor takes a list of
tasks and reports each result (or error) to the driver, which alone writes files."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from robustbench_lite.errors import RBError, debug, is_stop
from robustbench_lite.protocol.recipe import ModelRecipe

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


@dataclass
class Task:
    """One unit of work: `fn(*args)` run somewhere; `key` names it to the driver."""

    key: Any
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    gpu: bool = False


Done = Callable[[Task, Any], None]
Failed = Callable[[Task, BaseException], None]


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """A task's body and its own wall seconds, measured where it runs (no time in a queue)."""
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


class Job(Protocol):
    """Driver-side bookkeeping of one result (a cell, a model's diagnostics): the tasks it
    needs, what to do with each outcome, and `finish` once none is left."""

    tasks: list[Task]
    remaining: set[Any]

    def done(self, task: Task, result: Any) -> None: ...
    def failed(self, task: Task, exc: BaseException) -> None: ...
    def finish(self) -> None: ...


def run_jobs(
    pool: LocalExecutor | RayExecutor,
    jobs: Sequence[Job],
    finished: Callable[[Job], None] = lambda job: None,
) -> None:
    """Every job's tasks in one `map`, so a cluster works on all of them at once; each job
    finishes as its last task comes back (jobs with nothing left to run finish first)."""
    owner = {task.key: job for job in jobs for task in job.tasks}
    if len(owner) != sum(len(job.tasks) for job in jobs):
        raise ValueError("task keys must be unique across the jobs of one run")

    def settle(job: Job) -> None:
        if not job.remaining:
            job.finish()
            finished(job)

    for job in jobs:
        if not job.tasks:
            settle(job)

    def done(task: Task, result: Any) -> None:
        owner[task.key].done(task, result)
        settle(owner[task.key])

    def failed(task: Task, exc: BaseException) -> None:
        owner[task.key].failed(task, exc)
        settle(owner[task.key])

    pool.map([task for job in jobs for task in job.tasks], done, failed)


class LocalExecutor:
    """Runs tasks one after another in this process."""

    name = "local"

    def map(self, tasks: Sequence[Task], done: Done, failed: Failed) -> None:
        for task in tasks:
            try:
                result = task.fn(*task.args)
            except BaseException as exc:  # a plugin's failure fails its own unit, not the run;
                if is_stop(exc) or debug():  # SystemExit and a code-raised KeyboardInterrupt too
                    raise
                failed(task, exc)
                continue
            done(task, result)

    def close(self) -> None:
        pass


class RayExecutor:
    """Runs tasks as Ray tasks (one CPU and one torch thread each; a GPU when the task asks and
    the cluster has one). Without `address`, starts a local Ray instance."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise RBError(
                "--executor ray needs Ray: pip install 'robustbench_lite[ray]' (or pip install ray)"
            ) from None
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": address, "log_to_driver": False}
            if address is None:
                kwargs.update(num_cpus=num_cpus, include_dashboard=False)
            sigterm = signal.getsignal(signal.SIGTERM)
            try:
                ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise RBError(f"cannot start or reach Ray at {address or 'local'}: {exc}") from None
            finally:  # Ray installs its own, which exits 1 and loses rb's clean stop (exit 143)
                if sigterm is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, sigterm)
        self._remote = ray.remote(_in_worker)
        self._gpus = float(ray.cluster_resources().get("GPU", 0))

    def map(self, tasks: Sequence[Task], done: Done, failed: Failed) -> None:
        ray = self._ray
        pending = {}
        stored: dict[int, Any] = {}  # a model shared by many tasks goes to the store once

        def arg(value: Any) -> Any:
            if not isinstance(value, torch.nn.Module | torch.Tensor | ModelRecipe):
                return value
            if id(value) not in stored:
                stored[id(value)] = ray.put(value)
            return stored[id(value)]

        for task in tasks:
            options = {"num_cpus": 1, "num_gpus": 1 if task.gpu and self._gpus else 0}
            args = [arg(a) for a in task.args]
            ref = self._remote.options(**options).remote(task.fn, *args)
            pending[ref] = task
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                cause = getattr(exc, "cause", None)
                failed(task, cause if isinstance(cause, BaseException) else exc)
                continue
            done(task, result)

    def close(self) -> None:
        pass


def _in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """A Ray worker runs one torch thread: the cluster, not torch, spreads the work."""
    torch.set_num_threads(1)
    return fn(*args)


def executor(name: str, address: str | None = None) -> LocalExecutor | RayExecutor:
    """The executor named `name` (RBError for an unknown one)."""
    if name == "local":
        if address is not None:
            raise RBError("--address needs --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise RBError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
