"""Test doubles registered at test time through entry points: defenses and attacks built to trip
one guarantee each (tests/protocol/test_guarantees.py)."""

from __future__ import annotations

import importlib.metadata
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from robustbench_lite.defenses.standard import Standard
from robustbench_lite.protocol import registry
from robustbench_lite.protocol.contracts import Attack, QueryModel
from robustbench_lite.store.records import summary


def register(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    """Register `name="module:Class"` plugins (attack or defense by the class's base)."""
    real = importlib.metadata.entry_points
    extra: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for name, target in targets.items():
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        group = registry.ATTACK_GROUP if issubclass(cls, Attack) else registry.DEFENSE_GROUP
        extra.setdefault(group, []).append(importlib.metadata.EntryPoint(name, target, group))

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), *extra.get(group, [])]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


class NoisyNet(nn.Module):
    """The standard CNN, but each row's logits are replaced by noise with probability 0.3."""

    calls: ClassVar[int] = 0

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        NoisyNet.calls += 1
        logits = self.inner(x)
        noisy = torch.rand(len(x)) < 0.3
        return torch.where(noisy[:, None], 100 * torch.randn_like(logits), logits)


class Noisy(Standard):
    """A randomized defense whose single draw is wrong 30% of the time; its majority is not."""

    name = "noisy"
    randomized = True

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        return NoisyNet(super().build(num_classes, shape))

    def fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> None:
        super().fit(model.inner, x, y, **kwargs)

    def prediction_draws(self) -> int:
        return 25


class LabelsOnly(Standard):
    """A deployed model that exposes labels alone: gradient and score attacks are impossible."""

    name = "labels-only"
    exposes = frozenset({"labels"})


class Liar(Standard):
    """Certifies every sample it classifies correctly: an unsound certificate on purpose, on a
    model with a layer interval bounds do not cover (a dropout), so the runner cannot recompute
    it and records the defense's claim, which the certificate invariant must catch."""

    name = "liar"
    certifies = True

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        return nn.Sequential(super().build(num_classes, shape), nn.Dropout(0.0))

    def certify(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
    ) -> torch.Tensor:
        with torch.no_grad():
            return model(x).argmax(dim=1) == y


class Probe(Attack):
    """One query per sample; records how many forward passes of NoisyNet that query took."""

    name = "probe"
    knowledge: ClassVar = "scores"
    passes: ClassVar[list[int]] = []

    def __init__(self, *, rows: int = 1) -> None:
        self.rows = rows  # rows per sample; 0: the budget it is told; -1: one row more than that

    def run(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        budget: int | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        rows = (budget or 1) - self.rows if self.rows <= 0 else self.rows
        for _ in range(rows):
            before = NoisyNet.calls
            model(x)
            Probe.passes.append(NoisyNet.calls - before)
        return x


class Round(nn.Module):
    """Quantizes the input to 5 grey levels: a step function, so every input gradient is zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4) / 4


class Rounding(Standard):
    """A deliberately masked model: the standard CNN behind input quantization."""

    name = "rounding"

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        return nn.Sequential(Round(), super().build(num_classes, shape))


def resummarized(record: dict[str, Any]) -> dict[str, Any]:
    """The aggregates a hand-made cell record's per-sample arrays give (what a reader checks)."""
    s = record["samples"]
    distance = [float("inf") if d is None else d for d in s["distance"]]
    return summary(
        torch.tensor(s["clean_correct"]),
        torch.tensor(s["robust"]),
        torch.tensor(s["queries"]),
        torch.tensor(distance, dtype=torch.float64),
    )
