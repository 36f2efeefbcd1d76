"""Evaluate any torch classifier: a user's own model as a row of the same leaderboard.

`UserModel` wraps a trained nn.Module as a `Defense` built at run time (not registered through
entry points). It is `pretrained`, so the runner neither trains nor caches it; its config names
the factory and the SHA-256 of its weights, so the cells' config hashes change with any weight
(new weights never reuse stale cells) and stay for the same weights (a rerun resumes).

Weights come from safetensors files only: loading them runs no code (a pickle would).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from robustbench_lite.errors import RBError, guarded
from robustbench_lite.names import NAME
from robustbench_lite.protocol import checks as model_checks
from robustbench_lite.protocol.bpda import (
    Fronted,
    FrontStep,
    front_steps,
    route_through_approximation,
)
from robustbench_lite.protocol.contracts import DataSource, Defense
from robustbench_lite.running.own import checks as user_checks
from robustbench_lite.running.own.data import resolve_source

CHECK_SAMPLES = 200  # clean test images the pre-attack checks look at
RANDOMIZED_DRAWS = 10  # majority vote of a declared randomized model's verdicts


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the state_dict tensors (names, dtypes, shapes, bytes), modes excluded:
    any changed weight or buffer changes it; the same weights always give the same digest."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict(keep_vars=False).items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class UserModel(Defense):
    """A user's trained classifier (images in [0, 1], NCHW -> logits) as a leaderboard row."""

    pretrained = True
    name = "user-model"  # replaced per instance by the user's name

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        randomized: bool = False,
        factory: str | None = None,
        draws: int | None = None,
        make: Callable[[], nn.Module] | None = None,
        normalize: tuple[Sequence[float], Sequence[float]] | None = None,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        bpda: Callable[[torch.Tensor], torch.Tensor] | None = None,
        front_names: tuple[str | None, str | None] = (None, None),
    ) -> None:
        if not isinstance(model, nn.Module):
            raise RBError(f"the model must be a torch nn.Module, got {type(model).__name__}")
        if not NAME.fullmatch(name or ""):
            raise RBError(
                f"--name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, starting "
                "with a letter or digit); it names the leaderboard row and the results folder"
            )
        self.name = name  # type: ignore[misc]  # an instance's name, not a registered class's
        #: The name asked for; `name` becomes `<name>@<weights>` in a grid where that name holds
        #: other weights (model_home.py), and `home_note` then says so.
        self.requested = name
        self.home_note: str | None = None
        self.randomized = bool(randomized)  # type: ignore[misc]
        self.draws = draws if draws is not None else (RANDOMIZED_DRAWS if randomized else 1)
        if self.draws < 1:
            raise RBError(f"draws must be at least 1, got {self.draws}")
        self.diagnostics = model_checks.Diagnostics()
        self.normalize = _normalization(normalize)
        user_checks.check_scale(self.normalize)  # 0-255 units on [0, 1] images: refused
        model = copy.deepcopy(model)  # later changes to the caller's module cannot leak in
        model_checks.ensure_eval(model, name, self.diagnostics)  # the user's, not our wrapper
        self._model = model if self.normalize is None else Normalized(model, *self.normalize).eval()
        if bpda is not None and preprocess is None:
            raise RBError("--bpda approximates a --preprocess step; give the step too")
        #: The declared front step (`--preprocess`) and its BPDA approximation (`--bpda`), named.
        step_name, bpda_name = front_names  # as given on the command line, else module:name
        self.preprocess = None if preprocess is None else step_name or _label(preprocess)
        self.bpda = (
            None
            if preprocess is None
            else "identity"
            if bpda is None
            else bpda_name or _label(bpda)
        )
        #: The steps' code, so an edited step never reuses the old step's cells.
        self._front_sha256 = None if preprocess is None else code_sha256(preprocess, bpda)
        if preprocess is not None:
            front = FrontStep(preprocess, bpda, name=str(self.bpda))
            self._model = Fronted(front, self._model).eval()
        self._make = make  # the user's factory: fresh instances without copying one
        self.factory = factory or f"{type(model).__module__}:{type(model).__qualname__}"
        self._weights = weights_sha256(self._model)
        self._architecture = hashlib.sha256(repr(self._model).encode()).hexdigest()
        self._checked: set[str] = set()

    def config(self) -> dict[str, Any]:
        """What identifies the model: factory, architecture and weights digests, randomness."""
        return {
            "factory": self.factory,
            "weights_sha256": self._weights,
            "architecture_sha256": self._architecture,
            "randomized": self.randomized,
            "draws": self.draws,
            "normalize": None if self.normalize is None else [list(v) for v in self.normalize],
            **({} if self.preprocess is None else {"preprocess": self.preprocess}),
            **({} if self.bpda is None else {"bpda": self.bpda}),
            **({} if self._front_sha256 is None else {"front_sha256": self._front_sha256}),
        }

    def front_step(self) -> str | None:
        """The BPDA approximation of its `--preprocess` step (None without one)."""
        return self.bpda

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        """A fresh instance from the user's factory where there is one (`--model`), else a copy
        of the model as handed in (`evaluate`), behind its normalization; the runner loads the
        recorded weights into it."""
        if self._make is not None:
            model = self._make()
            if isinstance(model, nn.Module):
                if self.normalize is not None:
                    model = Normalized(model, *self.normalize)
                if isinstance(self._model, Fronted):  # a step of its own: BPDA is per instance
                    front = self._model.front
                    step = FrontStep(front.step, front.approximation, name=front.name)
                    model = Fronted(step, model)
                model.load_state_dict(self._model.state_dict())
                return model.eval()
        return copy.deepcopy(self._model)

    def fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> None:
        """Never called: a user's model comes trained (`pretrained`)."""
        raise RBError(f"{self.name} is a user's trained model; robustbench_lite does not train it")

    def prediction_draws(self) -> int:
        return self.draws

    def run_checks(self, dataset: str | DataSource) -> model_checks.Diagnostics:
        """The pre-attack checks (protocol/checks.py) on the first clean test images of
        `dataset`; an RBError for a model that cannot be evaluated, warnings kept in
        `diagnostics`."""
        source = resolve_source(dataset)
        if source.name not in self._checked:
            user_checks.check_channels(self.normalize, source.shape[0])
            test = source.load("test")
            x, y = test.x[:CHECK_SAMPLES], test.y[:CHECK_SAMPLES]
            with guarded(f"model {self.name}"):
                model = self.build(source.num_classes, source.shape)  # its own instance
                if self.bpda is not None:  # gradients as the white-box attacks take them
                    route_through_approximation(model, self.name)
                    check_front_steps(model, x[:2])
                model_checks.check_model(
                    model,
                    x,
                    y,
                    name=self.name,
                    num_classes=source.num_classes,
                    randomized=self.randomized,
                    diagnostics=self.diagnostics,
                )
                user_checks.warn_on_probabilities(model, x, self.name, self.diagnostics)
            self._checked.add(source.name)
        return self.diagnostics


def check_front_steps(model: nn.Module, x: torch.Tensor) -> None:
    """A declared approximation must map inputs to the step's output shape (BPDA differentiates
    it in the step's place); else one line before any attack."""
    for front in front_steps(model):
        if front.approximation is None:
            continue
        with torch.no_grad():
            step, approximation = front.step(x), front.approximation(x)
        if approximation.shape != step.shape:
            raise RBError(
                f"--bpda {front.name} returns shape {tuple(approximation.shape)} where the step "
                f"returns {tuple(step.shape)}: it must stand in for the step"
            )


def code_sha256(*fns: Callable[..., Any] | None) -> str:
    """SHA-256 of callables' code: each one's source where Python has it (else its bytecode and
    constants), the values it closes over, and a `functools.partial`'s arguments."""
    digest = hashlib.sha256()
    for fn in fns:
        while isinstance(fn, functools.partial):
            digest.update(repr((fn.args, sorted(fn.keywords.items()))).encode())
            fn = fn.func
        if fn is None:
            digest.update(b"none")
            continue
        code = getattr(fn, "__code__", None)
        try:
            digest.update(inspect.getsource(fn).encode())
        except (OSError, TypeError):
            if code is None:
                raise RBError(
                    f"the code of {_label(fn)} cannot be read to key its cells; pass a function "
                    "defined in a file"
                ) from None
            digest.update(repr((code.co_code, code.co_consts)).encode())
        for cell in getattr(fn, "__closure__", None) or ():
            digest.update(repr(cell.cell_contents).encode())
    return digest.hexdigest()


def _label(fn: Callable[..., Any]) -> str:
    """A callable's recorded name: `module:qualname` (what keys its cells)."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


class Normalized(nn.Module):
    """x -> model((x - mean) / std), per channel: a model that expects standardized inputs,
    attacked and judged in [0, 1] pixel space (foolbox's `preprocessing`)."""

    # The buffers `__init__` registers, typed (nn.Module's __getattr__ says Tensor | Module).
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def _normalization(
    value: tuple[Sequence[float], Sequence[float]] | None,
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Per-channel (mean, std), each a number or a sequence; std > 0 and finite."""
    if value is None:
        return None
    mean, std = (
        tuple(float(v) for v in (part if isinstance(part, Sequence) else [part])) for part in value
    )
    if not mean or len(mean) != len(std):
        raise RBError(f"normalization: mean and std need one value per channel, got {mean}, {std}")
    if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise RBError(f"normalization: means must be finite and stds positive, got {mean}, {std}")
    return mean, std
