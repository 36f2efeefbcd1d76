"""The slow specifications of ABS (Schott et al. 2019, "Towards the first adversarially robust
neural network model on MNIST") that the batched, faster code of `abs_model` and `abs_decoder` is
tested against: one decoder at a time, one image and one class at a time, torch.optim.Adam."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lite.defenses.abs_model import ADAM_BETAS, ADAM_EPS, PIXELS, ABSModel, clip_to_ball


def single_decoder(grouped: nn.Sequential, c: int) -> nn.Sequential:
    """A standalone copy of decoder `c` of a grouped decoder (for the per-class reference loop)."""
    layers: list[nn.Module] = []
    for layer in grouped:
        if not isinstance(layer, nn.ConvTranspose2d):
            layers.append(type(layer)())
            continue
        g = layer.groups
        cin, cout = layer.in_channels // g, layer.out_channels // g
        (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
        one = nn.ConvTranspose2d(cin, cout, (kh, kw), stride=(sh, sw))
        with torch.no_grad():
            one.weight.copy_(layer.weight[c * cin : (c + 1) * cin])
            assert layer.bias is not None and one.bias is not None
            one.bias.copy_(layer.bias[c * cout : (c + 1) * cout])
        layers.append(one)
    return nn.Sequential(*layers).requires_grad_(False)


@torch.no_grad()
def reference_logits(model: ABSModel, x: torch.Tensor) -> torch.Tensor:
    """The same algorithm as a straightforward loop over images and classes (torch.optim.Adam on
    one latent at a time): slow; the specification the batched code is tested against."""
    decoders = [single_decoder(model.decoder, c) for c in range(model.num_classes)]
    beta = model.beta

    def bound(xi: torch.Tensor, rec: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return ((rec - xi).square().sum() + beta * 0.5 * z.square().sum()) / PIXELS

    rows = []
    for xi in x.reshape(len(x), PIXELS):
        if model.binary:
            xi = (xi > 0.5).to(xi.dtype)
        logits = []
        for c, decoder in enumerate(decoders):
            prior = beta * 0.5 * model.candidates.square().sum(1)
            start = ((model.decoded[c] - xi).square().sum(1) + prior).argmin()
            z = model.candidates[start].clone().view(1, -1, 1, 1).requires_grad_(True)
            optimizer = torch.optim.Adam([z], lr=model.lr, betas=ADAM_BETAS, eps=ADAM_EPS)
            with torch.enable_grad():
                for _ in range(model.steps):
                    optimizer.zero_grad()
                    bound(xi, decoder(z).flatten(), z).backward()
                    optimizer.step()
                    z.data = clip_to_ball(z.data.flatten(), model.radius).view_as(z)
            value = bound(xi, decoder(z).flatten(), z)
            logits.append(-model.logit_scale * value + model.logit_offset)
        rows.append(torch.stack(logits))
    return torch.stack(rows) if rows else x.new_zeros(0, model.num_classes)
