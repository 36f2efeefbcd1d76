"""What one cell computes, resolved: profiles, seeds, sample caps, impossible pairs, and the
cell's spec (threat model object, eps, budget, EOT draws, seeds), made once by the run's plan and
passed down to the cell evaluation, which never climbs back into the runner for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.contracts import Attack, Defense, Plugin
from robustbench_lite.protocol.threat_models import ThreatModel


@dataclass(frozen=True)
class Profile:
    """How much work a run does: test samples, the per-sample query budget, and the EOT draws
    (forward passes averaged per query of a randomized defense)."""

    name: str
    n: int | None  # test samples; None: the whole test split
    budget: int  # per-sample queries of score- and label-based attacks
    eot_draws: int = 10


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", n=200, budget=1_000, eot_draws=4),
    "standard": Profile("standard", n=1_000, budget=10_000, eot_draws=10),
    "paper": Profile("paper", n=None, budget=10_000, eot_draws=30),
}


def profile_named(name: str) -> Profile:
    if name not in PROFILES:
        raise RBError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from the run seed and names: stable across runs, never from the clock."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def cap(profile: str, *plugins: Plugin) -> int | None:
    """The smallest sample cap the plugins declare for the profile (None: no cap)."""
    caps = [c for p in plugins if (c := p.max_eval_samples.get(profile)) is not None]
    return min(caps) if caps else None


def incompatibility(attack: Attack, defense: Defense) -> str | None:
    """Why this pair cannot be run (decided up front from what the plugins declare), or None."""
    if attack.knowledge not in defense.exposes:
        return f"{attack.name} needs {attack.knowledge} access, {defense.name} exposes only " + (
            ", ".join(sorted(defense.exposes)) or "nothing"
        )
    return None


@dataclass(frozen=True)
class CellSpec:
    """Everything one cell's evaluation needs besides the model, the attack and the samples."""

    defense: str
    cell: str  # the leaderboard column: attack name plus eps / no-EOT suffixes
    threat_model: ThreatModel
    eps: float
    budget: int | None  # per-sample queries (None: unlimited, gradient attacks)
    eot_draws: int  # forward passes averaged per attack query (1: deterministic defense)
    prediction_draws: int  # forward passes of one verdict (majority vote)
    randomized: bool
    seed: int  # the cell's seed; batches and the verifier derive theirs from it
    batch_size: int
    num_classes: int = 10
    bpda: bool = False  # the attack's instance differentiates its front steps' approximations

    @property
    def rows(self) -> int | None:
        """Rows per sample the attack may send: under EOT each row costs `eot_draws` queries."""
        return None if self.budget is None else self.budget // self.eot_draws
