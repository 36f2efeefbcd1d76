"""Interval bound propagation: sound bounds, sound certificates, and the `certified_acc` column."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from robustbench_lite.defenses._common import ibp
from robustbench_lite.defenses._common.models import ibp_cnn, mnist_cnn
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.registry import attack_class, defense_class, instantiate
from robustbench_lite.report.invariants import unsound_certificates
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.store import cell_record, certificates
from robustbench_lite.store.files import config_hash, seal
from tests._helpers.records import fake_cell

TOL = 1e-4


def _points_in_ball(
    x: torch.Tensor, eps: float, k: int, generator: torch.Generator
) -> torch.Tensor:
    """k points per sample in the eps-ball ∩ [0,1]: half at corners (where ReLUs flip most)."""
    shape = (k, *x.shape)
    uniform = torch.rand(shape, generator=generator) * 2 - 1
    corners = torch.randint(0, 2, shape, generator=generator).float() * 2 - 1
    delta = torch.where(torch.arange(k).view(-1, *[1] * x.dim()) % 2 == 0, corners, uniform)
    return (x[None] + eps * delta).clamp(0.0, 1.0).flatten(0, 1)


def _assert_sound(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, xs: torch.Tensor
) -> None:
    """Every point of `xs` (k per sample of x, sample-major within each draw) obeys the bounds."""
    k = len(xs) // len(x)
    lower, upper = (b.repeat(k, 1) for b in ibp.logit_bounds(model, x, eps))
    margins = ibp.margin_upper(model, x, y, eps).repeat(k, 1)
    with torch.no_grad():
        z = model(xs)
    yk = y.repeat(k)
    assert bool((z >= lower - TOL).all()) and bool((z <= upper + TOL).all())
    assert bool((z - z.gather(1, yk[:, None]) <= margins + TOL).all())


@pytest.mark.parametrize("arch", ["mnist_cnn", "small", "medium"])
def test_bounds_hold_on_random_models(arch: str, mnist_test) -> None:
    torch.manual_seed(1)
    model = mnist_cnn(width=8) if arch == "mnist_cnn" else ibp_cnn(arch)
    x, y = mnist_test.x[:8], mnist_test.y[:8]
    generator = torch.Generator().manual_seed(2)
    for eps in (0.01, 0.1, 0.3):
        _assert_sound(model, x, y, eps, _points_in_ball(x, eps, 64, generator))
    # At eps 0 the bounds collapse onto the logits; the margin form is no looser than u_j - l_y.
    lower, upper = ibp.logit_bounds(model, x, 0.0)
    assert torch.allclose(lower, model(x), atol=TOL) and torch.allclose(upper, model(x), atol=TOL)
    lower, upper = ibp.logit_bounds(model, x, 0.1)
    naive = upper - lower.gather(1, y[:, None])
    assert bool((ibp.margin_upper(model, x, y, 0.1) <= naive + TOL).all())


@pytest.fixture(scope="module")
def ibp_model(quick_runner: Runner) -> nn.Module:
    return quick_runner.model(instantiate(defense_class("ibp"), "quick"))


def test_bounds_hold_on_the_trained_model_even_at_pgd_points(
    ibp_model: nn.Module, mnist_test
) -> None:
    x, y = mnist_test.x[:32], mnist_test.y[:32]
    eps = 0.3
    generator = torch.Generator().manual_seed(3)
    _assert_sound(ibp_model, x, y, eps, _points_in_ball(x, eps, 32, generator))
    pgd = instantiate(attack_class("pgd"), "quick")
    counter = QueryCounter(ibp_model, len(x), num_classes=10)
    x_adv = pgd.run(counter.view(), x, y, eps=eps, budget=None, generator=generator).x
    _assert_sound(ibp_model, x, y, eps, x_adv)


def test_certificates_are_sound_and_below_pgd(quick_runner: Runner) -> None:
    """quick profile: certified <= PGD robust <= clean, and no certified sample was broken."""
    runner = Runner(
        profile="quick",
        results_dir=quick_runner.results_dir / "ibp",
        quiet=True,
        cache=quick_runner.cache,
    )
    board = runner.run(["pgd"], ["ibp"]).set_index("defense")
    cell_dir = runner.cell_dir
    cert = json.loads((cell_dir / "ibp" / "certified.json").read_text())
    pgd = json.loads((cell_dir / "ibp" / "pgd.json").read_text())
    flags = torch.tensor(cert["samples"]["certified"])
    robust = torch.tensor(pgd["samples"]["robust"])
    correct = torch.tensor(pgd["samples"]["clean_correct"])
    assert not bool((flags & ~robust).any()), "a certified sample was broken by PGD"
    assert unsound_certificates(cell_dir, cell_record.load(cell_dir)) == []
    assert cert["certified_acc"] <= pgd["robust_acc"] <= pgd["clean_acc"]
    assert cert["samples"]["clean_correct"] == correct.tolist()
    # A trained model, not a constant one, and a certificate that certifies something.
    assert pgd["clean_acc"] >= 0.7 and cert["certified_acc"] >= 0.2
    assert board.loc["ibp", "certified_acc"] == pytest.approx(cert["certified_acc"])


def test_violations_are_reported(tmp_path) -> None:
    """The soundness check flags a certified sample that an attack cell of that eps broke."""
    config = {"eps": 0.3}
    cert = {
        "defense": "d",
        "eps": 0.3,
        "config": config,
        "config_hash": config_hash(config),
        "n": 2,
        "clean_acc": 1.0,
        "certified_acc": 0.5,
        "samples": {"index": [0, 1], "clean_correct": [True, True], "certified": [True, False]},
    }
    (tmp_path / "d").mkdir()
    sealed = seal(cert)
    (tmp_path / "d" / "certified.json").write_text(json.dumps(sealed))
    cell = {"defense": "d", "cell": "pgd", "threat_model": "linf", "eps": 0.3}
    broken = fake_cell({"robust": [False, False]}, **cell)
    held = fake_cell({"robust": [True, False]}, **cell)
    assert unsound_certificates(tmp_path, [broken]) == ["d x pgd: certified but broken [0]"]
    assert unsound_certificates(tmp_path, [held]) == []
    assert unsound_certificates(tmp_path, [replace(broken, eps=0.1)]) == []
    sealed["certified"] = [True, True]  # a hand edit is refused, not believed
    (tmp_path / "d" / "certified.json").write_text(json.dumps(sealed))
    with pytest.raises(RBError, match="refusing certificate"):
        unsound_certificates(tmp_path, [broken])


def test_a_certificate_of_a_misclassified_sample_is_refused() -> None:
    config = {"schema": 1, "dataset": "d", "seed": 0, "threat_model": "linf", "eps": 0.3, "n": 2}
    config.update({"defense": {"name": "x", "config": {}}, "column": "certified_acc"})
    with pytest.raises(RBError, match="unsound"):
        certificates.record(config, "h", torch.tensor([True, False]), torch.tensor([False, True]))


def test_certificates_follow_the_linf_attacks_eps_only(quick_runner: Runner, tmp_path) -> None:
    """A spatial cell at eps 1 must not produce a Linf certificate at eps 1 (rb check reruns
    every cell at its own eps)."""
    runner = Runner(profile="quick", n=20, eps=1.0, results_dir=tmp_path, quiet=True,
                    cache=quick_runner.cache)  # fmt: skip
    runner.run(["spatial"], ["ibp"])
    assert [p.name for p in (tmp_path / "mnist-5k" / "quick" / "ibp").glob("certified*")] == [
        "certified.json"
    ]
    assert certificates.eps_values(0.3, [0.3, 0.1, 2.0]) == [0.3, 0.1]
