"""Interval bound propagation for the `ibp` defense (Gowal et al. 2018, "On the effectiveness of
interval bound propagation for training verifiably robust models").

The arithmetic lives in the protocol (protocol/interval_bounds.py), so that the runner recomputes
a certificate with the very same bounds instead of taking the defense's word; this module hands
the defense what it trains with (`margin_upper`, the worst-case logits ẑ) and certifies with
(`certify`, float64), unchanged.
"""

from __future__ import annotations

from robustbench_lite.api import (
    Bounds,
    certify,
    input_bounds,
    layers,
    logit_bounds,
    margin_upper,
    propagate,
)

__all__ = [
    "Bounds",
    "certify",
    "input_bounds",
    "layers",
    "logit_bounds",
    "margin_upper",
    "propagate",
]
