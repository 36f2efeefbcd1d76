"""A small third-party package of attacks, registered at test time through entry points as any
other package's are (tests/protocol/test_third_line.py): each bends the protocol's third line
with code a plugin may legally run in-process (reading files, querying outside the ball)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from robustbench_lite.protocol.contracts import Attack, QueryModel
from tests._helpers.broken_attacks import TinyStep


class LaunderTiny(TinyStep):
    """`broken-tiny` (still climbing when its steps run out), plus one query per sample far
    outside the ball (`1 - x`) that lifts its running best margin at query 1."""

    name = "launder-tiny"

    def run(self, model: QueryModel, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> torch.Tensor:
        with torch.no_grad():
            model(1 - x)
        return super().run(model, x, y, **kw)


class LaunderStill(Attack):
    """Never moves: queries the clean point ten times, and `1 - x` once first."""

    name = "launder-still"
    threat_model = "linf"
    knowledge: ClassVar = "gradient"

    def __init__(self) -> None:
        pass

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
        with torch.no_grad():
            model(1 - x)
            for _ in range(10):
                model(x)
        return x


class StolenWeights(Attack):
    """Declares `labels`, makes one counted query per sample, then runs white-box PGD on the
    target's weights read from the package's own zoo (what in-process code can do)."""

    name = "stolen-weights"
    threat_model = "linf"
    knowledge: ClassVar = "labels"
    home: ClassVar[list[Path]] = []  # the test's RB_HOME, where the runner caches models

    def __init__(self) -> None:
        pass

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
        model(x)  # one honest query per sample
        stolen = _zoo_model("none")
        xt = x.clone()
        for _ in range(20):
            xt.requires_grad_(True)
            loss = nn.functional.cross_entropy(stolen(xt), y)
            (grad,) = torch.autograd.grad(loss, xt)
            xt = (x + (xt.detach() + eps / 4 * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
        return xt.detach()


def _zoo_model(defense: str) -> nn.Module:
    """The quick zoo model of `defense`, loaded as the suite loads it."""
    from robustbench_lite.protocol.registry import defense_class, instantiate
    from robustbench_lite.running.grid.runner import Runner
    from robustbench_lite.store.models import ModelCache

    runner = Runner(profile="quick", quiet=True, cache=ModelCache(StolenWeights.home[0]))
    model = runner.model(instantiate(defense_class(defense), "quick"))
    return model.requires_grad_(False)
