"""Query accounting and access control: the runner's own count of every forward row an attack
makes, and the narrow face of the model that an attack is handed.

The runner holds a `QueryCounter` (the model, the per-sample counts, the budget); the attack gets
only `counter.view()`, an `Oracle` whose single entry point answers at the level of access the
attack declared (`gradient`: differentiable logits; `scores`: detached logits computed without
autograd; `labels`: a one-hot of the predicted label). The oracle has no public attribute that
leads to the model or the counts.

An oracle lives exactly as long as its cell's `Attack.run` call: the runner closes it when `run`
returns, after which every call raises (naming the attack and the cell), and a cell during whose
run such a stale call was made fails. Charges are counted under a lock, the budget check and the
charge one atomic step, so an attack that queries from several threads is counted exactly, and a
refused query refuses the cell even where the attack caught the error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.contracts import Knowledge
from robustbench_lite.protocol.threat_models import ThreatModel


class AccessError(RBError):
    """An attack used more access or more queries than it declared or was given."""


class _StaleCalls:
    """Calls made to closed oracles, process-wide: the cell running while one is made fails,
    whichever oracle the call went to (an attack that kept another cell's oracle)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.last = ""

    def record(self, message: str) -> None:
        with self._lock:
            self.count += 1
            self.last = message


STALE = _StaleCalls()


class Oracle:
    """What an attack holds: `oracle(x, idx=None)` answers at the attack's declared access.

    `idx[i]` names the sample (0..N-1 of the batch given to `Attack.run`) that row i belongs to;
    it may be omitted only when the call holds exactly one row per sample, in order.
    `stochastic` is True for a randomized defense: one fooled answer proves nothing.
    `threat_model` is the cell's (its geometry, and the data's spatial range).
    """

    __slots__ = ("_ask", "knowledge", "num_classes", "stochastic", "threat_model")

    def __init__(
        self,
        ask: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
        *,
        knowledge: Knowledge,
        num_classes: int,
        stochastic: bool,
        threat_model: ThreatModel | None = None,
    ) -> None:
        self._ask = ask
        self.knowledge = knowledge
        self.num_classes = num_classes
        self.stochastic = stochastic
        self.threat_model = threat_model

    def __call__(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        return self._ask(x, idx)

    def __repr__(self) -> str:
        return f"Oracle(knowledge={self.knowledge!r}, num_classes={self.num_classes})"


class QueryCounter:
    """Runner side: wraps a model and charges every row of every call to the sample it belongs to.

    Attacks never report their own counts and never see this object, only `view()`. A row costs
    `draws` queries when one prediction takes several stochastic forward passes (EOT). With a
    `budget`, a call that would take any sample past it is refused before the model runs; since
    every row is charged to some sample, the rows of a batch are thereby capped at
    budget x batch size. Which sample a row belongs to is the attack's word (`idx`): a minimal
    attack queries far from its sample, so the runner cannot check it.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        n: int,
        *,
        num_classes: int,
        draws: int = 1,
        stochastic: bool = False,
        knowledge: Knowledge = Knowledge.GRADIENT,
        budget: int | None = None,
        owner: str = "the attack",
        cell: str = "its cell",
        threat_model: ThreatModel | None = None,
    ) -> None:
        if knowledge not in set(Knowledge):
            raise RBError(
                f"{owner} declares unknown knowledge {knowledge!r}; known: {', '.join(Knowledge)}"
            )
        self._model = model
        self.n = n
        self.num_classes = num_classes
        self.draws = draws
        self.stochastic = stochastic
        self.knowledge = Knowledge(knowledge)
        self.budget = budget
        self.owner = owner
        self.cell = cell
        self.threat_model = threat_model
        self.stream: Any = None  # a QueryStream (indicators.py) that records every answered row
        self.counts = torch.zeros(n, dtype=torch.int64, device="cpu")
        self.calls = 0
        self._lock = threading.Lock()
        self._closed = False
        self.refusals: list[AccessError] = []  # every refused query, caught by the attack or not

    def view(self) -> Oracle:
        """The face of the model an attack may hold (no reference to the model or the counts)."""
        return Oracle(
            lambda x, idx: self._query(x, idx),
            knowledge=self.knowledge,
            num_classes=self.num_classes,
            stochastic=self.stochastic,
            threat_model=self.threat_model,
        )

    def close(self) -> None:
        """End the oracle's life (its cell's `run` returned): later calls raise, and the model is
        no longer reachable through it."""
        with self._lock:
            self._closed = True
            self._model = None  # type: ignore[assignment]

    def check(self) -> None:
        """Raise the first query this counter refused (the attack may have caught it)."""
        if self.refusals:
            raise self.refusals[0]

    def _stale(self) -> AccessError:
        """The error of a call to a closed oracle, recorded process-wide (see `STALE`)."""
        message = (
            f"{self.owner} queried the oracle of {self.cell} after that cell's run returned: "
            "an oracle is valid only inside its cell's run"
        )
        STALE.record(message)
        return AccessError(message)

    def _query(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        try:
            return self._answer(x, idx)
        except AccessError as exc:
            with self._lock:
                self.refusals.append(exc)
            raise

    def _answer(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        if self._closed:
            raise self._stale()
        if not isinstance(x, torch.Tensor) or x.layout != torch.strided or x.is_meta:
            raise AccessError(f"{self.owner} queried with {type(x).__name__}, not a dense tensor")
        if x.requires_grad and self.knowledge != Knowledge.GRADIENT:
            raise AccessError(
                f"{self.owner} declares {self.knowledge} access but asked for gradients "
                "(its query requires grad); declare knowledge = 'gradient'"
            )
        if idx is None:
            if len(x) != self.n:
                raise AccessError(
                    f"a query of {len(x)} rows for a batch of {self.n} samples must say whose "
                    "rows they are: pass idx= (the sample index of each row)"
                )
            idx = torch.arange(self.n, device="cpu")  # counts live on the CPU
        idx = torch.as_tensor(idx, dtype=torch.int64, device="cpu").detach()
        if idx.shape != (len(x),):
            raise AccessError(
                f"idx must have one entry per row: {tuple(idx.shape)} vs {len(x)} rows"
            )
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            raise AccessError(f"idx out of range 0..{self.n - 1}")
        with self._lock:  # the budget check and the charge: one step, whatever thread asks
            if self._closed:
                raise self._stale()
            counts = self.counts.index_add(0, idx, torch.full_like(idx, self.draws))
            if self.budget is not None and len(idx) and int(counts.max()) > self.budget:
                worst = int(counts.argmax())
                raise AccessError(
                    f"{self.owner} queried sample {worst} {int(counts[worst])} times, over its "
                    f"budget of {self.budget}: the runner refuses to grade it"
                )
            self.counts = counts
            self.calls += 1
            model = self._model
        if self.knowledge == Knowledge.GRADIENT:
            answer = model(x)
            if self.stream is not None:
                self.stream.record(x, idx, answer)
            return answer
        with torch.no_grad():
            out = model(x.detach()).detach()
        if self.stream is not None:
            self.stream.record(x, idx, out)
        if self.knowledge == Knowledge.SCORES:
            return out.clone()
        return F.one_hot(out.argmax(dim=1), out.shape[1]).to(out.dtype)

    @property
    def total(self) -> int:
        """All queries made so far."""
        return int(self.counts.sum())


def require_budget(budget: int | None, attack: str) -> int:
    """The per-sample budget a query-based attack runs under; it needs a positive one."""
    if budget is None or budget < 1:
        raise ValueError(f"{attack} needs a per-sample query budget of at least 1, got {budget}")
    return int(budget)
