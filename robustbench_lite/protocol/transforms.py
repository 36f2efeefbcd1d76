"""Differentiable geometric transforms of image batches (affine_grid + grid_sample), per sample.

Shared by the `spatial` attack (Engstrom et al. 2019, rotation + translation) and the
`randomization` defense (Xie et al. 2018, resize + pad). Conventions: bilinear sampling with
`align_corners=False` (pixel centres, so integer translations and quarter turns are exact), zero
fill outside the image; angles in degrees, counter-clockwise as displayed; translations in pixels,
+dx moves content right and +dy moves it down.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine(
    x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Sample x (N,C,H,W) at `theta` (N,2,3), which maps output to input normalized coordinates.

    The output has spatial size `size` (default: the input's); points outside x read zero.
    """
    n, c = x.shape[:2]
    height, width = size or (x.shape[2], x.shape[3])
    grid = F.affine_grid(theta.to(x.dtype), [n, c, height, width], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _per_sample(value: torch.Tensor | float, n: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64, device=device)
    return t.expand(n) if t.dim() == 0 else t


def rotate_translate(
    x: torch.Tensor,
    angle: torch.Tensor | float,
    dx: torch.Tensor | float,
    dy: torch.Tensor | float,
) -> torch.Tensor:
    """Translate each image by (dx, dy) pixels, then rotate it by `angle` degrees about its centre.

    This composition (translation first) is the one foolbox's SpatialAttack renders, so a grid
    of parameters describes the same set of images in both. Parameters are scalars or (N,).
    """
    n, _, height, width = x.shape
    a = _per_sample(angle, n, x.device) * (math.pi / 180.0)
    tx = _per_sample(dx, n, x.device) * (2.0 / width)
    ty = _per_sample(dy, n, x.device) * (2.0 / height)
    cos, sin = torch.cos(a), torch.sin(a)
    # Content moves as p = R (q + t), R a counter-clockwise turn in (x right, y down)
    # coordinates; the grid needs the inverse, q = R^-1 p - t.
    theta = torch.stack(
        [torch.stack([cos, -sin, -tx], dim=1), torch.stack([sin, cos, -ty], dim=1)], dim=1
    )
    return affine(x, theta)


def resize_pad(
    x: torch.Tensor,
    size: torch.Tensor | int,
    left: torch.Tensor | int,
    top: torch.Tensor | int,
    canvas: int,
    *,
    width: torch.Tensor | int | None = None,
    canvas_width: int | None = None,
) -> torch.Tensor:
    """Bilinearly resize each image to `size` rows (and `width` columns; default: `size`) and
    place it with its top-left corner at (left, top) on a zero canvas of `canvas` rows and
    `canvas_width` columns (default: square), per-sample values.

    Equals F.interpolate(bilinear, align_corners=False) followed by F.pad, except that resampling
    reads zeros instead of repeating the border row (identical for images with zero borders).
    """
    n = len(x)
    ch, cw = canvas, canvas_width if canvas_width is not None else canvas
    sh = _per_sample(size, n, x.device)
    sw = sh if width is None else _per_sample(width, n, x.device)
    a = _per_sample(left, n, x.device)
    b = _per_sample(top, n, x.device)
    zero = torch.zeros(n, dtype=torch.float64, device=x.device)
    theta = torch.stack(
        [
            torch.stack([cw / sw, zero, (cw - 2 * a) / sw - 1], dim=1),
            torch.stack([zero, ch / sh, (ch - 2 * b) / sh - 1], dim=1),
        ],
        dim=1,
    )
    out = affine(x, theta, (ch, cw))
    # Exact zero padding: bilinear sampling bleeds half a pixel past the placed image.
    col = torch.arange(cw, dtype=torch.float64, device=x.device)
    row = torch.arange(ch, dtype=torch.float64, device=x.device)
    cols = (col[None, :] >= a[:, None]) & (col[None, :] < (a + sw)[:, None])
    rows = (row[None, :] >= b[:, None]) & (row[None, :] < (b + sh)[:, None])
    mask = (rows[:, :, None] & cols[:, None, :]).unsqueeze(1)
    return out * mask.to(out.dtype)
