"""`autoattack`: AutoAttack's chain inside the protocol follows AutoAttack's order, attacks only
what is still robust, and charges every member's queries to the runner's counter."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from robustbench_lite.attacks.autoattack import AutoAttack
from robustbench_lite.protocol.contracts import Adversarial, Attack
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import attack_class, instantiate


def test_members_follow_autoattack() -> None:
    chain = instantiate(AutoAttack, "standard")
    members = [(a.name, a.config().get("loss"), q) for a, q in chain.members()]
    assert members == [
        ("apgd", "ce", None),
        ("apgd", "dlr-targeted", None),
        ("fab", None, None),
        ("square", None, 5_000),
    ]
    assert all(a.config()["steps"] == 100 for a, _ in chain.members()[:3])
    rand = instantiate(attack_class("autoattack-rand"), "standard").members()
    assert [(a.name, a.config()["loss"]) for a, _ in rand] == [("apgd", "ce"), ("apgd", "dlr")]
    assert instantiate(attack_class("autoattack-l2"), "quick").threat_model == "l2"


class _Given(Attack):
    """Returns precomputed points (a stand-in member)."""

    name = "given"

    def __init__(self, points: torch.Tensor) -> None:
        self.points = points

    def run(self, model: Any, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> Adversarial:
        return Adversarial(self.points)


class _Recorder(Attack):
    """Queries every sample it gets once and returns it unchanged."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen = 0

    def run(self, model: Any, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> Adversarial:
        self.seen = len(x)
        model(x)
        return Adversarial(x)


def test_each_member_runs_only_on_what_the_previous_left_robust(
    baseline, clean_batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = clean_batch
    pgd = instantiate(attack_class("pgd"), "quick")
    counter = QueryCounter(baseline, len(x), num_classes=10)
    adv = pgd.run(counter.view(), x, y, eps=0.3, budget=None, generator=torch.Generator()).x
    with torch.no_grad():
        assert bool((baseline(adv).argmax(1) != y).all())  # every one breaks: a clean split
    even = torch.arange(len(x)) % 2 == 0
    first = _Given(torch.where(even.view(-1, 1, 1, 1), adv, x))
    second = _Recorder()
    monkeypatch.setattr(AutoAttack, "members", lambda self: [(first, None), (second, None)])
    counter = QueryCounter(baseline, len(x), num_classes=10)
    chain = instantiate(AutoAttack, "quick")
    out = chain.run(counter.view(), x, y, eps=0.3, budget=None, generator=torch.Generator())
    counter.close()
    assert second.seen == int((~even).sum())  # only the odd samples were left to attack
    # Each even sample: one row (the chain's check after the first member); each odd one: that
    # check, the recorder's query and the check after it, charged to the right sample.
    assert counter.counts.tolist() == [1 if e else 3 for e in even.tolist()]
    assert torch.equal(out.x[even], adv[even]) and torch.equal(out.x[~even], x[~even])


class _Flaky:
    """A stochastic oracle whose first answer is always fooled and every later one correct: a
    lucky draw, as a randomized defense gives one."""

    num_classes, stochastic, knowledge, threat_model = 10, True, "scores", None

    def __init__(self, y: torch.Tensor) -> None:
        self.y, self.calls = y, 0

    def __call__(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        rows = torch.arange(len(x)) if idx is None else torch.as_tensor(idx)
        label = self.y[rows] if self.calls > 1 else (self.y[rows] + 1) % 10
        return torch.nn.functional.one_hot(label, 10).float()


@pytest.mark.parametrize("stochastic", [True, False])
def test_one_lucky_answer_does_not_end_a_sample_on_a_stochastic_model(
    clean_batch, monkeypatch: pytest.MonkeyPatch, stochastic: bool
) -> None:
    x, y = clean_batch
    second = _Recorder()
    monkeypatch.setattr(AutoAttack, "members", lambda self: [(_Given(x), None), (second, None)])
    oracle = _Flaky(y)
    oracle.stochastic = stochastic
    chain = instantiate(AutoAttack, "quick")
    chain.run(oracle, x, y, eps=0.3, budget=None, generator=torch.Generator())
    # Stochastic: the later correct answers keep every sample for the next member; a
    # deterministic model's one fooled answer is final.
    assert second.seen == (len(x) if stochastic else 0)


def test_a_member_s_defaults_key_the_chain_s_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain's own settings do not name its members' other hyper-parameters: a member's
    changed default (FAB's `grad_floor`, added after the first chain cells) must make a new
    cell, not reuse one made with the old behaviour."""
    from robustbench_lite.attacks import autoattack
    from robustbench_lite.attacks.fab import FAB
    from robustbench_lite.protocol.contracts import preset
    from robustbench_lite.protocol.registry import defense_class
    from robustbench_lite.running.grid.runner import Runner
    from robustbench_lite.store.files import config_hash

    plan = Runner(profile="standard", quiet=True).plan
    none = instantiate(defense_class("none"), "standard")
    chain = instantiate(attack_class("autoattack"), "standard")
    before = plan.cell_config(none, chain, 100)
    assert [m["name"] for m in before["members"]] == ["apgd", "apgd", "fab", "square"]
    assert before["members"][2]["config"]["grad_floor"] == 1e-8
    other = preset(FAB, "fab", "FAB with another default", grad_floor=0.0)
    real = autoattack.attack_class
    monkeypatch.setattr(autoattack, "attack_class", lambda n: other if n == "fab" else real(n))
    after = plan.cell_config(none, chain, 100)
    assert chain.config() == before["attack"]["config"] == after["attack"]["config"]
    assert config_hash(after) != config_hash(before)
