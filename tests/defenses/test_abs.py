"""ABS (Schott et al. 2019): the batched inference is the paper's algorithm, deterministic, cached
with the model, and its binary variant passes gradients straight through the binarization."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from robustbench_lite import data
from robustbench_lite.defenses.abs import ABS
from robustbench_lite.defenses.abs_model import PIXELS, ABSModel
from robustbench_lite.defenses.abs_reference import reference_logits
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.running.grid.runner import Runner


@pytest.fixture(scope="session")
def abs_quick(quick_runner: Runner) -> ABSModel:
    """`abs` in the quick profile, trained (or loaded) through the runner's model cache, with the
    Adam refinement stage switched on (5 steps; the quick profile itself skips it for speed)."""
    model = quick_runner.model(instantiate(defense_class("abs"), "quick"))
    assert isinstance(model, ABSModel)
    return _copy(model, steps=5)


def _copy(model: ABSModel, **changes: object) -> ABSModel:
    """A model with the same weights and cached candidates, some inference settings changed."""
    settings = {
        "latent_dim": model.latent_dim,
        "candidates": len(model.candidates),
        "steps": model.steps,
        "lr": model.lr,
        "radius": model.radius,
        "beta": model.beta,
        "logit_scale": model.logit_scale,
        "logit_offset": model.logit_offset,
        "binary": model.binary,
        **changes,
    }
    other = ABSModel(model.num_classes, **settings)  # type: ignore[arg-type]
    other.load_state_dict(model.state_dict())
    return other.eval().requires_grad_(False)


def test_quick_abs_classifies(abs_quick: ABSModel, mnist_test: data.Dataset) -> None:
    x, y = mnist_test.x[:50], mnist_test.y[:50]
    with torch.no_grad():
        accuracy = float((abs_quick(x).argmax(1) == y).double().mean())
    assert accuracy >= 0.6


def test_best_candidate_stage_is_the_argmin_over_the_cache(
    abs_quick: ABSModel, mnist_test: data.Dataset
) -> None:
    x = torch.cat([mnist_test.x[:6], torch.rand(2, 1, 28, 28)]).reshape(-1, PIXELS)
    idx = abs_quick.best_candidates(x)
    decoded = abs_quick.decoded.double()
    prior = 0.5 * abs_quick.beta * abs_quick.candidates.double().square().sum(1)
    for i, xi in enumerate(x.double()):
        for c in range(abs_quick.num_classes):
            bounds = [
                float((decoded[c, k] - xi).square().sum() + prior[k]) for k in range(len(prior))
            ]
            assert int(idx[i, c]) == min(range(len(bounds)), key=bounds.__getitem__)


def test_batched_inference_equals_the_per_image_per_class_loop(
    abs_quick: ABSModel, mnist_test: data.Dataset
) -> None:
    x = mnist_test.x[:2]
    with torch.no_grad():
        batched = abs_quick(x)
    looped = reference_logits(abs_quick, x)
    assert torch.allclose(batched, looped, rtol=1e-4, atol=1e-3)


def test_inference_is_deterministic_given_the_seed(
    abs_quick: ABSModel, mnist_test: data.Dataset
) -> None:
    x = mnist_test.x[:8]
    first, second = _copy(abs_quick), _copy(abs_quick)
    first.set_candidates(torch.Generator().manual_seed(5))
    second.set_candidates(torch.Generator().manual_seed(5))
    assert torch.equal(first.decoded, second.decoded)
    assert torch.equal(first(x), second(x))
    assert torch.equal(first(x), first(x))
    second.set_candidates(torch.Generator().manual_seed(6))
    assert not torch.equal(first.candidates, second.candidates)


def test_training_is_deterministic_given_the_seed(mnist_test: data.Dataset) -> None:
    defense = ABS(epochs=1, candidates=16, steps=1)
    x, y = mnist_test.x[:200], mnist_test.y[:200]
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = defense.build(10)
        defense.fit(model, x, y, generator=torch.Generator().manual_seed(3), progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_logits_are_the_scaled_bound(abs_quick: ABSModel, mnist_test: data.Dataset) -> None:
    x = mnist_test.x[:4]
    shifted = _copy(abs_quick, logit_scale=2 * abs_quick.logit_scale, logit_offset=3.0)
    with torch.no_grad():
        assert torch.allclose(shifted(x), 2 * abs_quick(x) + 3.0, atol=1e-3)


def test_gradient_flows_through_the_decoder_at_the_optimized_latents(
    abs_quick: ABSModel, mnist_test: data.Dataset
) -> None:
    x = mnist_test.x[:4].clone().requires_grad_(True)
    logits = abs_quick(x)
    (grad,) = torch.autograd.grad(logits[:, 0].sum(), x)
    # d/dx of -scale * ||x - G(z*)||^2 / 784 with z* held fixed.
    flat = x.detach().reshape(4, PIXELS)
    z = abs_quick.infer(flat)
    with torch.no_grad():
        rec = abs_quick.decode(z)[:, 0]
    expected = -abs_quick.logit_scale * 2 * (flat - rec) / PIXELS
    assert torch.allclose(grad.reshape(4, PIXELS), expected, atol=1e-5)


def test_binary_abs_binarizes_with_a_straight_through_gradient(
    abs_quick: ABSModel, mnist_test: data.Dataset
) -> None:
    binary = _copy(abs_quick, binary=True)
    x = mnist_test.x[:4].clone().requires_grad_(True)
    x_bin = (x.detach() > 0.5).float().requires_grad_(True)
    logits = binary(x)
    (grad,) = torch.autograd.grad(logits[:, 1].sum(), x)
    plain = abs_quick(x_bin)
    (grad_plain,) = torch.autograd.grad(plain[:, 1].sum(), x_bin)
    # The binary model is the plain one at the binarized input, and its backward is the identity.
    assert torch.allclose(logits, plain, atol=1e-4)
    assert torch.allclose(grad, grad_plain, atol=1e-6)
    assert float(grad.abs().sum()) > 0
    # Changes that do not cross 0.5 change nothing.
    nudged = x.detach() + 0.1 * (x.detach() - 0.5).sign() * (x.detach() - 0.5).abs().lt(0.4)
    with torch.no_grad():
        assert torch.equal(binary(nudged), binary(x.detach()))


def test_decoded_candidates_are_saved_and_loaded_through_the_model_cache(
    no_zoo: None, quick_runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    defense = instantiate(defense_class("abs"), "quick")
    trained = quick_runner.model(defense)  # with no zoo: trained into the cache (or found there)
    assert isinstance(trained, ABSModel)
    key, _ = quick_runner.plan.model_key(defense)
    weights, _ = quick_runner.cache.paths("abs", key)
    with safe_open(str(weights), "pt") as f:
        keys = set(f.keys())
    assert {"candidates", "decoded"} <= keys
    assert not any(k.startswith("encoder") for k in keys), "encoders are discarded"

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached model should have been loaded, not retrained")

    monkeypatch.setattr(ABS, "fit", no_training)
    loaded = quick_runner.model(defense)
    assert isinstance(loaded, ABSModel)
    assert torch.equal(loaded.decoded, trained.decoded)
    assert torch.equal(loaded.candidates, trained.candidates)
    assert float(loaded.decoded.abs().sum()) > 0


def test_runner_evaluates_abs_on_its_capped_sample_count(
    abs_quick: ABSModel, quick_runner: Runner
) -> None:
    cap = ABS.max_eval_samples["quick"]
    runner = Runner(
        profile="quick",
        results_dir=quick_runner.results_dir / "abs-cap",
        quiet=True,
        cache=quick_runner.cache,
        settings={"pgd": {"steps": 1}},
    )
    board = runner.run(["pgd"], ["abs"])
    record = json.loads(runner.cell_path(ABS(), runner._attack("pgd")).read_text())
    assert record["n"] == cap == len(record["samples"]["robust"])
    assert record["max_eval_samples"] == cap
    assert board.set_index("defense").loc["abs", "n"] == cap
    # An explicit --n overrides the cap.
    explicit = Runner(
        profile="quick",
        n=cap + 2,
        results_dir=quick_runner.results_dir / "abs-n",
        quiet=True,
        cache=quick_runner.cache,
        settings={"pgd": {"steps": 1}},
    )
    assert explicit.run(["pgd"], ["abs"]).set_index("defense").loc["abs", "n"] == cap + 2


def test_bad_hyperparameters_are_rejected() -> None:
    for bad in ({"candidates": 0}, {"steps": -1}, {"radius": 0.0}, {"step_size": -1.0}):
        with pytest.raises(ValueError):
            ABS(**bad)  # type: ignore[arg-type]
