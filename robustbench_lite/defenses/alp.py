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

from robustbench_lite.api import Attack, Defense, attack_class, own_model, preset
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


class ALP(Defense):
    """Adversarial training with mixed clean/adversarial batches and logit pairing (λ = `pairing`)."""

    name = "alp"
    profiles: ClassVar = {
        "quick": {"epochs": 4, "steps": 5, "width": 16, "lr_decay_at": None},
        # Madry et al.'s MNIST attack: 40 steps of 0.01 at eps 0.3, from the start of training.
        "paper": {"epochs": 100, "steps": 40, "rel_step_size": 0.01 / 0.3, "ramp_length": 0.0},
    }

    def __init__(
        self,
        *,
        pairing: float = 0.5,
        clean_weight: float = 0.5,
        epochs: int = 15,
        batch_size: int = 50,
        lr: float = 1e-3,
        width: int = 32,
        train_eps: float | None = None,
        steps: int = 10,
        rel_step_size: float = 0.25,
        ramp_length: float = 0.2,
        lr_decay_at: float | None = 0.7,
    ) -> None:
        if not pairing >= 0:
            raise ValueError(f"pairing (λ) must be non-negative, got {pairing}")
        if not 0 <= clean_weight < 1:
            raise ValueError(f"clean_weight must be in [0, 1), got {clean_weight}")
        if epochs < 1 or batch_size < 1 or width < 1 or steps < 1:
            raise ValueError("epochs, batch_size, width and steps must be positive")
        if not (lr > 0 and rel_step_size > 0):
            raise ValueError("lr and rel_step_size must be positive")
        if lr_decay_at is not None and not 0 < lr_decay_at < 1:
            raise ValueError(f"lr_decay_at must be in (0, 1) or None, got {lr_decay_at}")
        if train_eps is not None and not 0 < train_eps <= 1:
            raise ValueError(f"train_eps must be in (0, 1] or None (the data's), got {train_eps}")
        if not 0 <= ramp_length <= 1:
            raise ValueError(f"ramp_length must be in [0, 1], got {ramp_length}")
        self.pairing = pairing
        self.clean_weight = clean_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.width = width
        self.train_eps = train_eps
        self.steps = steps
        self.rel_step_size = rel_step_size
        self.ramp_length = ramp_length
        self.lr_decay_at = lr_decay_at
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
