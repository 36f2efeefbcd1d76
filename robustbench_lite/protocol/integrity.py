"""Tamper evidence for what the runner hands a plugin: a fingerprint of a model's state, and the
checks on what an attack returns (foolbox's base class re-checks attack output the same way)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.bpda import FrontStep
from robustbench_lite.protocol.contracts import Adversarial


def fingerprint(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, dtypes, shapes, bytes), each submodule's
    train/eval mode and each front step's BPDA switch: any change an attack makes to the model it
    attacks shows."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict(keep_vars=False).items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for name, module in model.named_modules():
        digest.update(f"{name}:{module.training}".encode())
        if isinstance(module, FrontStep):  # which gradient its front step gives (bpda.py)
            digest.update(f"{name}:bpda={module.bpda}".encode())
    return digest.hexdigest()


def unpack_output(
    attack: str, output: Any, x: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """x_adv and the per-sample extras of an attack's return value, checked; an RBError names
    the attack for anything else (a wrong tuple, a sparse or meta tensor, malformed extras)."""
    if isinstance(output, torch.Tensor):  # the first contract's bare tensor
        output = Adversarial(output)
    if not isinstance(output, tuple) or len(output) != 2 or not isinstance(output[1], Mapping):
        size = f"a {len(output)}-tuple" if isinstance(output, tuple) else type(output).__name__
        raise RBError(
            f"attack {attack} returned {size}; expected Adversarial(x_adv, extras) "
            "(extras: {name: per-sample tensor})"
        )
    x_adv, extras = output
    x_adv = _dense(attack, "x_adv", x_adv)
    if x_adv.shape != x.shape:
        raise RBError(f"attack {attack} returned {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    x_adv = x_adv.detach().to(x.dtype).clone()
    if not bool(torch.isfinite(x_adv).all()):
        raise RBError(f"attack {attack} returned non-finite values")
    checked = {}
    for key, value in extras.items():
        tensor = _dense(attack, f"extra {key!r}", value)
        if not isinstance(key, str) or tensor.dim() != 1 or len(tensor) != len(x):
            raise RBError(
                f"attack {attack}: extra {key!r} must be a 1-d tensor with one entry per sample"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise RBError(f"attack {attack}: extra {key!r} holds non-finite values")
        checked[key] = tensor.detach().clone()
    return x_adv, checked


def _dense(attack: str, what: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise RBError(f"attack {attack} returned {what} as {type(value).__name__}, not a tensor")
    if value.layout != torch.strided or value.is_meta:
        raise RBError(f"attack {attack} returned {what} as a {value.layout} / meta tensor")
    return value
