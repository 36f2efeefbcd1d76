"""Checks on a user's model before anything attacks it (`rb run --model`, `evaluate`).

A model handed in from outside can be wrong in ways that make every robustness number meaningless
while still "running": logits of the wrong shape, NaNs, preprocessing that expects other inputs,
hidden randomness, or gradients that are zero everywhere. Each check either stops the run with a
one-line RBError (exit code 2), or logs a warning and records it in `Diagnostics`, which goes into
`Diagnostics`. The runner's own diagnostics (diagnostics.py, `diagnostics.json` beside the
model's cells) measure input gradients again on every model, so the leaderboard flags gradient
cells of a model whose gradients vanish (`zero-grad`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lite import devices
from robustbench_lite.errors import RBError

log = logging.getLogger(__name__)

#: Clean accuracy below CHANCE_FACTOR / num_classes is "near chance" (0.2 on 10 classes).
CHANCE_FACTOR = 2.0
#: A share of clean samples with zero (or non-finite) input gradients above this is warned about
#: (diagnostics.py flags the same share).
ZERO_GRAD_SHARE = 0.1
INPUTS = "inputs are NCHW float32 images in [0, 1] of shape (N, 1, 28, 28)"


@dataclass
class Diagnostics:
    """What the checks found that does not stop the run: the warnings logged, and numbers."""

    warnings: list[str] = field(default_factory=list)
    clean_acc: float | None = None
    zero_grad_share: float | None = None

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)


def ensure_eval(model: nn.Module, name: str, diagnostics: Diagnostics) -> None:
    """A model in train mode (dropout, batch statistics) is switched to eval, with a warning."""
    training = [n or "(root)" for n, m in model.named_modules() if m.training]
    if training:
        moded = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)
        dependent = [n for n, m in model.named_modules() if m.training and isinstance(m, moded)]
        shown = dependent or training
        what = "dropout/normalization layers" if dependent else "modules"
        listed = ", ".join(shown[:3]) + (", ..." if len(shown) > 3 else "")
        diagnostics.warn(
            f"model {name} was in train mode ({len(shown)} {what}: {listed}); "
            "switched to eval() for the evaluation"
        )
    model.eval()


def _logits(model: nn.Module, x: torch.Tensor, name: str, num_classes: int) -> torch.Tensor:
    """The model's output on x, refused unless it is finite [n, num_classes] float logits."""
    try:
        out = model(x)
    except Exception as exc:  # a user's forward: any failure is reported, not a traceback
        raise RBError(
            f"model {name} fails on a test batch ({type(exc).__name__}: {exc}); {INPUTS}"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise RBError(
            f"model {name} returned {type(out).__name__}; expected a tensor of logits "
            f"[n, {num_classes}]"
        )
    if tuple(out.shape) != (len(x), num_classes) or not out.is_floating_point():
        raise RBError(
            f"model {name} returned {out.dtype} of shape {tuple(out.shape)} for {len(x)} "
            f"images; expected float logits [{len(x)}, {num_classes}]"
        )
    if not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).any(dim=1).sum())
        raise RBError(f"model {name} returned NaN or inf logits on {bad} of {len(x)} test images")
    return out


def check_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    name: str,
    num_classes: int,
    randomized: bool,
    diagnostics: Diagnostics | None = None,
) -> Diagnostics:
    """Run every check on clean test samples (x, y); an RBError stops at the first fatal one.

    The model is expected in eval mode already (see `ensure_eval`). Its parameters are not
    touched: gradients are taken with respect to the input only."""
    diagnostics = diagnostics or Diagnostics()
    with torch.no_grad(), devices.fork_rng(x.device):
        first = _logits(model, x, name, num_classes)
        second = _logits(model, x, name, num_classes)
    if not randomized and not torch.allclose(first, second, rtol=1e-4, atol=1e-5):
        raise RBError(
            f"model {name} gives different outputs for two identical calls (max difference "
            f"{float((first - second).abs().max()):.3g}); declare it with --randomized "
            "(randomized=True) so it is attacked with EOT and judged by majority vote"
        )
    acc = float((first.argmax(dim=1) == y).double().mean())
    diagnostics.clean_acc = acc
    if acc < CHANCE_FACTOR / num_classes:
        raise RBError(
            f"model {name}: clean accuracy {acc:.3f} on {len(y)} test images is near chance "
            f"(1/{num_classes}); {INPUTS}: check its preprocessing (normalization, channels)"
        )
    keep = first.argmax(dim=1) == y
    share = _zero_grad_share(model, x[keep], y[keep])
    diagnostics.zero_grad_share = share
    if share > ZERO_GRAD_SHARE:
        diagnostics.warn(
            f"model {name}: input gradients of the loss are zero or non-finite on {share:.0%} "
            f"of {int(keep.sum())} clean-correct test images; gradient attacks see nothing there, "
            "so their numbers overstate robustness (trust the gradient-free cells)"
        )
    return diagnostics


def _zero_grad_share(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of samples whose cross-entropy gradient with respect to the input is all zero or
    non-finite (what PGD climbs; a model without a graph to the input counts as all zero)."""
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), devices.fork_rng(x.device):
        loss = F.cross_entropy(model(xg), y, reduction="sum")
        if not loss.requires_grad:
            return 1.0
        (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
    if grad is None:
        return 1.0
    flat = grad.flatten(1)
    dead = (flat == 0).all(dim=1) | ~torch.isfinite(flat).all(dim=1)
    return float(dead.double().mean())
