"""Evaluate any torch classifier: a user's own model as a row of the same leaderboard.

`UserModel` wraps a trained nn.Module as a `Defense` built at run time (not registered through
entry points). It is `pretrained`, so the runner neither trains nor caches it; its config names
the factory and the SHA-256 of its weights, so the cells' config hashes change with any weight
(new weights never reuse stale cells) and stay for the same weights (a rerun resumes).

Weights come from safetensors files only: loading them runs no code (a pickle would).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from robustbench_lite import data
from robustbench_lite.errors import RBError, guarded, is_stop, one_line
from robustbench_lite.names import NAME
from robustbench_lite.protocol import checks as model_checks
from robustbench_lite.protocol.contracts import Defense

CHECK_SAMPLES = 200  # clean test images the pre-attack checks look at
RANDOMIZED_DRAWS = 10  # majority vote of a declared randomized model's verdicts


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the state_dict tensors (names, dtypes, shapes, bytes), modes excluded:
    any changed weight or buffer changes it; the same weights always give the same digest."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict(keep_vars=False).items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
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
    ) -> None:
        if not isinstance(model, nn.Module):
            raise RBError(f"the model must be a torch nn.Module, got {type(model).__name__}")
        if not NAME.fullmatch(name or ""):
            raise RBError(
                f"--name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, starting "
                "with a letter or digit); it names the leaderboard row and the results folder"
            )
        self.name = name  # type: ignore[misc]  # an instance's name, not a registered class's
        self.randomized = bool(randomized)  # type: ignore[misc]
        self.draws = draws if draws is not None else (RANDOMIZED_DRAWS if randomized else 1)
        if self.draws < 1:
            raise RBError(f"draws must be at least 1, got {self.draws}")
        self.diagnostics = model_checks.Diagnostics()
        self._model = copy.deepcopy(model)  # later changes to the caller's module cannot leak in
        self._make = make  # the user's factory: fresh instances without copying one
        model_checks.ensure_eval(self._model, name, self.diagnostics)
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
        }

    def build(self, num_classes: int) -> nn.Module:
        """A fresh instance from the user's factory where there is one (`--model`), else a copy
        of the model as handed in (`evaluate`); the runner loads the recorded weights into it."""
        if self._make is not None:
            model = self._make()
            if isinstance(model, nn.Module):
                model.load_state_dict(self._model.state_dict())
                return model.eval()
        return copy.deepcopy(self._model)

    def fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> None:
        """Never called: a user's model comes trained (`pretrained`)."""
        raise RBError(f"{self.name} is a user's trained model; robustbench_lite does not train it")

    def prediction_draws(self) -> int:
        return self.draws

    def run_checks(self, dataset: str, num_classes: int = 10) -> model_checks.Diagnostics:
        """The pre-attack checks (model_checks.py) on the first clean test images of `dataset`;
        an RBError for a model that cannot be evaluated, warnings kept in `diagnostics`."""
        if dataset not in self._checked:
            test = data.load(dataset, "test")
            x, y = test.x[:CHECK_SAMPLES], test.y[:CHECK_SAMPLES]
            with guarded(f"model {self.name}"):
                model_checks.check_model(
                    self.build(num_classes),  # an instance of their own, not the snapshot
                    x,
                    y,
                    name=self.name,
                    num_classes=num_classes,
                    randomized=self.randomized,
                    diagnostics=self.diagnostics,
                )
            self._checked.add(dataset)
        return self.diagnostics


def load_factory(spec: str) -> Callable[[], Any]:
    """`pkg.mod:fn` (imported, the working directory first on the path) or `path/to/file.py:fn`
    (loaded from that file) -> the callable `fn`; an RBError for anything else."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise RBError(f"--model {spec!r}: expected PACKAGE.MODULE:FACTORY or path/file.py:FACTORY")
    try:
        if target.endswith(".py") or "/" in target or os.sep in target:
            module = _module_from_file(Path(target))
        else:
            cwd = os.getcwd()
            if cwd not in sys.path:
                sys.path.insert(0, cwd)
            module = importlib.import_module(target)
    except RBError:
        raise
    except BaseException as exc:  # the user's module: any failure at import is one line
        if is_stop(exc):
            raise
        raise RBError(f"--model {spec}: importing {target} failed ({one_line(exc)})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RBError(f"--model {spec}: {target} has no callable {attr!r}")
    return fn


def _module_from_file(path: Path) -> Any:
    if not path.is_file():
        raise RBError(f"--model: no file {path}")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"rb_user_model_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RBError(f"--model: {path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    try:  # Ray's workers cannot import a module loaded from a file: ship its code by value
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except (ImportError, ValueError):
        pass
    return module


def load_weights(model: nn.Module, path: Path) -> None:
    """Fill `model` from a safetensors file (no code runs), every tensor matched by name."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise RBError(
            f"--weights {path}: only .safetensors files are loaded (a pickle runs code); "
            "save with safetensors.torch.save_model(model, 'model.safetensors')"
        )
    if not path.is_file():
        raise RBError(f"--weights {path}: no such file")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RBError(f"--weights {path} cannot be read ({exc})") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()[-1].strip()
        raise RBError(f"--weights {path} do not fit the model ({first})") from None
    if missing or unexpected:
        raise RBError(
            f"--weights {path} do not fit the model: missing {_few(missing)}, "
            f"unexpected {_few(unexpected)}"
        )


def _few(names: Sequence[str]) -> str:
    return "[" + ", ".join(list(names)[:5]) + (", ..." if len(names) > 5 else "") + "]"


def _factory_label(spec: str) -> str:
    """The factory as recorded: a file path normalized (relative to the working directory when
    under it), so `./m.py:f` and `m.py:f` name the same model."""
    target, _, attr = spec.rpartition(":")
    if not (target.endswith(".py") or "/" in target or os.sep in target):
        return spec
    path = Path(os.path.normpath(target))
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())
    return f"{path.as_posix()}:{attr}"


def from_factory(
    spec: str, *, name: str, weights: Path | None = None, randomized: bool = False
) -> UserModel:
    """The user model `rb run --model SPEC [--weights FILE] --name NAME` evaluates."""
    fn = load_factory(spec)
    with guarded(f"--model {spec}: calling it"):
        model = fn()
    if not isinstance(model, nn.Module):
        raise RBError(f"--model {spec} returned {type(model).__name__}, not a torch nn.Module")
    if weights is not None:
        load_weights(model, weights)
    model.eval()  # a freshly built module is in train mode by default: that is no mistake here
    return UserModel(model, name=name, randomized=randomized, factory=_factory_label(spec), make=fn)


def evaluate(
    model: nn.Module,
    *,
    name: str,
    attacks: Sequence[str],
    dataset: str = "mnist-5k",
    profile: str = "standard",
    device: str | None = None,
    randomized: bool = False,
    results: str | Path = "results",
    n: int | None = None,
    seed: int = 0,
    quiet: bool = True,
    defenses: Sequence[str] = (),
) -> pd.DataFrame:
    """Evaluate a trained classifier (NCHW images in [0, 1] -> logits) against `attacks` as the
    row `name` of the leaderboard under `results`; returns that leaderboard (as RobustBench's
    `benchmark()` does). `defenses` may add reference defenses to the same run."""
    from robustbench_lite.running.runner import Runner

    user = UserModel(model, name=name, randomized=randomized)
    runner = Runner(
        dataset=dataset,
        profile=profile,
        n=n,
        seed=seed,
        results_dir=Path(results),
        quiet=quiet,
        device=device,
    )
    runner.prepare(attacks, [*defenses, user])  # bad names fail before the checks' work
    user.run_checks(dataset)
    return runner.run(attacks, [*defenses, user])
