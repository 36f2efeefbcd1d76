"""The geometric transform core against exact references on real digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustbench_lite import data
from robustbench_lite.protocol.transforms import resize_pad, rotate_translate


@pytest.fixture(scope="module")
def digits(mnist_test: data.Dataset) -> torch.Tensor:
    return mnist_test.x[:16]


def shifted(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """torch.roll by (dx, dy) pixels with the wrapped-around rows and columns zeroed."""
    out = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if dx > 0:
        out[..., :, :dx] = 0
    elif dx < 0:
        out[..., :, dx:] = 0
    if dy > 0:
        out[..., :dy, :] = 0
    elif dy < 0:
        out[..., dy:, :] = 0
    return out


def test_identity_returns_the_input(digits: torch.Tensor) -> None:
    torch.testing.assert_close(rotate_translate(digits, 0.0, 0.0, 0.0), digits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("angle,k", [(90.0, 1), (-90.0, -1), (180.0, 2)])
def test_quarter_turns_match_rot90(digits: torch.Tensor, angle: float, k: int) -> None:
    expected = torch.rot90(digits, k, dims=(2, 3))  # k=1: counter-clockwise as displayed
    torch.testing.assert_close(
        rotate_translate(digits, angle, 0.0, 0.0), expected, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("dx,dy", [(2, 0), (0, -3), (3, 1), (-1, -2)])
def test_integer_translation_is_a_zero_filled_roll(digits: torch.Tensor, dx: int, dy: int) -> None:
    out = rotate_translate(digits, 0.0, float(dx), float(dy))
    torch.testing.assert_close(out, shifted(digits, dx, dy), atol=1e-5, rtol=0)


def test_translation_comes_before_rotation(digits: torch.Tensor) -> None:
    out = rotate_translate(digits, 90.0, 3.0, 0.0)
    expected = torch.rot90(shifted(digits, 3, 0), 1, dims=(2, 3))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_parameters_are_per_sample(digits: torch.Tensor) -> None:
    angle = torch.linspace(-30, 30, len(digits))
    dx = torch.linspace(-3, 3, len(digits))
    dy = torch.linspace(2, -2, len(digits))
    batch = rotate_translate(digits, angle, dx, dy)
    for i in (0, 5, 15):
        one = rotate_translate(digits[i : i + 1], float(angle[i]), float(dx[i]), float(dy[i]))
        torch.testing.assert_close(batch[i : i + 1], one, atol=1e-6, rtol=0)


def test_resize_pad_is_interpolate_then_pad(digits: torch.Tensor) -> None:
    x = F.pad(digits, (1, 1, 1, 1))  # a zero border, where resampling conventions agree
    gen = torch.Generator().manual_seed(0)
    size = torch.randint(30, 36, (len(x),), generator=gen)
    left = torch.randint(0, 100, (len(x),), generator=gen) % (37 - size)
    top = torch.randint(0, 100, (len(x),), generator=gen) % (37 - size)
    out = resize_pad(x, size, left, top, 36)
    for i in range(len(x)):
        s, a, b = int(size[i]), int(left[i]), int(top[i])
        ref = F.interpolate(x[i : i + 1], size=(s, s), mode="bilinear", align_corners=False)
        ref = F.pad(ref, (a, 36 - a - s, b, 36 - b - s))
        torch.testing.assert_close(out[i : i + 1], ref, atol=1e-5, rtol=0)


def test_resize_pad_to_own_size_is_identity(digits: torch.Tensor) -> None:
    torch.testing.assert_close(resize_pad(digits, 28, 0, 0, 28), digits, atol=1e-5, rtol=0)
