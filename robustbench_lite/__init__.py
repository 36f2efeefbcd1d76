"""robustbench_lite: attacks x defenses -> verified, per-sample robustness numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "run"]

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn


def run(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """Run attacks x defenses and return the leaderboard; see `robustbench_lite.running.runner.run`."""
    from robustbench_lite.running.runner import run as _run

    return _run(*args, **kwargs)


def evaluate(model: nn.Module, **kwargs: Any) -> pd.DataFrame:
    """Evaluate your own trained classifier as a leaderboard row and return the leaderboard
    (like RobustBench's `benchmark()`); see `robustbench_lite.running.own_model.evaluate`."""
    from robustbench_lite.running.own_model import evaluate as _evaluate

    return _evaluate(model, **kwargs)
