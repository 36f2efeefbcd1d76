"""The smallest step onto a hyperplane that stays in the box [0, 1]: FAB's projection (Croce &
Hein 2020, "Minimally distorted adversarial examples with a fast adaptive boundary attack",
ICML: the projection onto a hyperplane with box constraints), for the Linf and L2 norms.

For a point p, a normal w and an offset c, it solves min ||d|| s.t. <w, d> = c, 0 <= p + d <= 1.
With s = sign(c), every coordinate moves towards s w_i, by d_i = s_i min(tau k_i, cap_i), where
cap_i is the room the box leaves in that direction and k_i = 1 (Linf: all coordinates move by
the same tau until the box stops them) or |w_i| (L2: d is proportional to w until clipped).
<w, d> is then a piecewise-linear, non-decreasing function of tau, and tau is found exactly by
sorting its breakpoints (no iteration). Where even the box corner farthest along s w does not
reach the hyperplane, that corner is returned (the paper's choice: the closest the box allows).
Everything is computed in float64: the points live within 1e-4 of the boundary."""

from __future__ import annotations

import torch

from robustbench_lite.api import TM

#: Breakpoint of a coordinate with w_i = 0 (L2): never reached, and 0 * it is 0, not nan.
_NEVER = 1e300


def onto_hyperplane(norm: TM, p: torch.Tensor, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Per row of the (n, D) `p` and `w` and the (n,) `c`: the step d of least `norm` with
    <w, d> = c and p + d inside [0, 1] (the box corner nearest to it where none exists)."""
    p, w, c = p.double(), w.double(), c.double()
    s = torch.sign(c)[:, None]
    g = w * s  # the direction that moves <w, d> towards c
    a = g.abs()
    cap = torch.where(g > 0, 1.0 - p, p).clamp_min(0.0)  # the box's room along sign(g)
    if norm == TM.LINF:
        brk, slope = cap, a
    elif norm == TM.L2:
        brk = torch.where(a > 0, cap / a.clamp_min(1e-300), torch.full_like(a, _NEVER))
        slope = a * a
    else:
        raise ValueError(f"no hyperplane projection for the {norm} norm")
    value = a * cap  # what a coordinate adds to <g, d> once the box stops it
    order = brk.argsort(dim=1)
    brk, value, slope = brk.gather(1, order), value.gather(1, order), slope.gather(1, order)
    saturated = value.cumsum(dim=1)  # at tau = brk[k]: coordinates 0..k are stopped
    # ... and coordinates k+1.. still move: summed from the end, so it is exactly 0 past the
    # last w_i != 0 (a difference of sums would leave a rounding error times _NEVER).
    later = slope.flip(1).cumsum(dim=1).flip(1)
    moving = torch.cat([later[:, 1:], torch.zeros_like(later[:, :1])], dim=1)
    reached = saturated + brk * moving  # <g, d> at tau = brk[k], non-decreasing in k
    target = c.abs()[:, None]
    k = (reached < target).sum(dim=1, keepdim=True)  # the first breakpoint at or past c
    unreachable = k.squeeze(1) == brk.shape[1]
    prev = (k - 1).clamp_min(0)
    done = torch.where(k > 0, saturated.gather(1, prev), torch.zeros_like(target))
    free = torch.where(k > 0, moving.gather(1, prev), later[:, :1])
    tau = (target - done).clamp_min(0.0) / free.clamp_min(1e-300)
    tau = torch.where(unreachable[:, None], torch.full_like(tau, float("inf")), tau)
    reach = tau if norm == TM.LINF else tau * a.clamp_max(_NEVER)
    size = torch.minimum(reach.nan_to_num(nan=0.0, posinf=float("inf")), cap)
    return torch.where(a > 0, torch.sign(g) * size, torch.zeros_like(size))
