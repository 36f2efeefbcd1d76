"""What minimal white-box attacks (FMN, FAB) share: when a point counts as fooling, and how a
fooling point is made to hold against a stochastic model (fresh draws must agree; the best is
pushed outward until they do)."""

from __future__ import annotations

import torch

from robustbench_lite.api import QueryModel, margin_loss

#: Against a stochastic model, the scales of a sample's best perturbation tried in turn after the
#: last step until `confirm` fresh queries are all fooled (see `settle`).
SETTLE_SCALES = (1.0, 1.1, 1.25, 1.5, 2.0, 3.0)


def fools(logits: torch.Tensor, y: torch.Tensor, rel_margin: float) -> torch.Tensor:
    """Per row: misclassified with a margin above `rel_margin` of the largest |logit|. Minimal
    attacks end within 1e-4 of the boundary, where the runner's own re-prediction (another
    batch, a GPU's other kernels) must not flip the point back."""
    return margin_loss(logits, y) > rel_margin * logits.abs().amax(dim=1)


def confirmed(
    model: QueryModel,
    x: torch.Tensor,
    y: torch.Tensor,
    idx: torch.Tensor,
    *,
    draws: int,
    rel_margin: float,
) -> torch.Tensor:
    """Per row of `x` (samples `idx`): fooling on `draws` further queries, each a fresh draw of
    a stochastic model."""
    held = torch.ones(len(x), dtype=torch.bool, device=x.device)
    if len(x) == 0:
        return held
    with torch.no_grad():
        for _ in range(draws):
            held &= fools(model(x, idx=idx), y, rel_margin)
    return held


def settle(
    model: QueryModel,
    x: torch.Tensor,
    y: torch.Tensor,
    best: torch.Tensor,
    found: torch.Tensor,
    *,
    draws: int,
    rel_margin: float,
) -> torch.Tensor:
    """The best points pushed outward until they hold (stochastic models): of the many points a
    run confirms, the smallest is the luckiest, and a majority vote often flips it back. Each
    found sample's perturbation is scaled by SETTLE_SCALES in turn, every scale asked `draws`
    fresh queries, and the first scale that all of them call fooled is kept (the best itself
    where none is). A majority of them is not enough: the runner's verdict is a vote of hard
    labels over its own draws; on the quick randomization model 71-77% of the points FMN kept
    by a majority held under the runner's vote, 92-95% of those all draws kept."""
    out = best.clone()
    pending = found.clone()
    for scale in SETTLE_SCALES:
        which = torch.nonzero(pending).squeeze(1)
        if len(which) == 0:
            break
        x0 = x[which]
        trial = (x0 + scale * (best[which] - x0)).clamp(0.0, 1.0)
        held = confirmed(model, trial, y[which], which, draws=draws, rel_margin=rel_margin)
        out[which[held]] = trial[held]
        pending[which[held]] = False
    return out
