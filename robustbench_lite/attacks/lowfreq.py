"""Attack `low-frequency` (and `lf-boundary`, `lf-nes`): the boundary or NES attack with noise
drawn from the low-frequency DCT subspace, Guo, Frank, Weinberger 2020, "Low frequency
adversarial perturbation" (LF-BA, LF-NES)."""

from __future__ import annotations

from typing import Any

import torch

from robustbench_lite.api import TM, Adversarial, Attack, Knowledge, QueryModel, preset
from robustbench_lite.attacks._common import frequency
from robustbench_lite.attacks.boundary import Boundary
from robustbench_lite.attacks.nes import NES

BASES: dict[str, type[Boundary] | type[NES]] = {"boundary": Boundary, "nes": NES}


class LowFrequency(Attack):
    """A base attack (`base`) run with `frequency.LowFrequency(ratio)` as its noise sampler.

    The base's hyper-parameters are this plugin's too (so `--set lf-nes.sigma=...` works); its
    threat model, knowledge and minimality are the base's.
    """

    name = "low-frequency"
    knowledge = Knowledge.LABELS  # the default base's; each instance takes its base's
    threat_model = TM.L2
    minimal = True
    max_eval_samples = Boundary.max_eval_samples
    in_all = False  # `all` runs its concrete cells, lf-boundary and lf-nes, instead

    def __init__(self, *, base: str = "boundary", ratio: float = 0.5, **options: Any) -> None:
        if base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got {base!r}")
        self.base = base
        self.ratio = ratio
        self.inner = BASES[base](frequency.LowFrequency(ratio), **options)
        self.threat_model = self.inner.threat_model
        self.knowledge = self.inner.knowledge  # type: ignore[misc]
        self.minimal = self.inner.minimal  # type: ignore[misc]
        self.max_eval_samples = self.inner.max_eval_samples  # type: ignore[misc]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A preset with another base (`lf-nes`) declares that base's traits on the class too."""
        super().__init_subclass__(**kwargs)
        cls.in_all = True
        inner = BASES[cls.preset_defaults.get("base", "boundary")]
        cls.threat_model = inner.threat_model
        cls.knowledge = inner.knowledge
        cls.minimal = inner.minimal
        cls.max_eval_samples = inner.max_eval_samples

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        own = super().hyperparameters()
        inner = BASES.get(own["base"], Boundary).hyperparameters()
        return {**own, **{key: value for key, value in inner.items() if key not in own}}

    def config(self) -> dict[str, Any]:
        return {"base": self.base, "ratio": self.ratio, **self.inner.config()}

    def run(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        budget: int | None,
        generator: torch.Generator,
    ) -> Adversarial:
        return self.inner.run(model, x, y, eps=eps, budget=budget, generator=generator)


LFBoundary = preset(
    LowFrequency, "lf-boundary", "LF-BA: the boundary attack in the low-frequency DCT subspace."
)
# Ratios measured on mnist-5k (see the issue note): 1/2 for the boundary attack, 1/4 for NES.
LFNES = preset(
    LowFrequency, "lf-nes", "LF-NES: NES in the low-frequency DCT subspace.", base="nes", ratio=0.25
)
