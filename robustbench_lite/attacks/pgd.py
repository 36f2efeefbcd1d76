"""Attack `pgd` (and `pgd-l2`): projected gradient descent, Madry et al. 2018,
"Towards deep learning models resistant to adversarial attacks"."""

from __future__ import annotations

from typing import ClassVar

import torch

from robustbench_lite.api import (
    LOSSES,
    NORM_BALLS,
    TM,
    Adversarial,
    Attack,
    Knowledge,
    QueryModel,
    at_least,
    hp,
    one_of,
    optional,
    plugin,
    positive,
    preset,
)

#: The losses PGD ascends (the registry's, api.LOSSES).
PGD_LOSSES = ("ce", "margin")
#: Default step per eps where neither step size is given (foolbox's PGD defaults: the paper's
#: 0.01 at 0.3 for linf; 0.1 of eps for l2, where smaller steps stall within 40 steps here).
DEFAULT_REL_STEP = {TM.LINF: 0.01 / 0.3, TM.L2: 0.1}


@plugin
class PGD(Attack):
    """Iterated gradient steps projected onto the eps-ball, from a random start, with restarts.

    Each sample keeps the first iterate that fools the model (per-sample worst case over
    restarts) and is dropped from the batch once it does; later restarts attack only the rest.
    Against a stochastic model no single answer is proof, so every sample takes all steps and
    keeps its last iterate (as in Athalye et al. 2018's EOT attacks): stopping at the first
    fooled draw leaves x_adv on the decision boundary, where a majority vote flips it back.
    """

    name = "pgd"
    knowledge = Knowledge.GRADIENT
    profiles: ClassVar = {
        "quick": {"steps": 10, "rel_step_size": 0.25},
        # Strong enough that more steps/restarts barely move adversarially trained models
        # (benchmarks/bench_pgd_strength.py): 40 steps of 0.01 overstated pgd-at by 9 points.
        "standard": {"steps": 100, "rel_step_size": 0.1, "restarts": 10},
        # Madry et al.'s MNIST evaluation: 100 steps of 0.01, many restarts.
        "paper": {"steps": 100, "restarts": 20},
    }

    norm: str = hp(TM.LINF, one_of(NORM_BALLS))
    steps: int = hp(40, at_least(1))
    rel_step_size: float | None = hp(None, optional(positive()))
    abs_step_size: float | None = hp(None, optional(positive()))
    random_start: bool = hp(True)
    restarts: int = hp(1, at_least(1))
    loss: str = hp("ce", one_of(PGD_LOSSES))

    def validate(self) -> None:
        self.threat_model = TM(self.norm)

    def step_size(self, eps: float) -> float:
        """Absolute step: abs_step_size, else rel_step_size * eps, else DEFAULT_REL_STEP."""
        if self.abs_step_size is not None:
            return self.abs_step_size
        if self.rel_step_size is not None:
            return self.rel_step_size * eps
        return eps * DEFAULT_REL_STEP[self.threat_model]

    def run(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        budget: int | None,
        generator: torch.Generator,
    ) -> Adversarial:
        ball = NORM_BALLS[self.norm]
        alpha = self.step_size(eps)
        early_exit = not getattr(model, "stochastic", False)
        x_adv = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            active = torch.nonzero(~fooled).squeeze(1)
            if len(active) == 0:
                break
            x0, y0 = x[active], y[active]
            start = ball.random_start(x0, eps, generator) if self.random_start else 0.0
            xt = ball.project(x0, x0 + start, eps)
            for t in range(self.steps + 1):
                xt.requires_grad_(True)
                logits = model(xt, idx=active)
                hit = logits.argmax(dim=1) != y0
                x_adv[active] = xt.detach()  # the latest iterate; final for samples that hold
                fooled[active[hit]] = True
                keep = ~hit if early_exit else torch.ones_like(hit)
                if t == self.steps or not bool(keep.any()):
                    break
                per_sample = LOSSES[self.loss](logits, y0)
                (grad,) = torch.autograd.grad(per_sample[keep].sum(), xt)
                xt, grad, x0, y0, active = (
                    xt.detach()[keep],
                    grad[keep],
                    x0[keep],
                    y0[keep],
                    active[keep],
                )
                xt = ball.project(x0, xt + alpha * ball.steepest_direction(grad), eps)
        return Adversarial(x_adv)


PGDL2 = preset(PGD, "pgd-l2", "PGD in the L2 ball (Madry et al. 2018).", norm=TM.L2)
PGDMargin = preset(
    PGD,
    "pgd-margin",
    "PGD on the CW margin loss (Carlini & Wagner 2017): finds what cross-entropy misses on "
    "models with squashed logits such as ALP's (Engstrom, Ilyas and Athalye 2018).",
    loss="margin",
)
