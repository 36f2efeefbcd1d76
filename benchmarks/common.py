"""Shared benchmark pieces: the zoo's models, clean-correct samples, a timer, the smoke switch.

`BENCH_SMOKE=1` (`make bench-smoke`, run by `make test`) shrinks every benchmark to a few samples
and steps on the quick models, so a benchmark that no longer runs fails CI; its numbers mean
nothing. Timings are only read from `make bench`, alone on the machine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.registry import defense_class, instantiate, load_dataset
from robustbench_lite.running.grid.runner import Runner

T = TypeVar("T")

SMOKE = os.environ.get("BENCH_SMOKE") == "1"
#: The profile whose models a benchmark measures (the quick ones in a smoke run: seconds).
PROFILE = "quick" if SMOKE else "standard"


def size(full: int, smoke: int) -> int:
    """A benchmark's size: `full` in `make bench`, `smoke` in a smoke run."""
    return smoke if SMOKE else full


def repeats(full: int = 3) -> int:
    """Timing repeats (best of): one in a smoke run."""
    return 1 if SMOKE else full


def model(name: str = "none", profile: str | None = None) -> nn.Module:
    """The trained model of defense `name` (the zoo's; trained into the cache if it has none)."""
    profile = profile or PROFILE
    return Runner(profile=profile, quiet=True).model(instantiate(defense_class(name), profile))


def clean_correct(model: nn.Module, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n mnist-5k test digits that `model` classifies correctly."""
    test = load_dataset("mnist-5k", "test")
    keep = predict(model, test.x) == test.y
    return test.x[keep][:n], test.y[keep][:n]


def timed(fn: Callable[[], T], times: int | None = None) -> tuple[T, float]:
    """fn's result and its best wall time over `times` runs (the least disturbed one)."""
    best, result = float("inf"), None
    for _ in range(times or repeats()):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best  # type: ignore[return-value]


def table(rows: list[tuple[str, ...]]) -> None:
    """Print rows as an aligned text table (first row: the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
