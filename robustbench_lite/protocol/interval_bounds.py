"""Interval bound propagation (Gowal et al. 2018, "On the effectiveness of interval bound
propagation for training verifiably robust models"), in the protocol so that the runner can
recompute a certificate itself instead of taking a defense's word for it.

Elementwise bounds on every activation for all inputs in the Linf ball [x - eps, x + eps] ∩ [0, 1],
pushed through a feed-forward model layer by layer: affine layers in center/radius form
(center through the layer, radius through |W|), monotone layers (ReLU, Flatten) on both ends.
The last Linear layer is handled in margin form: z_j - z_y is one affine function of the
penultimate activations, bounded directly, which is tighter than u_j - l_y.

`certify` is the arithmetic, what the `ibp` defense trains and certifies with and what the runner
recomputes any certifying defense's certificate with on an instance of its own, wherever the bounds
provably bound what the model's forward pass computes (`unverifiable` says why not).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

Bounds = tuple[torch.Tensor, torch.Tensor]


def layers(model: nn.Module) -> list[nn.Module]:
    """The model's layers in order (nested Sequentials flattened); only supported kinds allowed."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"IBP needs an nn.Sequential model, got {type(model).__name__}")
    flat: list[nn.Module] = []
    for layer in model:
        if isinstance(layer, nn.Sequential):
            flat.extend(layers(layer))
        elif isinstance(layer, nn.Linear | nn.Conv2d | nn.ReLU | nn.Flatten | nn.Identity):
            flat.append(layer)
        else:
            raise TypeError(f"IBP does not support layer {type(layer).__name__}")
    return flat


def input_bounds(x: torch.Tensor, eps: float) -> Bounds:
    """The Linf ball around x, intersected with the image domain [0, 1]."""
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)


def _affine(layer: nn.Linear | nn.Conv2d, lower: torch.Tensor, upper: torch.Tensor) -> Bounds:
    center, radius = (upper + lower) / 2, (upper - lower) / 2
    center = layer(center)
    if isinstance(layer, nn.Linear):
        radius = F.linear(radius, layer.weight.abs())
    else:
        radius = F.conv2d(
            radius,
            layer.weight.abs(),
            None,
            layer.stride,
            layer.padding,  # type: ignore[arg-type]
            layer.dilation,
            layer.groups,
        )
    return center - radius, center + radius


def propagate(stack: list[nn.Module], lower: torch.Tensor, upper: torch.Tensor) -> Bounds:
    """Bounds on the output of `stack` (a list of supported layers) for inputs in [lower, upper]."""
    for layer in stack:
        if isinstance(layer, nn.Linear | nn.Conv2d):
            lower, upper = _affine(layer, lower, upper)
        elif isinstance(layer, nn.ReLU):
            lower, upper = lower.clamp_min(0.0), upper.clamp_min(0.0)
        elif isinstance(layer, nn.Flatten):
            lower, upper = layer(lower), layer(upper)
        elif not isinstance(layer, nn.Identity):
            raise TypeError(f"IBP does not support layer {type(layer).__name__}")
    return lower, upper


def logit_bounds(model: nn.Module, x: torch.Tensor, eps: float) -> Bounds:
    """Elementwise lower and upper bounds on the logits over the eps-ball around each x."""
    return propagate(layers(model), *input_bounds(x, eps))


def margin_upper(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Upper bounds on z_j - z_y over the eps-ball, (N, C); 0 in column y.

    These are the paper's worst-case logits ẑ (last layer elided into the margin): the model is
    certified at x when every other column is negative.
    """
    stack = layers(model)
    last = stack[-1]
    if not isinstance(last, nn.Linear):
        raise TypeError(f"IBP's margin form needs a final Linear layer, got {type(last).__name__}")
    lower, upper = propagate(stack[:-1], *input_bounds(x, eps))
    center, radius = (upper + lower) / 2, (upper - lower) / 2
    w_diff = last.weight[None, :, :] - last.weight[y][:, None, :]  # (N, C, H): w_j - w_y
    bias = last.bias if last.bias is not None else torch.zeros(len(last.weight), device=x.device)
    b_diff = bias[None, :] - bias[y][:, None]
    return (
        torch.einsum("nch,nh->nc", w_diff, center)
        + torch.einsum("nch,nh->nc", w_diff.abs(), radius)
        + b_diff
    )


@torch.no_grad()
def certify(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, batch_size: int = 500
) -> torch.Tensor:
    """Per-sample bool: the true logit provably beats every other one in the eps-ball.

    Computed in float64 so that rounding cannot turn a near-zero margin into a false certificate.
    """
    exact = _float64_copy(model)
    out = []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size].double(), y[start : start + batch_size]
        margins = margin_upper(exact, xb, yb, eps).scatter(1, yb[:, None], float("-inf"))
        out.append(margins.amax(dim=1) < 0)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _float64_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).double()


#: The layer kinds whose forward pass the bounds above follow exactly (their own torch classes).
EXACT = (nn.Linear, nn.Conv2d, nn.ReLU, nn.Flatten, nn.Identity)
#: What the runner's own certificate is, recorded in every certificate's config: a change to what
#: it verifies (or how) makes the committed certificates not current, so they are recomputed.
VERIFIER = "ibp-v1"


def unverifiable(model: nn.Module) -> str | None:
    """Why the runner cannot recompute the IBP certificate of `model`, or None when it can.

    The bounds follow a model's forward pass only when that pass is the layers' own: a plain
    nn.Sequential (nested ones too) of exactly the torch classes in EXACT (not subclasses, which
    may override `forward`), zero-padded convolutions, no forward hooks or instance `forward`, no
    global forward hooks, and a final Linear layer for the margin form. Anything else (batch norm,
    a custom module) the runner does not certify: the defense's certificate stays its claim."""
    if type(model) is not nn.Sequential:
        return f"the model is a {type(model).__name__}, not a plain nn.Sequential"
    for name, module in model.named_modules():
        where = f"layer {name or '(model)'}"
        if type(module) is not nn.Sequential and type(module) not in EXACT:
            return f"{where} is a {type(module).__name__}, which IBP does not cover"
        if module._forward_hooks or module._forward_pre_hooks or "forward" in vars(module):
            return f"{where} has forward hooks or its own forward"
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            return f"{where} pads with {module.padding_mode!r}, not zeros"
    hooks = nn.modules.module
    if getattr(hooks, "_global_forward_hooks", None) or getattr(
        hooks, "_global_forward_pre_hooks", None
    ):
        return "global forward hooks are registered"
    stack = layers(model)
    if not stack or type(stack[-1]) is not nn.Linear:
        return "its last layer is not a Linear layer (IBP's margin form needs one)"
    return None
