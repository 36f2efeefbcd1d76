"""The device a run computes on: `auto` (CUDA when present, else the CPU), `cpu`, `cuda`,
`cuda:N`; `RB_DEVICE` sets the default. Results record it outside the config hash."""

from __future__ import annotations

import contextlib
import os

import torch

from robustbench_lite.errors import RBError


def resolve(name: str | None) -> torch.device:
    """The torch device for `name` (None: $RB_DEVICE or auto); RBError for a bad or absent one."""
    name = (name or os.environ.get("RB_DEVICE") or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise RBError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise RBError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise RBError(f"device {name!r} asked for, but this machine has no CUDA device")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise RBError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def fork_rng(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """torch.random.fork_rng over the CPU's generator and `device`'s (a randomized defense on
    CUDA draws from the GPU's), so a seeded stretch of draws leaves the global streams as found."""
    if device.type != "cuda":
        return torch.random.fork_rng(devices=[])
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.random.fork_rng(devices=[index])
