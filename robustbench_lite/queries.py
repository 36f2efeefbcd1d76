"""Query accounting: the runner's own count of every forward row an attack makes."""

from __future__ import annotations

from collections.abc import Callable

import torch


class QueryCounter:
    """Wraps a model and charges every row of every forward call to the sample it belongs to.

    Attacks never report their own counts. A row costs `draws` queries when one prediction of the
    model takes several stochastic forward passes (expectation over transformation).
    `stochastic` tells attacks that the model is randomized: one fooled answer proves nothing.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        n: int,
        *,
        num_classes: int,
        draws: int = 1,
        stochastic: bool = False,
    ) -> None:
        self.model = model
        self.n = n
        self.num_classes = num_classes
        self.draws = draws
        self.stochastic = stochastic
        self.counts = torch.zeros(n, dtype=torch.int64)
        self.calls = 0

    def __call__(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        if idx is None:
            if len(x) != self.n:
                raise ValueError(
                    f"a query of {len(x)} rows for a batch of {self.n} samples must say whose rows "
                    "they are: pass idx= (the sample index of each row)"
                )
            idx = torch.arange(self.n)
        idx = torch.as_tensor(idx, dtype=torch.int64)
        if idx.shape != (len(x),):
            raise ValueError(
                f"idx must have one entry per row: {tuple(idx.shape)} vs {len(x)} rows"
            )
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            raise ValueError(f"idx out of range 0..{self.n - 1}")
        self.counts.index_add_(0, idx, torch.full_like(idx, self.draws))
        self.calls += 1
        return self.model(x)

    @property
    def total(self) -> int:
        """All queries made so far."""
        return int(self.counts.sum())


def require_budget(budget: int | None, attack: str) -> int:
    """The per-sample budget a query-based attack runs under; it needs a positive one."""
    if budget is None or budget < 1:
        raise ValueError(f"{attack} needs a per-sample query budget of at least 1, got {budget}")
    return int(budget)
