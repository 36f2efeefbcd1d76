"""Helpers of the hostile-plugin tests: a small quick runner and its cells (the fixtures that
register the hostile attacks and make the honest cell are in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store.models import ModelCache


def small_runner(root: Path, rb_home: Path, **kwargs: Any) -> Runner:
    settings = {"profile": "quick", "n": 40, "quiet": True, "budget": 50, **kwargs}
    return Runner(results_dir=root, cache=ModelCache(rb_home), **settings)


def cell(root: Path, name: str) -> dict[str, Any]:
    return json.loads((root / "mnist-5k" / "quick" / "none" / f"{name}.json").read_text())


def honest_again(root: Path, rb_home: Path, honest: dict[str, Any]) -> None:
    """After a hostile plugin, an honest cell in the same folder gives the same per-sample arrays."""
    small_runner(root, rb_home).run(["pgd"], ["none"])
    assert cell(root, "pgd")["samples"] == honest["samples"]
