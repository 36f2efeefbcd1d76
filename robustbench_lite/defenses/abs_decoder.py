"""A faster evaluation of ABS's ten grouped decoders (Schott et al. 2019, "Towards the first
adversarially robust neural network model on MNIST"): the same function as the grouped
`nn.Sequential` of `abs_model.grouped_decoder`, computed from its weights.

Every ABS query reruns a latent search of 50 Adam steps through the ten decoders, so their forward
and backward passes are nearly all of ABS's time. On one CPU thread PyTorch's grouped transposed
convolutions run far below the core's matrix-product rate, the forward ones worst: their backward
(an ordinary strided convolution) runs several times faster than their forward. So:

- the first layer (1x1 -> 4x4) is one batched matrix product, all classes in one `torch.baddbmm`;
- each stride-2 transposed convolution is split by output phase (the parity of the output row
  and column): output pixel s*m + r receives only the kernel taps k = s*j + r, so each phase is an
  ordinary stride-1 grouped convolution of the input with those taps, flipped; four of them,
  interleaved, make the output. Its backward is the transposed convolution's own adjoint, one
  strided grouped convolution (`_TransposedConv`), not the autograd of the four phases (which
  would be four slow transposed convolutions again);
- the last layer (16 -> 1 channel per class, stride 1) stays PyTorch's transposed convolution,
  which beats the alternatives at one output channel per group.

Float32 throughout; the outputs equal the grouped decoder's within float rounding (sums taken in
another order). The decoder's parameters are read, never trained, through this path: gradients
flow to the latents only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 28 * 28


def phase_kernels(weight: torch.Tensor, stride: int, groups: int) -> list[torch.Tensor]:
    """The ordinary convolution kernels of a grouped transposed convolution's output phases.

    `weight` is a ConvTranspose2d weight (groups * in, out, k, k); phase (ry, rx) (row-major,
    stride**2 of them) gets the taps (s*j + ry, s*i + rx), flipped so that a correlation with the
    input padded by (taps - 1) gives that phase's outputs, as a Conv2d weight (groups * out, in,
    ty, tx)."""
    cin = weight.shape[0] // groups
    cout, kh, kw = weight.shape[1:]
    w = weight.reshape(groups, cin, cout, kh, kw).transpose(1, 2)  # (groups, out, in, k, k)
    kernels = []
    for ry in range(stride):
        for rx in range(stride):
            taps = w[..., ry::stride, rx::stride].flip(-1, -2)
            kernels.append(taps.reshape(groups * cout, cin, *taps.shape[-2:]).contiguous())
    return kernels


class _TransposedConv(torch.autograd.Function):
    """conv_transpose2d(x, weight, stride, groups) (no padding or output padding), computed as
    the ordinary convolutions of its output phases where `kernels` are given (else by PyTorch);
    backward: the adjoint, one strided grouped conv2d (PyTorch's own backward of the transposed
    convolution, which the autograd of the phases would not be)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        kernels: list[torch.Tensor] | None,
        stride: int,
        groups: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.stride, ctx.groups = stride, groups
        if kernels is None:
            return F.conv_transpose2d(x, weight, bias, stride=stride, groups=groups)
        n, _, h, w = x.shape
        kh, kw = weight.shape[2:]
        out = x.new_empty(n, weight.shape[1] * groups, stride * (h - 1) + kh, stride * (w - 1) + kw)
        for index, kernel in enumerate(kernels):
            ry, rx = divmod(index, stride)
            ty, tx = kernel.shape[2:]
            # out[s*m + r] = sum_j x[m - j] * weight[s*j + r]: a full correlation with the flipped
            # taps, m running over h + t - 1 positions (which is exactly the phase's size).
            phase = F.conv2d(x, kernel, bias, padding=(ty - 1, tx - 1), groups=groups)
            out[:, :, ry::stride, rx::stride] = phase
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        grad_x = F.conv2d(grad.contiguous(), weight, stride=ctx.stride, groups=ctx.groups)
        return grad_x, None, None, None, None, None


class FastDecoder:
    """The ten decoders of a grouped decoder (`abs_model.grouped_decoder`), evaluated faster.

    Built from the module's current weights (detached): build a new one after the weights change.
    Calling it maps latents (B, C, d) to images (B, C, 784), decoder c applied to z[:, c], like
    `ABSModel.decode_reference`."""

    def __init__(self, grouped: nn.Sequential) -> None:
        convs = [layer for layer in grouped if isinstance(layer, nn.ConvTranspose2d)]
        if len(convs) != 4 or len(grouped) != 8:
            raise ValueError("FastDecoder expects ABS's four-layer grouped decoder")
        first, self.convs = convs[0], convs[1:]
        self.groups = first.groups
        self.latent_dim = first.in_channels // self.groups
        assert first.bias is not None
        # Layer 1 on a 1x1 input is a matrix product per class: (d) -> (32 * 4 * 4).
        self.first_weight = first.weight.detach().reshape(self.groups, self.latent_dim, -1)
        spatial = first.kernel_size[0] * first.kernel_size[1]
        self.first_shape = (first.out_channels, *first.kernel_size)
        self.first_bias = (
            first.bias.detach().reshape(self.groups, 1, -1).repeat_interleave(spatial, dim=2)
        )
        # The stride-2 layers by phases; the last (one output channel per class) as it is.
        self.kernels: list[list[torch.Tensor] | None] = [
            phase_kernels(conv.weight.detach(), conv.stride[0], self.groups)
            if conv.stride[0] > 1
            else None
            for conv in self.convs
        ]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        b = len(z)
        # (C, B, d) @ (C, d, 512) + bias: every class's first layer in one call.
        h = torch.baddbmm(self.first_bias, z.transpose(0, 1), self.first_weight)
        h = F.elu(h.transpose(0, 1).reshape(b, *self.first_shape))
        for conv, kernels in zip(self.convs, self.kernels, strict=True):
            assert conv.bias is not None
            h = _TransposedConv.apply(
                h, conv.weight.detach(), conv.bias.detach(), kernels, conv.stride[0], self.groups
            )
            h = torch.sigmoid(h) if conv is self.convs[-1] else F.elu(h)
        return h.reshape(b, self.groups, PIXELS)
