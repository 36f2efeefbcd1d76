"""Checks of a model that no attack cell shows (Carlini et al. 2019, "On evaluating adversarial
robustness"): input gradients that vanish, outputs that change between identical calls of a model
not declared randomized, and an attack with an eps covering the whole input box that fails.

`run_checks` runs on every model, once, beside its cells (the runner stores what it finds as
`diagnostics.json`; the leaderboard turns it into flags). `check_model` runs on a user's model
before anything attacks it (`rb run --model`, `evaluate`): a model can be wrong in ways that make
every robustness number meaningless while still "running" (logits of the wrong shape, NaNs,
preprocessing that expects other inputs, hidden randomness), and each such failure stops the run
with one line. Both apply one zero-gradient rule (`zero_grad_share`, `ZERO_GRAD_SHARE`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.devices import fork_rng
from robustbench_lite.protocol.eot import EOT
from robustbench_lite.protocol.evaluate import verify
from robustbench_lite.protocol.losses import margin_loss
from robustbench_lite.protocol.spec import derive_seed

log = logging.getLogger(__name__)

SAMPLES = 50  # clean-correct samples the diagnostics use
#: Flag (and warn) when more than this share of samples has a zero or non-finite input gradient.
ZERO_GRAD_SHARE = 0.1
#: Clean accuracy below CHANCE_FACTOR / num_classes is "near chance" (0.2 on 10 classes).
CHANCE_FACTOR = 2.0


def inputs(x: torch.Tensor) -> str:
    """What the suite feeds a model, for error messages."""
    shape = ", ".join(str(int(d)) for d in x.shape[1:])
    return f"inputs are NCHW float32 images in [0, 1] of shape (N, {shape})"


def zero_grad_share(grad: torch.Tensor) -> float:
    """Share of samples whose input gradient is all zero or holds a non-finite value (what a
    gradient attack climbs: it sees nothing there)."""
    if len(grad) == 0:
        return 0.0
    flat = grad.flatten(1)
    dead = (flat == 0).all(dim=1) | ~torch.isfinite(flat).all(dim=1)
    return float(dead.double().mean())


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
    with fork_rng(x.device):
        torch.manual_seed(seed)
        grad = _input_grad(view, x, lambda out: F.cross_entropy(out, y, reduction="sum"))
        dead = zero_grad_share(grad)
        changed = 0.0
        if not randomized:
            with torch.no_grad():
                a, b = model(x), model(x)
            changed = float((a != b).any(dim=1).double().mean()) if len(x) else 0.0
        success = _unbounded_pgd(view, model, x, y, prediction_draws, seed)
    said = {
        "zero-grad": f"{dead:.0%} of {len(x)} clean samples have a zero input gradient",
        "undeclared-randomness": f"{changed:.0%} of {len(x)} outputs changed between two "
        "identical calls",
        "unbounded-fails": f"PGD at linf eps 1 (the whole box, 50 steps) fooled {success:.0%} of "
        f"{len(x)} samples",
    }
    return {
        "samples": len(x),
        "zero_grad_share": dead,
        "changed_share": changed,
        "unbounded_success": success,
        "flags": {code: said[code] for code in flags_of(dead, changed, success)},
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
        grad = _input_grad(view, xt, lambda out: margin_loss(out, y).sum())
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
            f"model {name} fails on a test batch ({type(exc).__name__}: {exc}); {inputs(x)}"
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
    with torch.no_grad(), fork_rng(x.device):
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
            f"(1/{num_classes}); {inputs(x)}: check its preprocessing (channels; a model that "
            "expects standardized inputs wants --normalize MEAN,STD)"
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
    """`zero_grad_share` of the cross-entropy's input gradient (a model without a graph to its
    input counts as all zero)."""
    with torch.enable_grad(), fork_rng(x.device):
        grad = _input_grad(model, x, lambda out: F.cross_entropy(out, y, reduction="sum"))
    return zero_grad_share(grad)
