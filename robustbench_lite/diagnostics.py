"""Checks of a model that no attack cell shows (Carlini et al. 2019, "On evaluating adversarial
robustness"): input gradients that vanish, outputs that change between identical calls of a model
not declared randomized, and an attack with an eps covering the whole input box that fails.
Computed once per model by the runner, stored beside its cells as `diagnostics.json`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lite import devices
from robustbench_lite.cache import tampering
from robustbench_lite.cell import verify
from robustbench_lite.eot import EOT
from robustbench_lite.plan import derive_seed

STEM = "diagnostics"
SAMPLES = 50  # clean-correct samples the checks use
ZERO_GRAD_SHARE = 0.1  # flag when more than this share of samples has a zero input gradient


def path(cell_dir: Path, defense: str) -> Path:
    return Path(cell_dir) / defense / f"{STEM}.json"


def is_current(file: Path, digest: str) -> bool:
    """Whether `file` holds diagnostics computed under the config with hash `digest`."""
    try:
        record = json.loads(file.read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict) and tampering(record) is None and record["config_hash"] == digest
    )


def load(file: Path) -> dict[str, Any] | None:
    """A diagnostics record that verifies (hashes, and flags that its own numbers raise), else
    None: the leaderboard then flags the row `no-diagnostics`, never drops its flags silently."""
    try:
        record = json.loads(Path(file).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or tampering(record) is not None:
        return None
    try:
        raised = flags_of(
            float(record["zero_grad_share"]),
            float(record["changed_share"]),
            float(record["unbounded_success"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if set(raised) != set(record.get("flags") or {}):
        return None
    return record


def flags_of(zero_grad: float, changed: float, unbounded: float) -> list[str]:
    """The flag codes that diagnostics numbers raise (one rule, used to write and to read)."""
    raised = []
    if zero_grad > ZERO_GRAD_SHARE:
        raised.append("zero-grad")
    if changed > 0:
        raised.append("undeclared-randomness")
    if unbounded < 1.0:
        raised.append("unbounded-fails")
    return raised


def run_checks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    randomized: bool,
    eot_draws: int,
    prediction_draws: int,
    seed: int,
) -> dict[str, Any]:
    """Measure on up to SAMPLES clean-correct samples; returns numbers and the flags they raise."""
    x, y = x[:SAMPLES].clone(), y[:SAMPLES].clone()
    view = EOT(model, eot_draws) if randomized and eot_draws > 1 else model
    flags: dict[str, str] = {}
    with devices.fork_rng(x.device):
        torch.manual_seed(seed)
        grad = _input_grad(view, x, lambda out: F.cross_entropy(out, y, reduction="sum"))
        norms = grad.flatten(1).norm(dim=1)
        dead = float(((norms == 0) | ~torch.isfinite(norms)).double().mean()) if len(x) else 0.0
        if dead > ZERO_GRAD_SHARE:
            flags["zero-grad"] = f"{dead:.0%} of {len(x)} clean samples have a zero input gradient"
        changed = 0.0
        if not randomized:
            with torch.no_grad():
                a, b = model(x), model(x)
            changed = float((a != b).any(dim=1).double().mean()) if len(x) else 0.0
            if changed > 0:
                flags["undeclared-randomness"] = (
                    f"{changed:.0%} of {len(x)} outputs changed between two identical calls"
                )
        success = _unbounded_pgd(view, model, x, y, prediction_draws, seed)
    if success < 1.0:
        flags["unbounded-fails"] = (
            f"PGD at linf eps 1 (the whole box, 50 steps) fooled {success:.0%} of {len(x)} samples"
        )
    return {
        "samples": len(x),
        "zero_grad_share": dead,
        "changed_share": changed,
        "unbounded_success": success,
        "flags": flags,
    }


def _unbounded_pgd(
    view: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int
) -> float:
    """Success rate of 50 signed-gradient steps of 0.1 with the whole [0,1] box allowed (from
    mid-grey with a little noise): any classifier must be fooled there."""
    if len(x) == 0:
        return 1.0
    generator = torch.Generator(device=x.device).manual_seed(derive_seed(seed, "unbounded"))
    xt = (0.5 + 0.1 * torch.randn(x.shape, generator=generator, device=x.device)).clamp(0, 1)
    for _ in range(50):
        grad = _input_grad(view, xt, lambda out: _margin(out, y).sum())
        xt = (xt.detach() + 0.1 * grad.sign()).clamp(0, 1)
    fooled = verify(model, xt.detach(), draws, derive_seed(seed, "unbounded-verify")) != y
    return float(fooled.double().mean())


def _input_grad(
    model: nn.Module, x: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """d loss(model(x)) / dx; zeros where the model has no gradient path to its input at all
    (e.g. a hard threshold), which is exactly what the zero-grad flag reports."""
    xg = x.detach().clone().requires_grad_(True)
    value = loss(model(xg))
    if not value.requires_grad:
        return torch.zeros_like(xg)
    (grad,) = torch.autograd.grad(value, xg, allow_unused=True)
    return torch.zeros_like(xg) if grad is None else grad


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Best other logit minus the true one (Carlini & Wagner 2017): positive once fooled."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    return logits.scatter(1, y[:, None], float("-inf")).amax(dim=1) - true


def config(model_key: str, dataset: str, seed: int, eot_draws: int) -> dict[str, Any]:
    """What a diagnostics record is keyed by (recomputed when any of it changes)."""
    return {
        "kind": STEM,
        "model_key": model_key,
        "dataset": dataset,
        "seed": seed,
        "samples": SAMPLES,
        "eot_draws": eot_draws,
    }
