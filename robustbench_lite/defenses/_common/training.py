"""A plain minibatch training loop that training defenses share; they supply the batch loss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

#: loss(model, x, y, progress) -> scalar; progress runs from 0 to 1 over training (for schedules).
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]


def cross_entropy_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, progress: float
) -> torch.Tensor:
    """Standard training: mean cross-entropy of the clean batch."""
    return nn.functional.cross_entropy(model(x), y)


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    progress: bool,
    loss: BatchLoss = cross_entropy_loss,
    desc: str = "train",
    lr_milestones: Sequence[float] = (),
) -> None:
    """Adam over shuffled minibatches (shuffled by `generator`), then eval mode.

    The learning rate drops tenfold at each of `lr_milestones` (fractions of training).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    total = epochs * steps_per_epoch
    model.train()
    with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for step in range(steps_per_epoch):
                batch = order[step * batch_size : (step + 1) * batch_size]
                done = (epoch * steps_per_epoch + step) / total
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.1 ** sum(done >= m for m in lr_milestones)
                value = loss(model, x[batch], y[batch], done)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                bar.update(1)
                bar.set_postfix(loss=f"{value.item():.3f}", refresh=False)
    model.eval()


def fit_defense(
    defense: Any,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator,
    progress: bool,
    loss: BatchLoss = cross_entropy_loss,
) -> None:
    """`train` with a defense's own `epochs`, `batch_size`, `lr` and optional `lr_decay_at`."""
    decay = getattr(defense, "lr_decay_at", None)
    train(
        model,
        x,
        y,
        epochs=defense.epochs,
        batch_size=defense.batch_size,
        lr=defense.lr,
        generator=generator,
        progress=progress,
        loss=loss,
        desc=f"train {defense.name}",
        lr_milestones=() if decay is None else (decay,),
    )
