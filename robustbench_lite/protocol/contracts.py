"""The plugin contracts: what an attack and a defense declare and do, and what an attack is
handed (`QueryModel`). Hyper-parameters are keyword-only constructor arguments with defaults (as
in foolbox), stored on the instance under the same name; `--set key=value` is checked against
them. The registry that finds plugins is registry.py."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

import torch
from torch import nn

from robustbench_lite.data import Dataset, Shape
from robustbench_lite.names import StrEnum
from robustbench_lite.protocol.hyperparameters import check_fields
from robustbench_lite.protocol.threat_models import SPATIAL, THREAT_MODELS, TM, Spatial, ThreatModel


class Knowledge(StrEnum):
    """What an attack may see of the model: differentiable logits, detached scores, or the
    predicted label alone (the oracle answers at exactly this level)."""

    GRADIENT = "gradient"
    SCORES = "scores"
    LABELS = "labels"


class QueryModel(Protocol):
    """What an attack sees (oracle.Oracle): images in [0,1] -> one row per image, each row
    charged to a sample, answered at the attack's declared `knowledge`: `gradient` attacks get
    differentiable logits, `scores` attacks detached logits (no autograd), `labels` attacks a
    one-hot of the predicted label. Asking for more (e.g. a query that requires grad from a
    `scores` attack) is an error naming the attack.

    `idx[i]` names the sample (0..N-1 of the batch given to `Attack.run`) that row i belongs to;
    it may be omitted only when the call holds exactly one row per sample, in order.
    `stochastic` is True for a randomized defense: an attack must not take one fooled answer as
    success (e.g. stop early on it), since the runner's verdict is a majority over fresh draws.
    `threat_model` is the cell's threat model on its data (e.g. the data's spatial range).
    """

    num_classes: int
    stochastic: bool
    knowledge: Knowledge
    threat_model: ThreatModel | None

    def __call__(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor: ...


class Adversarial(NamedTuple):
    """What `Attack.run` returns: the candidates `x` (the batch's shape) and, where the threat
    model needs them, per-sample `extras` (e.g. the spatial attack's angle and shifts: one entry
    per sample each). The runner projects, re-predicts and records them; it grades, not this."""

    x: torch.Tensor
    extras: Mapping[str, torch.Tensor] = MappingProxyType({})


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
    #: Per profile, at most this many samples in one unit of work (a separately seeded batch,
    #: checkpointed as it finishes and run as a task of its own), for plugins whose samples take
    #: minutes each: a cell's unit is the smallest its attack and defense declare, else the run's
    #: batch size.
    unit_samples: ClassVar[Mapping[str, int]] = {}
    #: Bumped by a fix that changes what the plugin computes under the same hyper-parameters,
    #: so results made before the fix are recomputed, not reused (`keyed`); 0 keys nothing.
    revision: ClassVar[int] = 0

    def unsupported(self, shape: Shape, num_classes: int) -> str | None:
        """Why this plugin cannot serve data of `shape` (C, H, W) with `num_classes` classes, or
        None; the runner skips such a pair up front with one line, like impossible knowledge."""
        return None

    def __post_init__(self) -> None:
        """After a declarative plugin's fields are set (protocol/hyperparameters.py): every
        field's checks, then `validate` for what spans several fields or derives from them."""
        check_fields(self)
        self.validate()

    def validate(self) -> None:
        """Checks across hyper-parameters, and attributes derived from them (none by default)."""

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

    def keyed(self) -> dict[str, Any]:
        """What keys a result made with this plugin: its name, `config` and, once a fix bumped
        it, its `revision` (absent at 0, so results made before revisions existed keep theirs)."""
        key: dict[str, Any] = {"name": self.name, "config": self.config()}
        if self.revision:
            key["revision"] = self.revision
        return key


class Attack(Plugin, ABC):
    """An attack: `run` returns adversarial candidates; the runner decides whether they succeed."""

    threat_model: TM = TM.LINF
    knowledge: ClassVar[Knowledge] = Knowledge.GRADIENT
    #: Minimal-perturbation attacks may return points beyond eps; the runner reports distances.
    minimal: ClassVar[bool] = False

    def surrogate_defense(self) -> str | None:
        """The defense whose trained model a transfer attack crafts its examples on, or None.
        The runner hands that model's recipe to `use_surrogate` before any cell runs."""
        return None

    def use_surrogate(self, recipe: Any, weights: str | None) -> None:
        """Take the surrogate's recipe (protocol/recipe.py) and the SHA-256 of its weights."""

    def surrogate_weights(self) -> str | None:
        """The SHA-256 of the surrogate's weights it was handed (keys its cells: other
        surrogate weights, other cells)."""
        return None

    def member_configs(self) -> list[dict[str, Any]]:
        """A chain's members, each `{"name", "config", "queries"}` (keys its cells: a member's
        changed default is a new cell, not a reused one); [] for a single attack."""
        return []

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
    ) -> Adversarial:
        """Attack a batch of clean-correct samples.

        Returns `Adversarial(x_adv)` (x_adv of x's shape), with per-sample `extras` where the
        threat model records them. `budget` is the per-sample query budget (None: unlimited); the
        runner counts queries itself and refuses results that overspend. (A bare tensor, what
        plugins written against the first contract return, is still read as `Adversarial(x)`.)
        """


class Defense(Plugin, ABC):
    """A defense: an architecture, a way to train it, optionally a certificate."""

    randomized: ClassVar[bool] = False
    certifies: ClassVar[bool] = False
    #: True when `build` returns an already trained model (a user's own, running/own/model.py): the
    #: runner neither trains nor caches it, and its config must identify the weights.
    pretrained: ClassVar[bool] = False
    #: What the deployed model lets an attacker see; attacks needing more are skipped up front.
    exposes: ClassVar[frozenset[Knowledge]] = frozenset(Knowledge)
    #: A defense that adds an inference-time step to another defense's trained model (feature
    #: squeezing on `none`) names it here: it is never trained, `classifier_of` its model takes
    #: that defense's weights (the zoo's, when the zoo ships them), and they identify its cells.
    weights_from: ClassVar[str | None] = None

    @abstractmethod
    def build(self, num_classes: int, shape: Shape = (1, 28, 28)) -> nn.Module:
        """The untrained model: images in [0,1] (N, *shape) -> logits (N, num_classes)."""

    @abstractmethod
    def fit(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator,
        progress: bool,
        eps: float = 0.3,
    ) -> None:
        """Train `model` in place on the training split; `eps` is the data's Linf budget (what
        an adversarial training defense trains against unless told otherwise)."""

    def prediction_draws(self) -> int:
        """How many stochastic forward passes one prediction takes (majority vote)."""
        return 1

    def classifier_of(self, model: nn.Module) -> nn.Module:
        """The part of `model` that takes the weights of `weights_from` (the whole by default)."""
        return model

    def front_step(self) -> str | None:
        """The recorded name of the non-differentiable front step its model declares in a
        `FrontStep` (protocol/bpda.py), or None: a declared step gets white-box cells through
        BPDA and plain `@no-bpda` ones beside them."""
        return None

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


class DataSource(ABC):
    """A dataset: the shape of its images, its classes and splits, where its files come from and
    how they are verified (`origin`), and its default budget per threat model."""

    name: ClassVar[str]
    shape: ClassVar[Shape]  # (C, H, W)
    num_classes: ClassVar[int]
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    #: The threat models' default eps on this data (MNIST: linf 0.3, l2 1.5; CIFAR: 8/255, 0.5).
    eps: ClassVar[Mapping[str, float]]
    #: The spatial threat model's range at eps 1: (degrees, pixels in x, pixels in y); None:
    #: +-30 degrees and +-10% of the width and height.
    spatial: ClassVar[tuple[float, float, float] | None] = None
    origin: ClassVar[str] = ""

    @abstractmethod
    def load(self, split: str) -> Dataset:
        """One split ('train' or 'test') as tensors; an RBError naming what is missing."""

    def threat_model(self, name: str) -> ThreatModel:
        """The threat model `name` on this data (the spatial range is the data's)."""
        if name != TM.SPATIAL:
            return THREAT_MODELS[name]
        angle, dx, dy = self.spatial or (30.0, 0.1 * self.shape[2], 0.1 * self.shape[1])
        if (angle, dx, dy) == (SPATIAL.max_angle, SPATIAL.max_dx, SPATIAL.max_dy):
            return SPATIAL
        return Spatial(max_angle=angle, max_dx=dx, max_dy=dy)

    def default_eps(self, name: str) -> float:
        """The default eps of threat model `name` on this data."""
        return float(self.eps[name])

    def content_sha256(self, test: Dataset | None = None) -> str:
        """The full SHA-256 of the test split's decoded content (`Dataset.sha256`), computed once
        per source: every result records it (`data_sha256`) and is reused only on data that
        give the same. `test`: the test split when already loaded (spares a second load)."""
        cached = vars(self).get("_content_sha256")
        if cached is None:
            if test is None or test.split != "test":
                test = self.load("test")
            cached = test.sha256()
            self._content_sha256 = cached
        return cached
