"""Where the suite keeps what it makes and fetches: $RB_HOME (default ~/.cache/robustbench_lite)
for trained models, and $RB_DATA_DIR (default $RB_HOME/data) for data sets."""

from __future__ import annotations

import os
from pathlib import Path


def rb_home() -> Path:
    """$RB_HOME, default ~/.cache/robustbench_lite."""
    return Path(os.environ.get("RB_HOME") or Path.home() / ".cache" / "robustbench_lite")


def data_dir() -> Path:
    """Where downloaded or user-supplied data files live: $RB_DATA_DIR, else $RB_HOME/data."""
    env = os.environ.get("RB_DATA_DIR")
    return Path(env).expanduser() if env else rb_home() / "data"
