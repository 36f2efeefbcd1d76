"""robustbench_lite: attacks x defenses -> verified, per-sample robustness numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "run"]

if TYPE_CHECKING:
    import pandas as pd


def run(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """Run attacks x defenses and return the leaderboard; see `robustbench_lite.runner.run`."""
    from robustbench_lite.runner import run as _run

    return _run(*args, **kwargs)
