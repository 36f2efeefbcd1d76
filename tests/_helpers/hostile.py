"""Hostile third-party attack plugins, each trying one way to bend the protocol, registered at
test time through entry points exactly as another package would register them (tests/protocol/).
The honest-but-broken attacks of the indicator tests live in tests/_helpers/broken_attacks.py."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from robustbench_lite.protocol.contracts import Attack, QueryModel


class _Base(Attack):
    """A plugin whose `run` is one trick; hyper-parameter-free."""

    threat_model = "linf"
    knowledge: ClassVar = "scores"
    seen: ClassVar[list[Any]] = []

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
    ) -> Any:
        return self.trick(model, x, y, eps, budget)

    def trick(self, model: Any, x: torch.Tensor, y: torch.Tensor, eps: float, budget: Any) -> Any:
        raise NotImplementedError


def public_handles(oracle: Any) -> list[Any]:
    """Every public attribute of the oracle that is a module, a tensor or has a __call__ other
    than the oracle's own: what a plugin could grab without digging."""
    found = []
    for name in dir(oracle):
        if name.startswith("_"):
            continue
        value = getattr(oracle, name)
        if isinstance(value, nn.Module | torch.Tensor) or hasattr(value, "counts"):
            found.append(value)
    return found


def dig_module(oracle: Any) -> nn.Module:
    """Break the wall on purpose: find the attacked module through private closure cells (what
    no plugin is meant to do; the fingerprint check must still catch what it does there)."""
    stack, seen = [oracle], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, nn.Module):
            return obj
        for cell in getattr(obj, "__closure__", None) or ():
            stack.append(cell.cell_contents)
        stack.extend(getattr(obj, "__dict__", {}).values())
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                stack.append(getattr(obj, slot))
    raise LookupError("no module reachable")


class ReachModel(_Base):
    """Looks for the raw model among the oracle's attributes to run white-box steps through it."""

    name = "hostile-reach"

    def trick(self, model, x, y, eps, budget):
        handles = public_handles(model)
        ReachModel.seen.append(handles)
        model(x)  # one honest query, then the white-box shortcut if there were one
        for handle in handles:
            if isinstance(handle, nn.Module):
                xt = x.clone().requires_grad_(True)
                loss = nn.functional.cross_entropy(handle(xt), y)
                (grad,) = torch.autograd.grad(loss, xt)
                return (x + eps * grad.sign()).clamp(0, 1)
        return x


class GradThroughScores(_Base):
    """Declares scores but asks for gradients through them."""

    name = "hostile-grad"

    def trick(self, model, x, y, eps, budget):
        xt = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xt), y)
        (grad,) = torch.autograd.grad(loss, xt)
        return (x + eps * grad.sign()).clamp(0, 1)


class LabelsPeek(_Base):
    """Declares labels and records what it is answered."""

    name = "hostile-labels"
    knowledge: ClassVar = "labels"

    def trick(self, model, x, y, eps, budget):
        LabelsPeek.seen.append(model(x))
        return x


class Overspend(_Base):
    """Spends three times its budget, then tries to zero the counts it cannot see."""

    name = "hostile-overspend"

    def trick(self, model, x, y, eps, budget):
        for _ in range(3 * budget):
            model(x)
        if hasattr(model, "counts"):
            model.counts.zero_()
        return x


class RoundRobin(_Base):
    """Queries sample 0's image over and over, charging the rows round-robin to every sample."""

    name = "hostile-roundrobin"

    def trick(self, model, x, y, eps, budget):
        rows = x[:1].expand(len(x), *x.shape[1:])
        for _ in range(budget + 1):  # budget x batch rows fit the cap; one more round does not
            model(rows, idx=torch.arange(len(x)))
        return x


class ZeroLastLayer(_Base):
    """Zeros the last layer of the model it attacks (reached by digging, on purpose)."""

    name = "hostile-zero"
    knowledge: ClassVar = "gradient"

    def trick(self, model, x, y, eps, budget):
        module = dig_module(model)
        last = [p for p in module.parameters()][-1]
        with torch.no_grad():
            last.zero_()
        return x


class TrainMode(_Base):
    """Switches the attacked model to training mode, as a careless plugin might."""

    name = "hostile-train"
    knowledge: ClassVar = "gradient"

    def trick(self, model, x, y, eps, budget):
        dig_module(model).train()
        return x


class InPlaceX(_Base):
    """Overwrites its input x in place with other digits and returns it."""

    name = "hostile-inplace-x"
    knowledge: ClassVar = "gradient"

    def trick(self, model, x, y, eps, budget):
        model(x)
        x.copy_(x.roll(1, dims=0))
        return x


class InPlaceY(_Base):
    """Changes y in place (so any check against it would be fooled) and returns x untouched."""

    name = "hostile-inplace-y"
    knowledge: ClassVar = "gradient"

    def trick(self, model, x, y, eps, budget):
        model(x)
        y.copy_((y + 1) % 10)
        return x.clone()


class Malformed(_Base):
    """Returns one of several malformed values, chosen by the class attribute `shape`."""

    name = "hostile-malformed"
    knowledge: ClassVar = "gradient"
    shape: ClassVar[str] = "3-tuple"

    def trick(self, model, x, y, eps, budget):
        model(x)
        n = len(x)
        return {
            "3-tuple": (x, {}, {}),
            "meta": torch.empty_like(x, device="meta"),
            "sparse": x.to_sparse(),
            "list": x.tolist(),
            "0-d extra": (x, {"t": torch.tensor(1.0)}),
            "list extra": (x, {"t": [1.0] * n}),
            "nan extra": (x, {"t": torch.full((n,), float("nan"))}),
            "short extra": (x, {"t": torch.zeros(n - 1)}),
        }[Malformed.shape]


class KeepOracle(_Base):
    """Keeps the oracle it was given in a module-level dict, for a later cell to use."""

    name = "hostile-keep"
    knowledge: ClassVar = "gradient"
    kept: ClassVar[dict[str, Any]] = {}

    def trick(self, model, x, y, eps, budget):
        KeepOracle.kept["oracle"] = model
        model(x)
        return x


class StaleOracle(_Base):
    """Declares labels, but runs PGD steps through the gradient oracle another cell kept."""

    name = "hostile-stale"
    knowledge: ClassVar = "labels"

    def trick(self, model, x, y, eps, budget):
        stale = KeepOracle.kept["oracle"]
        xt = x.clone()
        for _ in range(20):
            xt.requires_grad_(True)
            loss = nn.functional.cross_entropy(stale(xt), y)
            (grad,) = torch.autograd.grad(loss, xt)
            xt = (x + (xt.detach() + 0.05 * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
        return xt


class Threads(_Base):
    """Queries sample 0 with one-row calls from 8 threads at once, past its budget, counting the
    answers it got and swallowing the refusals."""

    name = "hostile-threads"
    answers: ClassVar[list[int]] = []

    def trick(self, model, x, y, eps, budget):
        import threading

        got = [0]
        lock = threading.Lock()

        def hammer() -> None:
            for _ in range(budget):
                try:
                    model(x[:1], idx=torch.zeros(1, dtype=torch.int64))
                except Exception:
                    return
                with lock:
                    got[0] += 1

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        Threads.answers.append(got[0])
        return x


class Lingering(_Base):
    """Leaves a thread querying after `run` returned, and counts the answers it gets then."""

    name = "hostile-linger"
    answers_before: ClassVar[list[int]] = []
    answers_after: ClassVar[list[int]] = []
    errors: ClassVar[list[str]] = []
    thread: ClassVar[Any] = None

    def trick(self, model, x, y, eps, budget):
        import threading

        returned = threading.Event()
        started = threading.Event()

        def linger() -> None:
            while True:
                try:
                    model(x[:1], idx=torch.zeros(1, dtype=torch.int64))
                except Exception as exc:
                    Lingering.errors.append(str(exc))
                    return
                (Lingering.answers_after if returned.is_set() else Lingering.answers_before).append(
                    1
                )
                started.set()

        Lingering.thread = threading.Thread(target=linger, daemon=True)
        Lingering.thread.start()
        started.wait(10)
        returned.set()
        return x


class Cheat(_Base):
    """Declares labels, queries nothing, and returns adversarial examples another run saved
    (`--save-adv`): a success no query paid for."""

    name = "hostile-cheat"
    knowledge: ClassVar = "labels"
    sheet: ClassVar[Any] = None

    def trick(self, model, x, y, eps, budget):
        return Cheat.sheet[: len(x)].clone()
