"""Attacks `transfer` and `transfer-l2`: adversarial examples crafted white-box on a surrogate
model and sent to the target once (Papernot et al. 2016, "Transferability in machine learning";
Pintor et al. 2022 read its failure as an indicator). The cheapest gradient-free check there is:
one labels-only query per sample, so it runs on every row, ABS included. A defense whose
white-box numbers lose to it masks its gradients (`transfer-beats-white-box`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from robustbench_lite.api import (
    TM,
    Adversarial,
    Attack,
    Knowledge,
    ModelRecipe,
    QueryModel,
    at_least,
    attack_class,
    hp,
    one_of,
    own_model,
    plugin,
    preset,
)


@plugin
class Transfer(Attack):
    """PGD (the registry's `pgd`, its steps and restarts) on the surrogate defense's trained
    model (default: the undefended `none` of the same data; the runner provides it, built from
    its recipe), then one query of the target per sample: labels only."""

    name = "transfer"
    knowledge: ClassVar = Knowledge.LABELS
    threat_model = TM.LINF
    profiles: ClassVar = {
        "quick": {"steps": 10},
        "standard": {"steps": 100, "restarts": 5},
        "paper": {"steps": 100, "restarts": 10},
    }

    norm: str = hp(TM.LINF, one_of((TM.LINF, TM.L2)))
    surrogate: str = hp("none")
    steps: int = hp(40, at_least(1))
    restarts: int = hp(1, at_least(1))

    def validate(self) -> None:
        self.threat_model = TM(self.norm)
        self._recipe: ModelRecipe | None = None
        self._weights: str | None = None

    def surrogate_defense(self) -> str | None:
        return self.surrogate

    def use_surrogate(self, recipe: ModelRecipe, weights: str | None) -> None:
        """The runner hands in the surrogate's recipe (its trained weights) before the cells."""
        self._recipe, self._weights = recipe, weights

    def surrogate_weights(self) -> str | None:
        return self._weights

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
        if self._recipe is None:
            raise ValueError(f"{self.name} has no surrogate model: the runner provides it")
        surrogate = self._recipe.make()  # white-box on it: it is not the target
        pgd_class: Callable[..., Attack] = attack_class("pgd")  # with pgd's own hyper-parameters
        pgd = pgd_class(
            norm=self.norm, steps=self.steps, restarts=self.restarts, rel_step_size=2.5 / self.steps
        )
        own = own_model(surrogate, model.num_classes, model.threat_model)
        x_adv = pgd.run(own, x, y, eps=eps, budget=None, generator=generator).x
        model(x_adv.detach(), idx=torch.arange(len(x), device=x.device))  # the one query
        return Adversarial(x_adv.detach())


TransferL2 = preset(
    Transfer, "transfer-l2", "The transfer attack in the L2 ball (PGD-L2 on the surrogate).",
    norm=TM.L2,
)  # fmt: skip
