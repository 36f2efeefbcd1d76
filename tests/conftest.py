"""Shared fixtures: a private model cache, mnist-5k, and the quick-profile baseline model; and
$RB_DATA_DIR pointed at the MNIST test split beside the checkout where there is one (the library
itself searches no folder outside the package)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from robustbench_lite import data
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.registry import defense_class, instantiate, load_dataset
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.models import ModelCache

#: The official MNIST test split beside the checkout (`../shared/data/mnist`), where present.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if (SHARED_DATA / "mnist").is_dir():  # set before test modules are collected (their skipifs)
    os.environ.setdefault("RB_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="session", autouse=True)
def rb_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test session trains into its own cache, never the user's."""
    home = tmp_path_factory.mktemp("rb_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RB_HOME", str(home))
        mp.setenv("RB_OFFLINE", "1")
        yield home


@pytest.fixture
def no_zoo(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty model zoo: the models of this test are trained (into the session's cache), as
    for a config the suite ships no weights of."""
    monkeypatch.setenv("RB_ZOO", str(tmp_path_factory.mktemp("empty_zoo")))


@pytest.fixture(scope="session")
def mnist_test() -> data.Dataset:
    return load_dataset("mnist-5k", "test")


@pytest.fixture(scope="session")
def quick_runner(rb_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """A quick-profile runner on mnist-5k writing into a temporary results folder."""
    return Runner(
        profile="quick",
        results_dir=tmp_path_factory.mktemp("results"),
        quiet=True,
        cache=ModelCache(rb_home),
    )


@pytest.fixture(scope="session")
def baseline(quick_runner: Runner) -> nn.Module:
    """The `none` defense trained in the quick profile (a few seconds, cached for the session)."""
    return quick_runner.model(instantiate(defense_class("none"), "quick"))


@pytest.fixture(scope="session")
def clean_batch(baseline: nn.Module, mnist_test: data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """32 test digits the baseline classifies correctly (what the runner hands an attack)."""
    x, y = mnist_test.x[:64], mnist_test.y[:64]
    keep = predict(baseline, x) == y
    return x[keep][:32], y[keep][:32]
