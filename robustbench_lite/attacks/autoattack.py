"""`autoattack`, `autoattack-l2` and `autoattack-rand`: AutoAttack's chains (Croce & Hein 2020,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks") run inside the protocol, so one cell gives the number RobustBench's table reports,
verified, counted and flagged like any other.

The standard version runs APGD-CE, APGD-T (targeted DLR, 9 targets), FAB-T (9 targets) and Square
(5,000 queries), each only on the samples the previous ones left robust; the rand version, for
randomized defenses, runs APGD-CE and APGD-DLR (the runner's EOT averages every query). The
members are the registry's own plugins with AutoAttack's parameters; every query they make goes
through the runner's oracle and is charged, and the runner, not the chain, grades the result. A
gradient chain takes no `--budget`: Square's 5,000 queries are its own, charged and shown, not
capped. FAB may return points beyond eps: they are projected onto the ball and kept only if they
still fool (AutoAttack drops them). On a stochastic model a sample leaves the chain only when
`CONFIRM` fresh answers in a row are fooled (AutoAttack takes one): a lucky draw must not spare
it the later members; the runner's majority vote grades what the chain returns."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from robustbench_lite.api import (
    NORM_BALLS,
    TM,
    Adversarial,
    Attack,
    QueryModel,
    at_least,
    attack_class,
    hp,
    one_of,
    plugin,
    preset,
)

VERSIONS = ("standard", "rand")
CONFIRM = 3  # fooled answers in a row that end a sample's chain on a stochastic model


class _Still:
    """The oracle seen by one member of the chain: only the samples still robust (`keep`), with
    their rows charged to the right sample of the whole batch."""

    def __init__(self, model: QueryModel, keep: torch.Tensor) -> None:
        self._model, self._keep = model, keep
        self.num_classes = model.num_classes
        self.knowledge = model.knowledge
        self.stochastic = getattr(model, "stochastic", False)
        self.threat_model = getattr(model, "threat_model", None)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        local = torch.arange(len(self._keep), device=x.device) if idx is None else idx
        rows = torch.as_tensor(local, dtype=torch.int64, device="cpu")  # checked where counts live
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= len(self._keep)):
            raise ValueError(f"idx out of range 0..{len(self._keep) - 1} for this member's samples")
        return self._model(x, idx=self._keep.cpu()[rows])


@plugin
class AutoAttack(Attack):
    """AutoAttack's standard chain, each member on what the previous left robust."""

    name = "autoattack"
    in_all = False  # a chain of attacks the grid runs separately: asked for by name
    profiles: ClassVar = {
        # A smoke-sized chain: contract tests run it over the registry, on every shape.
        "quick": {"steps": 5, "n_target_classes": 1, "square_queries": 100},
    }

    norm: str = hp(TM.LINF, one_of(NORM_BALLS))
    version: str = hp("standard", one_of(VERSIONS))
    steps: int = hp(100, at_least(1), doc="iterations of APGD and FAB (AutoAttack: 100)")
    n_target_classes: int = hp(9, at_least(1), doc="targets of APGD-T and FAB-T (AutoAttack: 9)")
    square_queries: int = hp(5_000, at_least(1), doc="Square's queries per sample (5,000)")

    def validate(self) -> None:
        self.threat_model = TM(self.norm)

    def unsupported(self, shape: tuple[int, int, int], num_classes: int) -> str | None:
        """What a member cannot serve (APGD-T's targeted DLR needs 4 classes, APGD-DLR 3)."""
        for attack, _ in self.members():
            reason = attack.unsupported(shape, num_classes)
            if reason:
                return f"its member {attack.name}: {reason}"
        return None

    def members(self) -> list[tuple[Attack, int | None]]:
        """(attack, its per-sample query budget) in AutoAttack's order."""

        def make(name: str, **kw: Any) -> Attack:
            return attack_class(name)(norm=self.norm, **kw)  # type: ignore[call-arg]

        if self.version == "rand":
            return [
                (make("apgd", loss="ce", steps=self.steps), None),
                (make("apgd", loss="dlr", steps=self.steps), None),
            ]
        targets = {"n_target_classes": self.n_target_classes}
        return [
            (make("apgd", loss="ce", steps=self.steps), None),
            (make("apgd", loss="dlr-targeted", steps=self.steps, **targets), None),
            (make("fab", steps=self.steps, **targets), None),
            (make("square"), self.square_queries),
        ]

    def member_configs(self) -> list[dict[str, Any]]:
        return [{**attack.keyed(), "queries": queries} for attack, queries in self.members()]

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
        x_adv = x.clone()
        robust = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for attack, queries in self.members():
            keep = torch.nonzero(robust).squeeze(1)
            if len(keep) == 0:
                break
            still = _Still(model, keep)
            found = attack.run(
                still, x[keep], y[keep], eps=eps, budget=queries, generator=generator
            )
            candidate = ball.project(x[keep], found.x.clamp(0.0, 1.0), eps)  # FAB may overshoot
            answers = CONFIRM if getattr(model, "stochastic", False) else 1
            with torch.no_grad():
                fooled = torch.stack(
                    [model(candidate, idx=keep).argmax(dim=1) != y[keep] for _ in range(answers)]
                )
            x_adv[keep[fooled.any(0)]] = candidate[fooled.any(0)]  # the best it has, even unsure
            robust[keep[fooled.all(0)]] = False
        return Adversarial(x_adv)


AutoAttackL2 = preset(
    AutoAttack,
    "autoattack-l2",
    "AutoAttack's standard chain in the L2 ball (Croce & Hein 2020).",
    norm=TM.L2,
)
AutoAttackRand = preset(
    AutoAttack,
    "autoattack-rand",
    "AutoAttack's rand version (APGD-CE, APGD-DLR) for randomized defenses; the runner's EOT "
    "averages every query (Croce & Hein 2020).",
    version="rand",
)
