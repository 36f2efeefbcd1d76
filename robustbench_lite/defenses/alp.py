"""Defenses `alp` and `pgd-at`: PGD adversarial training (Madry et al. 2018, "Towards deep learning
models resistant to adversarial attacks") with adversarial logit pairing (Kannan et al. 2018,
"Adversarial logit pairing").

Each batch is attacked with the registry's `pgd` attack (by name, no private copy); the loss mixes
clean and adversarial cross-entropy and adds λ·‖f(x) − f(x′)‖² between paired logits. `pgd-at` is
the same trainer with λ = 0 on adversarial examples only, as Madry et al. train.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lite.api import (
    Attack,
    Defense,
    at_least,
    attack_class,
    between,
    hp,
    non_negative,
    optional,
    own_model,
    plugin,
    positive,
    preset,
)
from robustbench_lite.defenses._common.models import architecture
from robustbench_lite.defenses._common.training import fit_defense


def pairing_loss(
    logits: torch.Tensor,
    logits_adv: torch.Tensor,
    y: torch.Tensor,
    *,
    pairing: float,
    clean_weight: float,
) -> torch.Tensor:
    """Mixed-batch cross-entropy plus λ times the mean squared L2 distance of paired logits."""
    loss = (1.0 - clean_weight) * F.cross_entropy(logits_adv, y)
    if clean_weight > 0:
        loss = loss + clean_weight * F.cross_entropy(logits, y)
    if pairing > 0:
        loss = loss + pairing * (logits - logits_adv).square().sum(dim=1).mean()
    return loss


@plugin
class ALP(Defense):
    """Adversarial training with mixed clean/adversarial batches and logit pairing (λ = `pairing`)."""

    name = "alp"
    profiles: ClassVar = {
        "quick": {"epochs": 4, "steps": 5, "width": 16, "lr_decay_at": None},
        # Madry et al.'s MNIST attack: 40 steps of 0.01 at eps 0.3, from the start of training.
        "paper": {"epochs": 100, "steps": 40, "rel_step_size": 0.01 / 0.3, "ramp_length": 0.0},
    }

    pairing: float = hp(0.5, non_negative(), doc="λ, the weight of the logit pairing")
    clean_weight: float = hp(0.5, between(0, 1, open_high=True))
    epochs: int = hp(15, at_least(1))
    batch_size: int = hp(50, at_least(1))
    lr: float = hp(1e-3, positive())
    width: int = hp(32, at_least(1))
    train_eps: float | None = hp(None, optional(between(0, 1, open_low=True)))
    steps: int = hp(10, at_least(1))
    rel_step_size: float = hp(0.25, positive())
    ramp_length: float = hp(0.2, between(0, 1))
    lr_decay_at: float | None = hp(0.7, optional(between(0, 1, open_low=True, open_high=True)))

    def validate(self) -> None:
        self.num_classes = 10  # set again by `build`

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        self.num_classes = num_classes
        return architecture(num_classes, shape, self.width)

    def attack(self) -> Attack:
        """The training attack: the registry's `pgd` with this defense's steps and step size."""
        pgd: Callable[..., Attack] = attack_class("pgd")  # called with pgd's own hyper-parameters
        return pgd(steps=self.steps, rel_step_size=self.rel_step_size)

    def eps_at(self, progress: float, eps: float = 0.3) -> float:
        """Training eps (`train_eps`, else the data's Linf budget `eps`): ramped linearly from 0
        over the first `ramp_length` of training."""
        top = self.train_eps if self.train_eps is not None else eps
        if self.ramp_length <= 0:
            return top
        return top * min(1.0, progress / self.ramp_length)

    def loss(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        progress: float,
        *,
        attack: Attack,
        generator: torch.Generator,
        data_eps: float = 0.3,
    ) -> torch.Tensor:
        eps = self.eps_at(progress, data_eps)
        x_adv = x
        if eps > 0:
            own = own_model(model, self.num_classes)
            found = attack.run(own, x, y, eps=eps, budget=None, generator=generator)
            x_adv = found.x.detach()
        logits_adv = model(x_adv)
        need_clean = self.clean_weight > 0 or self.pairing > 0
        logits = model(x) if need_clean else logits_adv
        return pairing_loss(
            logits, logits_adv, y, pairing=self.pairing, clean_weight=self.clean_weight
        )

    def fit(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator,
        progress: bool,
        eps: float = 0.3,
    ) -> None:
        fit_defense(
            self,
            model,
            x,
            y,
            generator=generator,
            progress=progress,
            loss=partial(self.loss, attack=self.attack(), generator=generator, data_eps=eps),
        )


PGDAT = preset(
    ALP,
    "pgd-at",
    "PGD adversarial training, Madry et al. 2018: adversarial batches only, no logit pairing.",
    pairing=0.0,
    clean_weight=0.0,
)
