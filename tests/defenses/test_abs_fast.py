"""ABS's fast decoder path (`abs_decoder.FastDecoder`) computes the same function as the grouped
transposed-convolution network it replaces in the latent search (Schott et al. 2019): equal images
and latent gradients on random latents, equal logits and labels on real digits, and the zoo's ABS
weights load into the model unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from robustbench_lite import data
from robustbench_lite.defenses.abs_decoder import FastDecoder
from robustbench_lite.defenses.abs_model import ABSModel, grouped_decoder
from robustbench_lite.protocol.registry import defense_class, instantiate
from robustbench_lite.running.grid.runner import Runner

ZOO = Path(__file__).resolve().parents[2] / "robustbench_lite" / "zoo"


def _with(model: ABSModel, *, fast: bool, steps: int) -> ABSModel:
    """A copy of `model` (same weights and cached candidates) decoding fast or by reference."""
    other = ABSModel(
        model.num_classes,
        latent_dim=model.latent_dim,
        candidates=len(model.candidates),
        steps=steps,
        lr=model.lr,
        radius=model.radius,
        beta=model.beta,
        logit_scale=model.logit_scale,
        logit_offset=model.logit_offset,
        binary=model.binary,
    )
    other.load_state_dict(model.state_dict())
    other.fast = fast
    return other.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def abs_quick(quick_runner: Runner) -> ABSModel:
    model = quick_runner.model(instantiate(defense_class("abs"), "quick"))
    assert isinstance(model, ABSModel)
    return model


def test_fast_decoder_equals_the_grouped_network_on_random_latents() -> None:
    torch.manual_seed(0)
    decoder = grouped_decoder(10, 8).requires_grad_(False)
    for layer in decoder:
        if isinstance(layer, torch.nn.ConvTranspose2d):
            assert layer.bias is not None
            torch.nn.init.normal_(layer.bias, std=0.1)  # nonzero biases, unlike a fresh layer
    for batch in (1, 7):
        z = (3 * torch.randn(batch, 10, 8)).requires_grad_(True)
        slow = decoder(z.reshape(batch, 80, 1, 1)).reshape(batch, 10, -1)
        fast = FastDecoder(decoder)(z)
        assert fast.shape == slow.shape
        assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-6)
        weights = torch.randn(slow.shape)
        (grad_slow,) = torch.autograd.grad((slow * weights).sum(), z)
        (grad_fast,) = torch.autograd.grad((fast * weights).sum(), z)
        assert torch.allclose(grad_fast, grad_slow, rtol=1e-4, atol=1e-5)


def test_fast_and_reference_decode_agree_on_the_trained_quick_model(abs_quick: ABSModel) -> None:
    z = 2 * torch.randn(16, 10, abs_quick.latent_dim, generator=torch.Generator().manual_seed(1))
    fast = _with(abs_quick, fast=True, steps=0).decode(z)
    slow = _with(abs_quick, fast=False, steps=0).decode(z)
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-6)


def test_fast_latent_search_matches_the_reference_on_100_digits(
    abs_quick: ABSModel, mnist_test: data.Dataset
) -> None:
    x = mnist_test.x[:100]
    with torch.no_grad():
        fast = _with(abs_quick, fast=True, steps=10)(x)
        slow = _with(abs_quick, fast=False, steps=10)(x)
    assert torch.allclose(fast, slow, rtol=1e-4, atol=1e-3)
    assert torch.equal(fast.argmax(1), slow.argmax(1))


def test_the_candidate_cache_is_decoded_by_the_reference(abs_quick: ABSModel) -> None:
    """`rebuild` keeps decoding through the grouped network: cached images are bit-identical to
    those the committed cells were computed with."""
    model = _with(abs_quick, fast=True, steps=0)
    before = model.decoded.clone()
    model.rebuild()
    assert torch.equal(model.decoded, before)


@pytest.mark.parametrize("path", sorted(ZOO.glob("abs*.safetensors")), ids=lambda p: p.name)
def test_zoo_weights_load_into_the_fast_model_unchanged(path: Path) -> None:
    with safe_open(str(path), "pt") as f:
        names = f.keys()
        shipped = {k: tuple(f.get_slice(k).get_shape()) for k in names}
    model = ABSModel(
        10,
        latent_dim=8,
        candidates=shipped["candidates"][0] if shipped["candidates"][0] <= 1000 else 1,
        steps=1,
        lr=0.05,
        radius=5.0,
        beta=1.0,
        logit_scale=440.0,
        logit_offset=0.0,
        binary=False,
    )
    state = model.state_dict()
    assert set(shipped) | set(model.derived_buffers) == set(state)
    for key, shape in shipped.items():
        if key != "candidates":
            assert tuple(state[key].shape) == shape, key
