"""Plugin contracts (Attack, Defense, ThreatModel) and the registry that finds them.

Plugins are found through entry points (groups `robustbench_lite.attacks` and
`robustbench_lite.defenses`), so built-ins register exactly as a third-party package would.
Hyper-parameters are keyword-only constructor arguments with defaults (as in foolbox), stored on
the instance under the same name; `--set key=value` is checked against them.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import torch
from torch import nn

from robustbench_lite.errors import RBError, is_stop, one_line
from robustbench_lite.queries import KNOWLEDGE
from robustbench_lite.threat_models import (  # noqa: F401  (re-exported for plugins)
    L2,
    SPATIAL,
    THREAT_MODELS,
    Extras,
    Linf,
    Spatial,
    ThreatModel,
    threat_model,
)

Knowledge = Literal["gradient", "scores", "labels"]
#: What a plugin, dataset or model name may be: it names folders and files and is printed.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = (
    "a name is letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)"
)
ATTACK_GROUP = "robustbench_lite.attacks"
DEFENSE_GROUP = "robustbench_lite.defenses"


class QueryModel(Protocol):
    """What an attack sees (queries.Oracle): images in [0,1] -> one row per image, each row
    charged to a sample, answered at the attack's declared `knowledge`: `gradient` attacks get
    differentiable logits, `scores` attacks detached logits (no autograd), `labels` attacks a
    one-hot of the predicted label. Asking for more (e.g. a query that requires grad from a
    `scores` attack) is an error naming the attack.

    `idx[i]` names the sample (0..N-1 of the batch given to `Attack.run`) that row i belongs to;
    it may be omitted only when the call holds exactly one row per sample, in order.
    `stochastic` is True for a randomized defense: an attack must not take one fooled answer as
    success (e.g. stop early on it), since the runner's verdict is a majority over fresh draws.
    """

    num_classes: int
    stochastic: bool
    knowledge: str

    def __call__(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor: ...


# ---------------------------------------------------------------------------------------------
# Plugin base classes


class Plugin:
    """Shared by attacks and defenses: a registry name, hyper-parameters and profile overrides."""

    name: ClassVar[str]
    #: Hyper-parameter overrides per profile (`quick`, `standard`, `paper`).
    profiles: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: Whether `--attack all` / `--defense all` includes it.
    in_all: ClassVar[bool] = True
    #: Defaults that a preset (see `preset`) puts over the constructor's own.
    preset_defaults: ClassVar[Mapping[str, Any]] = {}
    #: Per profile, at most this many test samples (a cell takes the smaller of its attack's and
    #: its defense's cap; an explicit `--n` overrides both). For plugins too costly to evaluate on
    #: all samples; the n used is in every result and the leaderboard.
    max_eval_samples: ClassVar[Mapping[str, int]] = {}

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """Keyword-only constructor arguments and their defaults (a preset's defaults applied)."""
        init = cls.__init__
        while getattr(init, "__preset_init__", False):
            init = init.__wrapped__  # type: ignore[attr-defined]
        params = inspect.signature(init).parameters.values()
        defaults = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        return {**defaults, **cls.preset_defaults}

    def config(self) -> dict[str, Any]:
        """The hyper-parameters this instance runs with; recorded in every result."""
        return {key: getattr(self, key) for key in type(self).hyperparameters()}


class Attack(Plugin, ABC):
    """An attack: `run` returns adversarial candidates; the runner decides whether they succeed."""

    threat_model: str = "linf"
    knowledge: ClassVar[Knowledge] = "gradient"
    #: Minimal-perturbation attacks may return points beyond eps; the runner reports distances.
    minimal: ClassVar[bool] = False

    @abstractmethod
    def run(
        self,
        model: QueryModel,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        budget: int | None,
        generator: torch.Generator,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Attack a batch of clean-correct samples.

        Returns x_adv (same shape as x), optionally with per-sample extras to record (tensors whose
        first dimension is the batch). `budget` is the per-sample query budget (None: unlimited);
        the runner counts queries itself and refuses results that overspend.
        """


class Defense(Plugin, ABC):
    """A defense: an architecture, a way to train it, optionally a certificate."""

    randomized: ClassVar[bool] = False
    certifies: ClassVar[bool] = False
    #: True when `build` returns an already trained model (a user's own, see own_model.py): the
    #: runner neither trains nor caches it, and its config must identify the weights.
    pretrained: ClassVar[bool] = False
    #: What the deployed model lets an attacker see; attacks needing more are skipped up front.
    exposes: ClassVar[frozenset[str]] = frozenset(KNOWLEDGE)

    @abstractmethod
    def build(self, num_classes: int) -> nn.Module:
        """The untrained model: images in [0,1] (N,1,28,28) -> logits (N, num_classes)."""

    @abstractmethod
    def fit(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator,
        progress: bool,
    ) -> None:
        """Train `model` in place on the training split."""

    def prediction_draws(self) -> int:
        """How many stochastic forward passes one prediction takes (majority vote)."""
        return 1

    def certify(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
    ) -> torch.Tensor:
        """Per-sample bool: is the prediction provably constant in the eps-ball?"""
        raise NotImplementedError(f"defense {self.name} does not certify")


P = TypeVar("P", bound=Plugin)


def preset(base: type[P], name: str, doc: str, /, **defaults: Any) -> type[P]:
    """A registered variant of a plugin with other defaults (e.g. `pgd-l2` is `pgd`, norm l2).

    The first three arguments are positional-only, so a hyper-parameter may be named `base`."""
    unknown = set(defaults) - set(base.hyperparameters())
    if unknown:
        raise TypeError(f"preset {name}: {base.__name__} has no hyper-parameters {sorted(unknown)}")
    base_init = base.__init__

    def __init__(self: Any, **kwargs: Any) -> None:
        base_init(self, **{**defaults, **kwargs})

    __init__.__preset_init__ = True  # type: ignore[attr-defined]
    __init__.__wrapped__ = base_init  # type: ignore[attr-defined]
    attrs = {
        "name": name,
        "__doc__": doc,
        "__init__": __init__,
        "__module__": base.__module__,
        "preset_defaults": {**base.preset_defaults, **defaults},
    }
    return type(base.__name__ + "_" + name.replace("-", "_"), (base,), attrs)


# ---------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Entry:
    """A registered plugin name and where it comes from; loaded only when used."""

    name: str
    target: str
    entry_point: importlib.metadata.EntryPoint

    def load(self) -> type[Plugin]:
        try:
            obj = self.entry_point.load()
        except ImportError as exc:
            raise RBError(
                f"plugin {self.name} ({self.target}) cannot be loaded: {exc}; "
                "install its optional dependencies"
            ) from None
        except BaseException as exc:  # its module failed at import (SystemExit included)
            if is_stop(exc):
                raise
            raise RBError(
                f"plugin {self.name} ({self.target}) failed at import: {one_line(exc)}"
            ) from None
        if not (isinstance(obj, type) and issubclass(obj, Plugin)):
            raise RBError(f"plugin {self.name} ({self.target}) is not a Plugin subclass")
        if obj.name != self.name:
            raise RBError(
                f"plugin {self.target} is registered as {self.name!r} but names itself {obj.name!r}"
            )
        return obj


def _entries(group: str) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for ep in importlib.metadata.entry_points(group=group):
        if not NAME.fullmatch(ep.name):
            package = ep.dist.name if ep.dist is not None else "an unknown package"
            raise RBError(
                f"package {package} registers {group} entry point {ep.name!a} "
                f"({ep.value!a}): {NAME_RULE}"
            )
        if ep.name in found and found[ep.name].target != ep.value:
            raise RBError(
                f"duplicate plugin name {ep.name!r} in {group}: "
                f"{found[ep.name].target} and {ep.value}"
            )
        found[ep.name] = Entry(ep.name, ep.value, ep)
    return dict(sorted(found.items()))


def attack_names() -> list[str]:
    """Names of all registered attacks, sorted."""
    return list(_entries(ATTACK_GROUP))


def defense_names() -> list[str]:
    """Names of all registered defenses, sorted."""
    return list(_entries(DEFENSE_GROUP))


def _load(group: str, kind: str, name: str, base: type[P]) -> type[P]:
    entries = _entries(group)
    if name not in entries:
        raise RBError(f"unknown {kind} {name!r}; known: {', '.join(entries) or '(none)'}")
    cls = entries[name].load()
    if not issubclass(cls, base):
        raise RBError(f"plugin {name} is registered as {kind} but is not a {base.__name__}")
    return cls


def attack_class(name: str) -> type[Attack]:
    """The attack class registered under `name` (RBError listing the known names if none)."""
    return _load(ATTACK_GROUP, "attack", name, Attack)


def defense_class(name: str) -> type[Defense]:
    """The defense class registered under `name` (RBError listing the known names if none)."""
    return _load(DEFENSE_GROUP, "defense", name, Defense)


def instantiate(cls: type[P], profile: str, overrides: Mapping[str, Any] | None = None) -> P:
    """Build a plugin with its profile's defaults and the user's overrides (checked by name)."""
    known = cls.hyperparameters()
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise RBError(
            f"{cls.name} has no hyper-parameter {', '.join(unknown)}; "
            f"known: {', '.join(known) or '(none)'}"
        )
    kwargs = {**cls.profiles.get(profile, {}), **overrides}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise RBError(f"{cls.name}: {exc}") from None
    except BaseException as exc:
        if is_stop(exc):
            raise
        raise RBError(f"{cls.name}: its constructor failed: {one_line(exc)}") from None
