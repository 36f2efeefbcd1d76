"""Noise samplers for query-based attacks: plain pixel noise, or noise confined to the low
frequencies of the orthonormal 2-D DCT (Guo, Frank, Weinberger 2020, "Low frequency adversarial
perturbation"). Attacks take a sampler, so the low-frequency variants reuse their code as is."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Protocol

import torch


class Sampler(Protocol):
    """Draws standard Gaussian noise of `shape` (N, C, H, W) in some subspace of the pixels."""

    def __call__(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor: ...


def gaussian(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """i.i.d. standard Gaussian noise in every pixel (the plain attacks' sampler)."""
    return torch.randn(shape, generator=generator, device=generator.device)


@lru_cache(maxsize=16)
def dct_matrix(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The orthonormal DCT-II matrix D (n x n) on `device`: X = D @ x, and x = D.T @ X."""
    k = torch.arange(n, dtype=torch.float64, device=device)[:, None]
    i = torch.arange(n, dtype=torch.float64, device=device)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float()


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dimensions."""
    return dct_matrix(x.shape[-2], x.device) @ x @ dct_matrix(x.shape[-1], x.device).T


def idct2(coeffs: torch.Tensor) -> torch.Tensor:
    """Inverse of `dct2` (the transpose, since the transform is orthonormal)."""
    d = coeffs.device
    return dct_matrix(coeffs.shape[-2], d).T @ coeffs @ dct_matrix(coeffs.shape[-1], d)


def check_ratio(ratio: float) -> None:
    """A frequency ratio must lie in (0, 1]."""
    if not (isinstance(ratio, int | float) and 0 < ratio <= 1):
        raise ValueError(f"ratio must lie in (0, 1], got {ratio!r}")


class LowFrequency:
    """Gaussian noise in the top-left (r*H) x (r*W) block of DCT coefficients, back in pixels.

    The transform is orthonormal, so this is a standard Gaussian in the low-frequency subspace
    (and r = 1 gives exactly the distribution of `gaussian`).
    """

    def __init__(self, ratio: float) -> None:
        check_ratio(ratio)
        self.ratio = ratio

    def block(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of DCT coefficients that carry noise (at least one each)."""
        return max(1, round(self.ratio * height)), max(1, round(self.ratio * width))

    def __call__(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        *lead, height, width = shape
        rows, cols = self.block(height, width)
        block = torch.randn((*lead, rows, cols), generator=generator, device=generator.device)
        # idct2 of the zero-padded block, without multiplying the zeros
        d = block.device
        return dct_matrix(height, d)[:rows].T @ block @ dct_matrix(width, d)[:cols]
