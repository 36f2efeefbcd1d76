"""Shared benchmark pieces: the cached baseline model, clean-correct samples, a timer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.registry import defense_class, instantiate, load_dataset
from robustbench_lite.running.runner import Runner

T = TypeVar("T")


def baseline(profile: str = "standard") -> nn.Module:
    """The `none` defense of `profile`, from the model cache (trained once if missing)."""
    return Runner(profile=profile, quiet=True).model(instantiate(defense_class("none"), profile))


def clean_correct(model: nn.Module, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n mnist-5k test digits that `model` classifies correctly."""
    test = load_dataset("mnist-5k", "test")
    keep = predict(model, test.x) == test.y
    return test.x[keep][:n], test.y[keep][:n]


def timed(fn: Callable[[], T], repeats: int = 3) -> tuple[T, float]:
    """fn's result and its best wall time over `repeats` runs (the least disturbed one)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best  # type: ignore[return-value]


def table(rows: list[tuple[str, ...]]) -> None:
    """Print rows as an aligned text table (first row: the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
