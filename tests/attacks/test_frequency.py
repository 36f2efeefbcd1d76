"""The orthonormal DCT and the low-frequency noise sampler."""

from __future__ import annotations

import math

import pytest
import scipy.fft
import torch

from robustbench_lite import data
from robustbench_lite.attacks._common.frequency import (
    LowFrequency,
    dct2,
    dct_matrix,
    gaussian,
    idct2,
)


def test_dct_is_orthonormal_and_matches_scipy(mnist_test: data.Dataset) -> None:
    d = dct_matrix(28)
    assert torch.allclose(d @ d.T, torch.eye(28), atol=1e-5)
    x = mnist_test.x[:8]
    coeffs = dct2(x)
    reference = scipy.fft.dctn(x.double().numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert torch.allclose(coeffs.double(), torch.from_numpy(reference), atol=1e-4)
    assert torch.allclose(idct2(coeffs), x, atol=1e-5)
    # Orthonormal: energy is preserved.
    assert torch.allclose(coeffs.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-5)


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_low_frequency_noise_lives_in_the_low_block(ratio: float) -> None:
    sampler = LowFrequency(ratio)
    noise = sampler((500, 1, 28, 28), torch.Generator().manual_seed(0))
    rows, cols = sampler.block(28, 28)
    assert (rows, cols) == (round(28 * ratio), round(28 * ratio))
    coeffs = dct2(noise)
    inside = coeffs[..., :rows, :cols]
    outside = coeffs.clone()
    outside[..., :rows, :cols] = 0
    assert float(outside.abs().max()) < 1e-4
    # A standard Gaussian in the block: unit variance, zero mean.
    assert float(inside.var()) == pytest.approx(1.0, abs=0.05)
    assert abs(float(inside.mean())) < 0.05

    # It is smooth: neighbouring pixels correlate, unlike pixel noise.
    def neighbour_corr(z: torch.Tensor) -> float:
        a, b = z[..., :, :-1].flatten(), z[..., :, 1:].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    assert neighbour_corr(noise) > 0.5
    assert abs(neighbour_corr(gaussian((500, 1, 28, 28), torch.Generator()))) < 0.05


def test_full_ratio_is_pixel_noise_in_distribution() -> None:
    noise = LowFrequency(1.0)((2000, 1, 28, 28), torch.Generator().manual_seed(1))
    assert float(noise.var()) == pytest.approx(1.0, abs=0.02)
    assert float(noise.flatten(1).norm(dim=1).mean()) == pytest.approx(math.sqrt(784), rel=0.02)


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5, float("nan")])
def test_ratio_outside_unit_interval_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="ratio must lie in"):
        LowFrequency(ratio)
