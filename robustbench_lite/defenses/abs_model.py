"""The ABS model of Schott et al. 2019, "Towards the first adversarially robust neural network
model on MNIST": ten class-conditional VAE decoders and inference by latent optimization.

The ten decoders are one network of grouped (transposed) convolutions, one group per class, so
every (input, class) pair of a batch is decoded in a single call; the latent search evaluates it
through `abs_decoder.FastDecoder` (the same function, faster), `abs_reference` holds the slow
specifications the fast code is tested against. Inference for class y minimizes
the negative lower bound  (||x - G_y(z)||^2 + beta/2 ||z||^2) / 784  over z: first the best of a
fixed set of prior latents (decoded once and stored as a buffer), then Adam steps from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from robustbench_lite.defenses.abs_decoder import PIXELS, FastDecoder

#: Fraction of the least likely prior draws dropped when choosing the candidates (reference code).
DISMISS = 0.1
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def grouped_decoder(groups: int, latent_dim: int) -> nn.Sequential:
    """`groups` independent decoders z (latent_dim) -> 28x28 image in [0,1] (Schott et al.'s
    widths 32/16/16 and kernels 4/5/5/4; no batch norm), as one grouped network."""
    g = groups
    return nn.Sequential(
        nn.ConvTranspose2d(g * latent_dim, g * 32, 4, groups=g),  # 1 -> 4
        nn.ELU(),
        nn.ConvTranspose2d(g * 32, g * 16, 5, stride=2, groups=g),  # 4 -> 11
        nn.ELU(),
        nn.ConvTranspose2d(g * 16, g * 16, 5, stride=2, groups=g),  # 11 -> 25
        nn.ELU(),
        nn.ConvTranspose2d(g * 16, g, 4, groups=g),  # 25 -> 28
        nn.Sigmoid(),
    )


def grouped_encoder(groups: int, latent_dim: int) -> nn.Sequential:
    """`groups` independent encoders image -> (mu, logvar); used only while training."""
    g = groups
    return nn.Sequential(
        nn.Conv2d(g, g * 32, 5, groups=g),  # 28 -> 24
        nn.ELU(),
        nn.Conv2d(g * 32, g * 32, 4, stride=2, groups=g),  # 24 -> 11
        nn.ELU(),
        nn.Conv2d(g * 32, g * 64, 3, stride=2, groups=g),  # 11 -> 5
        nn.ELU(),
        nn.Conv2d(g * 64, g * 2 * latent_dim, 5, groups=g),  # 5 -> 1
    )


def binarize(x: torch.Tensor) -> torch.Tensor:
    """Threshold at 0.5 with a straight-through gradient (BPDA: the backward pass is identity)."""
    return x + ((x > 0.5).to(x.dtype) - x).detach()


def clip_to_ball(z: torch.Tensor, radius: float) -> torch.Tensor:
    """Scale latents (last dimension) longer than `radius` back onto the sphere."""
    norm = z.norm(dim=-1, keepdim=True)
    return z * (radius / norm.clamp_min(radius))


def draw_candidates(n: int, latent_dim: int, generator: torch.Generator) -> torch.Tensor:
    """n prior latents: draw n / (1 - DISMISS) from N(0, I) and keep the n most likely."""
    z = torch.randn(math.ceil(n / (1 - DISMISS)), latent_dim, generator=generator)
    order = torch.argsort(z.square().sum(1), stable=True)
    return z[order[:n]].contiguous()


class ABSModel(nn.Module):
    """Images in [0,1] -> logits  -alpha * bound_y(x) + eta  for each class y.

    The gradient w.r.t. the input flows through the bound at the optimized latents (which are
    detached): the paper's white-box gradient, not one through the latent optimization.
    """

    # The buffers `__init__` registers, typed (nn.Module's __getattr__ says Tensor | Module).
    candidates: torch.Tensor
    decoded: torch.Tensor
    cost: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        latent_dim: int,
        candidates: int,
        steps: int,
        lr: float,
        radius: float,
        beta: float,
        logit_scale: float,
        logit_offset: float,
        binary: bool,
        chunk: int = 128,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.steps = steps
        self.lr = lr
        self.radius = radius
        self.beta = beta
        self.logit_scale = logit_scale
        self.logit_offset = logit_offset
        self.binary = binary
        self.chunk = chunk
        self.decoder = grouped_decoder(num_classes, latent_dim)
        # The fixed prior latents and their decoded images: saved with the weights.
        self.register_buffer("candidates", torch.zeros(candidates, latent_dim))
        self.register_buffer("decoded", torch.zeros(num_classes, candidates, PIXELS))
        # ||decoded||^2 + beta/2 ||candidate||^2: the input-independent part of their bounds.
        self.register_buffer("cost", torch.zeros(num_classes, candidates))

    # -- pieces --------------------------------------------------------------------------------

    #: Decode through `FastDecoder`; False: through the grouped network itself (the reference,
    #: for tests and `bench_abs`). Not a hyper-parameter: both compute the same function.
    fast = True

    def decoder_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """`decode` for the current weights (a `FastDecoder` built once, for a loop of calls)."""
        return FastDecoder(self.decoder) if self.fast else self.decode_reference

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, d) -> images (B, C, 784), decoder c applied to z[:, c]."""
        return self.decoder_fn()(z)

    def decode_reference(self, z: torch.Tensor) -> torch.Tensor:
        """`decode` through the grouped nn.Sequential itself (PyTorch's transposed convolutions)."""
        b = len(z)
        out = self.decoder(z.reshape(b, self.num_classes * self.latent_dim, 1, 1))
        return out.reshape(b, self.num_classes, PIXELS)

    def bound(self, x: torch.Tensor, rec: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Negative lower bound per pair: x (B, 784), rec (B, C, 784), z (B, C, d) -> (B, C)."""
        sq = (rec - x[:, None, :]).square().sum(-1)
        return (sq + self.beta * 0.5 * z.square().sum(-1)) / PIXELS

    @torch.no_grad()
    def set_candidates(self, generator: torch.Generator) -> None:
        """Draw the fixed prior latents from `generator` and cache every decoder's images."""
        self.candidates.copy_(draw_candidates(len(self.candidates), self.latent_dim, generator))
        self.rebuild()

    #: Buffers `rebuild` recomputes from the weights and candidates (the zoo does not ship them).
    derived_buffers = ("decoded", "cost")

    @torch.no_grad()
    def rebuild(self) -> None:
        """Decode the stored candidates with every decoder and cache the images and costs.

        Through the reference decoder (a one-time cost): the cache stays bit-identical to the
        one the committed cells were computed with, and with it every best-candidate argmin."""
        z = self.candidates
        for part in torch.arange(len(z)).split(1000):
            zc = z[part, None, :].expand(-1, self.num_classes, -1)
            self.decoded[:, part] = self.decode_reference(zc).transpose(0, 1)
        self.cost.copy_(self.decoded.square().sum(-1) + self.beta * 0.5 * z.square().sum(1))

    @torch.no_grad()
    def best_candidates(self, x: torch.Tensor) -> torch.Tensor:
        """Per (input, class), the index of the cached candidate with the smallest bound.

        One matmul for all pairs: ||x - D||^2 = ||x||^2 - 2 x.D + ||D||^2, where ||x||^2 is
        the same for every candidate of a row and is left out of the argmin."""
        flat, cost = self.decoded.reshape(-1, PIXELS), self.cost.reshape(-1)
        out = [
            torch.addmm(cost, part, flat.T, alpha=-2.0)
            .reshape(len(part), self.num_classes, -1)
            .argmin(-1)
            for part in x.split(self.chunk)
        ]
        return torch.cat(out) if out else torch.zeros(0, self.num_classes, dtype=torch.int64)

    def refine(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """`steps` Adam steps on the summed bound of all (input, class) pairs at once, latents
        clipped to the radius after each step (pairs are independent: Adam is elementwise)."""
        x, z = x.detach(), z.detach().clone()
        decode = self.decoder_fn()
        m, v = torch.zeros_like(z), torch.zeros_like(z)
        b1, b2 = ADAM_BETAS
        with torch.enable_grad():
            for t in range(1, self.steps + 1):
                z.requires_grad_(True)
                loss = self.bound(x, decode(z), z).sum()
                (grad,) = torch.autograd.grad(loss, z)
                z = z.detach()
                m.mul_(b1).add_(grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                step = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + ADAM_EPS)
                z = clip_to_ball(z - self.lr * step, self.radius)
        return z

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The optimized latents (B, C, d) for flat inputs x (B, 784), in chunks of rows."""
        idx = self.best_candidates(x)
        out = [
            self.refine(xc, self.candidates[ic])
            for xc, ic in zip(x.split(self.chunk), idx.split(self.chunk), strict=True)
        ]
        return torch.cat(out) if out else x.new_zeros(0, self.num_classes, self.latent_dim)

    # -- the classifier ------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), PIXELS)
        if self.binary:
            flat = binarize(flat)
        z = self.infer(flat.detach())
        with torch.no_grad():
            rec = self.decode(z)
        return -self.logit_scale * self.bound(flat, rec, z) + self.logit_offset


class TrainingVAEs(nn.Module):
    """Encoders plus the ABS decoders: the ten VAEs as they are trained (the encoders are thrown
    away afterwards; inference optimizes the latents instead)."""

    def __init__(self, decoder: nn.Sequential, num_classes: int, latent_dim: int) -> None:
        super().__init__()
        self.encoder = grouped_encoder(num_classes, latent_dim)
        self.decoder = decoder
        self.num_classes = num_classes
        self.latent_dim = latent_dim

    def loss(self, x: torch.Tensor, beta: float, generator: torch.Generator) -> torch.Tensor:
        """Negative ELBO (squared error + beta * KL) summed over classes, mean over rows.

        x is (B, C, 28, 28): row i holds one training digit of every class, channel c of class c.
        """
        b, c, d = len(x), self.num_classes, self.latent_dim
        stats = self.encoder(x).reshape(b, c, 2, d)
        mu, logvar = stats[:, :, 0], stats[:, :, 1]
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator)
        rec = self.decoder(z.reshape(b, c * d, 1, 1)).reshape(b, c, PIXELS)
        sq = (rec - x.reshape(b, c, PIXELS)).square().sum(-1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)
        return (sq + beta * kl).sum() / b


def class_rows(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Training digits as rows (M, C, 28, 28) with one digit of each class per row, M the largest
    class size (smaller classes are repeated in fresh random orders to fill their column)."""
    columns = []
    members = [torch.nonzero(y == c).squeeze(1) for c in range(num_classes)]
    if any(len(m) == 0 for m in members):
        raise ValueError("every class needs training digits for its VAE")
    rows = max(len(m) for m in members)
    for m in members:
        orders = [m[torch.randperm(len(m), generator=generator)] for _ in range(-(-rows // len(m)))]
        columns.append(x[torch.cat(orders)[:rows], 0])
    return torch.stack(columns, dim=1)
