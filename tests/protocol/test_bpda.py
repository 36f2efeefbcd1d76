"""BPDA (Athalye et al. 2018): a declared front step answers with its true forward pass, and
white-box attacks differentiate its approximation; a zero-gradient front layer without the
declaration is flagged, with it broken."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robustbench_lite import evaluate
from robustbench_lite.attacks.autoattack import AutoAttack
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.bpda import (
    NO_BPDA,
    Fronted,
    FrontStep,
    front_steps,
    route_through_approximation,
)
from robustbench_lite.protocol.contracts import Knowledge
from robustbench_lite.protocol.registry import (
    attack_class,
    attack_names,
    instantiate,
)
from robustbench_lite.report.flags import evidence
from robustbench_lite.store import cell_record
from robustbench_lite.testing import check_attack
from tests._helpers.fronts import fronted, quantise
from tests._helpers.records import fake_cell

#: Every white-box attack but AutoAttack's chains (made of the attacks tested here).
WHITE_BOX = [
    n
    for n in attack_names()
    if instantiate(attack_class(n), "quick").knowledge == Knowledge.GRADIENT
    and not issubclass(attack_class(n), AutoAttack)
]


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(xg), y), xg)
    return grad


def test_forward_is_the_true_step_and_backward_the_approximation(baseline, clean_batch) -> None:
    x, y = clean_batch
    plain, through = fronted(baseline, False), fronted(baseline, True)
    xg = x.clone().requires_grad_(True)
    assert torch.equal(through(xg), baseline(quantise(x)))  # bit for bit, in BPDA mode too
    assert torch.equal(plain(x), baseline(quantise(x)))
    assert float(_input_grad(plain, x, y).abs().max()) == 0.0  # rounding: no gradient
    bpda = _input_grad(through, x, y)
    xq = quantise(x).requires_grad_(True)
    (reference,) = torch.autograd.grad(nn.functional.cross_entropy(baseline(xq), y), xq)
    assert torch.allclose(bpda, reference)  # the identity's backward: the classifier's gradient
    doubled = Fronted(FrontStep(quantise, lambda t: 2 * t, name="twice"), baseline).eval()
    route_through_approximation(doubled, "test")
    assert torch.allclose(_input_grad(doubled, x, y), 2 * reference)


def test_a_model_without_front_steps_cannot_be_routed(baseline) -> None:
    with pytest.raises(Exception, match="holds no FrontStep"):
        route_through_approximation(copy.deepcopy(baseline), "none")


def test_the_identity_cannot_stand_in_for_a_step_that_changes_shape(clean_batch) -> None:
    step = FrontStep(lambda t: t.repeat(1, 2, 1, 1), name="identity")
    route_through_approximation(step, "test")
    with pytest.raises(Exception, match="declare an approximation"):
        step(clean_batch[0].clone().requires_grad_(True))


@pytest.mark.parametrize("name", WHITE_BOX)
def test_every_white_box_attack_runs_through_bpda(name: str, baseline, clean_batch) -> None:
    """On a zero-gradient front step of identity value, BPDA gives the attacks the classifier's
    gradient: the contract holds with its usual success on the undefended model (other shapes:
    tests/attacks/test_shapes.py runs every white-box attack through BPDA too)."""
    x, y = clean_batch
    check_attack(attack_class(name), fronted(baseline, True), x[:12], y[:12])


class ZeroGradFront(nn.Module):
    """A hostile model: a front layer whose backward returns zeros (8-bit rounding), undeclared."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(quantise(x))


def test_zero_gradient_front_is_flagged_undeclared_and_broken_declared(baseline, tmp_path) -> None:
    """Undeclared: `zero-grad`, and PGD finds nothing. Declared with `preprocess=`: PGD through
    BPDA breaks it, the plain `@no-bpda` cell stands beside it, and the row says
    `shattered-gradients`."""
    hidden = ZeroGradFront(copy.deepcopy(baseline)).eval()
    kw: dict[str, Any] = dict(attacks="pgd", profile="quick", n=60, results=tmp_path)
    masked = evaluate(hidden, name="hidden", **kw)
    assert "zero-grad" in masked.flags
    plain_model = copy.deepcopy(baseline).eval()
    declared = evaluate(plain_model, name="declared", preprocess=quantise, **kw)
    row = declared.leaderboard.set_index("defense").loc["declared"]
    assert row["pgd"] < 0.3 < row[f"pgd{NO_BPDA}"], (row["pgd"], row[f"pgd{NO_BPDA}"])
    assert "zero-grad" not in declared.flags
    assert "shattered-gradients" in declared.flags
    records = {
        r.cell: r
        for r in cell_record.load(tmp_path / "mnist-5k" / "quick")
        if r.defense == "declared"
    }
    assert records["pgd"].bpda == "identity" and records[f"pgd{NO_BPDA}"].bpda == "none"


def _pair(bpda_robust: list[bool], plain_robust: list[bool]) -> list[Any]:
    through = fake_cell({"robust": bpda_robust}, cell="pgd", attack="pgd", bpda="identity")
    plain = fake_cell({"robust": plain_robust}, cell="pgd@no-bpda", attack="pgd", bpda="none")
    return [through, plain]


def test_shattered_gradients_is_a_sign_test_of_bpda_against_plain() -> None:
    """Raised when BPDA breaks significantly more digits than the plain cells, `undecided` on
    too few, silent where they agree or the plain cells win; never a sweep."""
    codes = lambda cells: {code for code, _ in evidence(cells, None)}  # noqa: E731
    assert "shattered-gradients" in codes(_pair([False] * 20 + [True] * 20, [True] * 40))
    assert "shattered-gradients" not in codes(_pair([True] * 40, [True] * 40))
    assert "shattered-gradients" not in codes(_pair([True] * 40, [False] * 20 + [True] * 20))
    few = codes(_pair([False] * 3 + [True] * 7, [True] * 10))
    assert "shattered-gradients" not in few and "undecided" in few
    assert "eps-not-monotone" not in codes(_pair([True] * 40, [False] * 40))


def test_the_command_line_declares_a_step_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--preprocess FILE:FN [--bpda FILE:FN]`: the names key the model's cells (as given)."""
    from robustbench_lite.running.own.model_files import from_factory

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    factory = "robustbench_lite.defenses:mnist_cnn"
    step = "tests/_helpers/fronts.py:quantise"
    user = from_factory(factory, name="m", dataset="mnist-5k", preprocess=step)
    assert user.front_step() == "identity" and user.config()["preprocess"] == step
    both = from_factory(factory, name="m", dataset="mnist-5k", preprocess=step, bpda=step)
    assert both.front_step() == step and both.config()["bpda"] == step
    assert "preprocess" not in from_factory(factory, name="m", dataset="mnist-5k").config()
    assert len(front_steps(both.build(10))) == 1


def test_each_instance_has_a_switch_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Routing one instance of a `--model` through BPDA leaves every other instance plain (the
    attack's copy of a plain cell, the grader's): a shared step would make @no-bpda a BPDA cell."""
    from robustbench_lite.running.own.model_files import from_factory

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    user = from_factory(
        "robustbench_lite.defenses:mnist_cnn",
        name="m",
        dataset="mnist-5k",
        preprocess="tests/_helpers/fronts.py:quantise",
    )
    routed, other = user.build(10), user.build(10)
    route_through_approximation(routed, "m")
    assert [s.bpda for s in front_steps(other)] == [False]
    x = torch.rand(2, 1, 28, 28)
    assert float(_input_grad(other, x, torch.tensor([0, 1])).abs().max()) == 0.0
    assert float(_input_grad(routed, x, torch.tensor([0, 1])).abs().max()) > 0.0


def test_an_attack_that_flips_the_switch_is_refused() -> None:
    """The attacked instance's fingerprint covers its front steps' BPDA switches."""
    from robustbench_lite.protocol.integrity import fingerprint

    model = fronted(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), bpda=False)
    before = fingerprint(model)
    front_steps(model)[0].bpda = True
    assert fingerprint(model) != before


def test_an_edited_step_keys_other_cells() -> None:
    from robustbench_lite.running.own.model import code_sha256

    def one(x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    def other(x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 3) / 3

    assert code_sha256(one) != code_sha256(other)
    assert code_sha256(one) == code_sha256(one) != code_sha256(one, other)


def half(x: torch.Tensor) -> torch.Tensor:
    return x[:, :, :14]


def test_an_approximation_of_another_shape_is_one_line_before_any_work(
    baseline, tmp_path: Path
) -> None:
    with pytest.raises(RBError, match=r"returns shape \(2, 1, 14, 28\) where the step returns"):
        evaluate(
            copy.deepcopy(baseline),
            name="m",
            attacks="pgd",
            profile="quick",
            n=10,
            results=tmp_path,
            preprocess=quantise,
            bpda=half,
        )
    assert not list(tmp_path.glob("**/*.json"))
