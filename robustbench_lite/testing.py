"""The plugin contract as a tester, shipped with the package (as torchmetrics ships its tester):
a third-party attack, defense or model runs in its own CI exactly the contract the suite's own
plugins meet (the suite's contract tests call these functions over its whole registry).

    from robustbench_lite.testing import check_attack, check_defense, check_model

    def test_my_attack():
        check_attack(MyAttack)          # on the suite's reference model and digits

Each check raises AssertionError saying what failed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from robustbench_lite.names import NAME
from robustbench_lite.protocol.bpda import route_through_approximation
from robustbench_lite.protocol.contracts import (
    Adversarial,
    Attack,
    DataSource,
    Defense,
    Knowledge,
)
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.protocol.oracle import QueryCounter
from robustbench_lite.protocol.recipe import recipe_of
from robustbench_lite.protocol.registry import (
    DEFAULT_DATASET,
    defense_class,
    instantiate,
    load_dataset,
)
from robustbench_lite.protocol.threat_models import THREAT_MODELS, TM
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.running.own.data import resolve_source
from robustbench_lite.running.own.model import UserModel
from robustbench_lite.running.own.model_files import from_factory
from robustbench_lite.store.models import ModelCache

PROFILES = ("quick", "standard", "paper")


def reference_batch(
    cache: ModelCache | None = None, n: int = 32
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The undefended quick model (trained in seconds, cached) and up to n test digits of
    mnist-5k it classifies correctly: what an attack is checked against."""
    runner = Runner(profile="quick", quiet=True, cache=cache or ModelCache())
    model = runner.model(instantiate(defense_class("none"), "quick"))
    test = load_dataset(DEFAULT_DATASET, "test")
    x, y = test.x[: 2 * n], test.y[: 2 * n]
    keep = predict(model, x) == y
    return model, x[keep][:n], y[keep][:n]


def check_attack_declares_itself(cls: type[Attack], profile: str = "quick") -> Attack:
    """Its name is an identifier, its threat model and knowledge are known ones, and every
    hyper-parameter is keyword-only with a default and recorded as it is used."""
    attack = instantiate(cls, profile)
    assert NAME.fullmatch(attack.name), f"{attack.name!r} is not an identifier"
    assert attack.threat_model in THREAT_MODELS, f"unknown threat model {attack.threat_model!r}"
    assert attack.knowledge in set(Knowledge), f"unknown knowledge {attack.knowledge!r}"
    config = attack.config()
    assert set(config) == set(cls.hyperparameters()), "config() must record every hyper-parameter"
    json.dumps(config)
    for overrides in cls.profiles.values():
        assert set(overrides) <= set(config), f"a profile sets unknown keys {sorted(overrides)}"
    assert all(isinstance(v, int) and v > 0 for v in cls.unit_samples.values())
    return attack


def check_attack(
    cls: type[Attack],
    model: nn.Module | None = None,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    profile: str = "quick",
    budget: int = 500,
    min_success: float | None = None,
    dataset: str | DataSource = DEFAULT_DATASET,
) -> None:
    """The attack contract on clean-correct samples of `model` (default: `reference_batch`):
    it declares itself, returns a valid point of the input's shape and dtype inside [0, 1] and
    (unless minimal) inside the threat model, queries every sample, keeps to its budget, and
    fools at least `min_success` of an undefended model (default 0.5; 0.25 for score-based L2
    search, the weakest: square-l2 fools 10/32 in 500 queries where PGD-L2 fools 20/32; 0 to
    check only the contract). `dataset` sets the budgets and the threat model's range."""
    attack = check_attack_declares_itself(cls, profile)
    if model is None or x is None or y is None:
        model, x, y = reference_batch()
    source = resolve_source(dataset)
    tm = source.threat_model(attack.threat_model)
    eps = source.default_eps(attack.threat_model)
    limit = None if attack.knowledge == Knowledge.GRADIENT else budget
    with torch.no_grad():
        classes = int(model(x[:1]).shape[1])
    if attack.surrogate_defense() is not None:  # a transfer attack crafts on a copy of the
        # model itself here (the best surrogate there is), so the contract checks its mechanics
        target = model
        attack.use_surrogate(recipe_of("surrogate", lambda: copy.deepcopy(target), model, x.device), None)  # fmt: skip
    counter = QueryCounter(
        model,
        len(x),
        num_classes=classes,
        knowledge=attack.knowledge,
        budget=limit,
        threat_model=tm,
    )
    output = attack.run(counter.view(), x, y, eps=eps, budget=limit, generator=torch.Generator())
    counter.close()
    counter.check()
    assert isinstance(output, Adversarial), "run must return Adversarial(x_adv, extras)"
    x_adv, extras = output.x, dict(output.extras)
    assert x_adv.shape == x.shape, f"returned {tuple(x_adv.shape)} for {tuple(x.shape)}"
    assert x_adv.dtype == x.dtype, f"returned {x_adv.dtype} for {x.dtype}"
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0, "returned points outside [0,1]"
    if not attack.minimal:
        assert bool((tm.distance(x, x_adv, extras) <= eps + 1e-5).all()), "outside the threat model"
    assert bool((counter.counts > 0).all()), "every attacked sample must have been queried"
    if limit is not None:
        assert int(counter.counts.max()) <= limit, "over its query budget"
    judged = x_adv if attack.minimal else tm.project(x, x_adv, eps, extras)
    fooled = float((predict(model, judged) != y).double().mean())
    if min_success is None:
        weak = attack.knowledge == Knowledge.SCORES and attack.threat_model == TM.L2
        min_success = 0.25 if weak else 0.5
    assert fooled >= min_success, f"fooled {fooled:.2f} of an undefended model (< {min_success})"


def check_defense_declares_itself(cls: type[Defense]) -> None:
    """In every profile: an identifier for a name, boolean traits, at least one prediction draw,
    a JSON config of exactly its hyper-parameters, profile overrides and sample caps that make
    sense, and `certify` implemented exactly when it declares `certifies`."""
    for profile in PROFILES:
        defense = instantiate(cls, profile)
        assert NAME.fullmatch(defense.name), f"{defense.name!r} is not an identifier"
        assert isinstance(defense.randomized, bool) and isinstance(defense.certifies, bool)
        assert defense.prediction_draws() >= 1
        config = defense.config()
        assert set(config) == set(cls.hyperparameters())
        json.dumps(config)
        for overrides in cls.profiles.values():
            assert set(overrides) <= set(config), f"a profile sets unknown keys {sorted(overrides)}"
        assert all(isinstance(v, int) and v > 0 for v in cls.max_eval_samples.values())
        assert all(isinstance(v, int) and v > 0 for v in cls.unit_samples.values())
    assert (cls.certify is not Defense.certify) == cls.certifies, "certify() iff certifies"


def check_defense(
    cls: type[Defense],
    *,
    cache: ModelCache | None = None,
    min_accuracy: float = 0.6,
    dataset: str | DataSource = DEFAULT_DATASET,
) -> nn.Module | None:
    """The defense contract: it declares itself, trains in its quick profile on `dataset` to at
    least `min_accuracy` on its first test images, maps (N, C, H, W) to finite logits with input
    gradients (through its approximation, for a declared front step), and a certificate (if it certifies) is a bool per sample that at eps ~0
    certifies exactly the correctly classified samples. Returns the trained quick model (None
    where the defense declares it cannot serve the data: `Plugin.unsupported`)."""
    check_defense_declares_itself(cls)
    defense = instantiate(cls, "quick")
    source = resolve_source(dataset)
    if defense.unsupported(source.shape, source.num_classes):
        return None
    runner = Runner(dataset=source, profile="quick", quiet=True, cache=cache or ModelCache())
    model = runner.model(defense)
    test = source.load("test")
    x, y = test.x[:40], test.y[:40]
    accuracy = float((predict(model, x, defense.prediction_draws()) == y).double().mean())
    assert accuracy >= min_accuracy, f"{cls.name} classifies only {accuracy:.2f} (quick)"
    if defense.front_step() is not None:  # a declared step: gradients through its BPDA
        model = copy.deepcopy(model)
        named = route_through_approximation(model, cls.name)
        assert named == defense.front_step(), f"{cls.name} declares {defense.front_step()!r}"
    xg = x[:4].clone().requires_grad_(True)
    logits = model(xg)
    assert logits.shape == (4, source.num_classes) and bool(torch.isfinite(logits).all())
    (grad,) = torch.autograd.grad(logits.logsumexp(1).sum() - logits[:, 0].sum(), xg)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0, "no input gradient"
    if defense.certifies:
        torch.manual_seed(0)
        untrained = defense.build(source.num_classes, source.shape).eval()
        flags = defense.certify(untrained, x[:4], y[:4], 0.3)
        assert flags.dtype == torch.bool and flags.shape == (4,)
        with torch.no_grad():
            correct = untrained(x[:4]).argmax(1) == y[:4]
        exact = defense.certify(untrained, x[:4], y[:4], 1e-9)
        assert exact.tolist() == correct.tolist(), "at eps ~0 a certificate is correctness"
    return model


def check_model(
    factory: str | Callable[[], nn.Module],
    *,
    weights: Path | None = None,
    randomized: bool = False,
    dataset: str | DataSource = DEFAULT_DATASET,
) -> UserModel:
    """A user's model (`package.module:function`, `path/file.py:function`, or a callable) passes
    the checks `rb run --model` makes before any attack (logits of the right shape, finite,
    repeatable unless randomized, clean accuracy above chance), and two fresh instances agree
    on clean inputs. Returns the model as the runner evaluates it."""
    if callable(factory):
        built = factory()
        user = UserModel(built, name="model", randomized=randomized, make=factory)
    else:
        user = from_factory(factory, name="model", weights=weights, randomized=randomized)
    user.run_checks(dataset)
    if not randomized:
        source = resolve_source(dataset)
        test = source.load("test")
        a = user.build(source.num_classes, source.shape)
        b = user.build(source.num_classes, source.shape)
        with torch.no_grad():
            same = torch.equal(a(test.x[:64]), b(test.x[:64]))
        assert same, "two fresh instances of the model answer differently"
    return user
