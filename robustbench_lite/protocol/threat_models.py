"""Threat models: the sets of allowed perturbations (linf, l2, spatial), their default budgets per
dataset, their own name registry, and their geometry (foolbox's per-norm template): a random
start in the set, the projection onto it, the steepest-ascent direction of unit size, and the
size of a perturbation. Attacks call these, so no attack branches on the norm."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import torch

from robustbench_lite.errors import RBError
from robustbench_lite.names import StrEnum
from robustbench_lite.protocol import transforms


class TM(StrEnum):
    """The threat models' names."""

    LINF = "linf"
    L2 = "l2"
    SPATIAL = "spatial"


#: Per-sample tensors an attack returns beside x_adv (e.g. the spatial transform it used).
Extras = Mapping[str, torch.Tensor]


class ThreatModel(ABC):
    """A set of allowed perturbations of x (its default size is each dataset's: DataSource.eps).

    `extras` are the attack's per-sample records; pixel balls ignore them, while a threat model
    whose set is not a pixel ball (spatial) verifies by re-rendering x from them.
    """

    name: ClassVar[TM]

    def check_eps(self, eps: float, shape: tuple[int, ...] | None = None) -> None:
        """Raise RBError for a budget that makes no sense in this threat model (for inputs of
        `shape` (C, H, W) where that sets a bound)."""
        if not (math.isfinite(eps) and eps > 0):
            raise RBError(f"{self.name} eps must be a positive number, got {eps}")

    def clip_extras(self, extras: Extras, eps: float) -> dict[str, torch.Tensor]:
        """The extras as the runner records them: clipped to what this threat model allows."""
        return dict(extras)

    @abstractmethod
    def project(
        self, x: torch.Tensor, x_adv: torch.Tensor, eps: float, extras: Extras | None = None
    ) -> torch.Tensor:
        """The point of the threat model's set around x (intersected with [0,1]) for x_adv."""

    @abstractmethod
    def distance(
        self, x: torch.Tensor, x_adv: torch.Tensor, extras: Extras | None = None
    ) -> torch.Tensor:
        """Per-sample size of the perturbation x_adv - x."""


class NormBall(ThreatModel):
    """A ball of a pixel norm: the geometry gradient attacks step in."""

    @abstractmethod
    def random_start(
        self, x: torch.Tensor, eps: float, generator: torch.Generator, *, surface: bool = False
    ) -> torch.Tensor:
        """A random perturbation (not yet projected): uniform in the ball (Madry et al.'s PGD),
        or with `surface`, of size exactly eps (AutoAttack's start)."""

    @abstractmethod
    def steepest_direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The steepest-ascent direction of unit size in this norm for a loss gradient."""


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value per sample, shaped to broadcast over the sample's other dimensions."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class Linf(NormBall):
    """The L-infinity ball: every pixel moves by at most eps."""

    name = TM.LINF

    def check_eps(self, eps: float, shape: tuple[int, ...] | None = None) -> None:
        super().check_eps(eps, shape)
        if eps > 1:  # most likely typed in 0-255 units: say what it would be in [0, 1]
            meant = f": did you mean {eps:g}/255 = {eps / 255:.3f}?" if eps <= 255 else ""
            raise RBError(f"linf eps {eps:g} is above 1 (images are in [0, 1]){meant}")

    def project(
        self, x: torch.Tensor, x_adv: torch.Tensor, eps: float, extras: Extras | None = None
    ) -> torch.Tensor:
        return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)

    def distance(
        self, x: torch.Tensor, x_adv: torch.Tensor, extras: Extras | None = None
    ) -> torch.Tensor:
        return (x_adv - x).flatten(1).abs().amax(dim=1)

    def random_start(
        self, x: torch.Tensor, eps: float, generator: torch.Generator, *, surface: bool = False
    ) -> torch.Tensor:
        t = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1
        if not surface:
            return t * eps
        return eps * t / _per_sample(t.flatten(1).abs().amax(dim=1).clamp_min(1e-12), x)

    def steepest_direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()


class L2(NormBall):
    """The L2 ball of radius eps."""

    name = TM.L2

    def check_eps(self, eps: float, shape: tuple[int, ...] | None = None) -> None:
        super().check_eps(eps, shape)
        if shape is not None and eps > math.sqrt(math.prod(shape)):
            raise RBError(
                f"l2 eps must be at most {math.sqrt(math.prod(shape)):.4g}, the diameter of the "
                f"input box [0,1]^{'x'.join(map(str, shape))}, got {eps:g}"
            )

    def project(
        self, x: torch.Tensor, x_adv: torch.Tensor, eps: float, extras: Extras | None = None
    ) -> torch.Tensor:
        delta = (x_adv - x).flatten(1)
        norm = delta.norm(dim=1, keepdim=True)
        factor = torch.where(norm > eps, eps / norm.clamp_min(1e-12), torch.ones_like(norm))
        return (x + (delta * factor).view_as(x)).clamp(0.0, 1.0)

    def distance(
        self, x: torch.Tensor, x_adv: torch.Tensor, extras: Extras | None = None
    ) -> torch.Tensor:
        return (x_adv - x).flatten(1).norm(dim=1)

    def random_start(
        self, x: torch.Tensor, eps: float, generator: torch.Generator, *, surface: bool = False
    ) -> torch.Tensor:
        if surface:
            t = torch.randn(x.shape, generator=generator, device=x.device)
            return eps * t / _per_sample(t.flatten(1).norm(dim=1).clamp_min(1e-12), x)
        flat = torch.randn(x.flatten(1).shape, generator=generator, device=x.device)
        flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
        radius = (
            torch.rand(len(x), 1, generator=generator, device=x.device) ** (1.0 / flat.shape[1])
            * eps
        )
        return (flat * radius).view_as(x)

    def steepest_direction(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / _per_sample(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)


class Spatial(ThreatModel):
    """Rotations within +-30 degrees and translations within +-3 pixels (Engstrom et al. 2019), or
    the range a dataset declares (CIFAR: +-10% of the side).

    eps scales that range (eps=1: the paper's MNIST setting; eps=0.5: +-15 degrees, +-1.5 px).
    The runner never trusts the attack's pixels here: it re-renders x from the recorded per-sample
    `angle` (degrees), `dx` and `dy` (pixels), clipped to the range (transforms.rotate_translate).
    """

    name = TM.SPATIAL
    params: ClassVar[tuple[str, ...]] = ("angle", "dx", "dy")

    def __init__(
        self, *, max_angle: float = 30.0, max_dx: float = 3.0, max_dy: float = 3.0
    ) -> None:
        self.max_angle, self.max_dx, self.max_dy = max_angle, max_dx, max_dy

    def check_eps(self, eps: float, shape: tuple[int, ...] | None = None) -> None:
        super().check_eps(eps, shape)
        if eps > 1:
            raise RBError(
                f"spatial eps must be at most 1 (the paper's +-{self.max_angle:g} degrees, "
                f"+-{self.max_dx:g} px), got {eps:g}"
            )

    def limits(self, eps: float) -> dict[str, float]:
        """The largest |angle| (degrees), |dx| and |dy| (pixels) allowed at eps."""
        return {"angle": self.max_angle * eps, "dx": self.max_dx * eps, "dy": self.max_dy * eps}

    def clip_extras(self, extras: Extras, eps: float) -> dict[str, torch.Tensor]:
        missing = [k for k in self.params if k not in extras]
        if missing:
            raise RBError(
                f"a spatial attack must record {', '.join(self.params)} per sample; "
                f"missing {', '.join(missing)}"
            )
        clipped = dict(extras)
        for key, limit in self.limits(eps).items():
            given = extras[key]  # a tensor stays on its device; a list is read on the CPU
            value = (
                given if isinstance(given, torch.Tensor) else torch.as_tensor(given, device="cpu")
            )
            value = value.detach().to(torch.float64)
            if value.dim() != 1 or not bool(torch.isfinite(value).all()):
                raise RBError(f"spatial extra {key!r} must be one finite number per sample")
            clipped[key] = value.clamp(-limit, limit)
        return clipped

    def project(
        self, x: torch.Tensor, x_adv: torch.Tensor, eps: float, extras: Extras | None = None
    ) -> torch.Tensor:
        """x re-rendered from the recorded transform; x_adv itself is ignored."""
        p = self.clip_extras(extras or {}, eps)
        return transforms.rotate_translate(x, p["angle"], p["dx"], p["dy"]).clamp(0.0, 1.0)

    def distance(
        self, x: torch.Tensor, x_adv: torch.Tensor, extras: Extras | None = None
    ) -> torch.Tensor:
        """The transform's size in units of eps: max(|angle|/30, |dx|/3, |dy|/3) on MNIST."""
        p = self.clip_extras(extras or {}, math.inf)
        ratios = [p[key].abs() / limit for key, limit in self.limits(1.0).items()]
        return torch.stack(ratios).amax(dim=0).to(x.dtype)


LINF, L2_BALL, SPATIAL = Linf(), L2(), Spatial()
THREAT_MODELS: dict[str, ThreatModel] = {tm.name: tm for tm in (LINF, L2_BALL, SPATIAL)}
NORM_BALLS: dict[str, NormBall] = {tm.name: tm for tm in (LINF, L2_BALL)}


def threat_model(name: str) -> ThreatModel:
    """Look up a threat model by name."""
    try:
        return THREAT_MODELS[name]
    except KeyError:
        raise RBError(f"unknown threat model {name!r}; known: {', '.join(THREAT_MODELS)}") from None
