"""How a user's model enters the suite: its factory imported by name or loaded from a file, its
weights read from safetensors (no code runs; pickles are refused), checked in one line each."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from robustbench_lite.errors import RBError, guarded, is_stop, one_line
from robustbench_lite.home import rb_home
from robustbench_lite.running.own.model import UserModel


def load_factory(spec: str, flag: str = "--model") -> Callable[..., Any]:
    """`pkg.mod:fn` (imported, the working directory first on the path) or `path/to/file.py:fn`
    (loaded from that file) -> the callable `fn`; an RBError (naming `flag`) for anything else."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        what = "FACTORY" if flag == "--model" else "FUNCTION"
        raise RBError(f"{flag} {spec!r}: expected PACKAGE.MODULE:{what} or path/file.py:{what}")
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
        raise RBError(f"{flag} {spec}: importing {target} failed ({one_line(exc)})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RBError(f"{flag} {spec}: {target} has no callable {attr!r}")
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
    spec: str,
    *,
    name: str,
    weights: Path | None = None,
    randomized: bool = False,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    dataset: str = "cifar10",
    preprocess: str | None = None,
    bpda: str | None = None,
) -> UserModel:
    """The user model `rb run --model SPEC [--weights FILE] --name NAME` evaluates; SPEC
    `robustbench:<model>[@<threat model>]` takes one of RobustBench's zoo (`dataset`'s).
    `--preprocess` and `--bpda` name a non-differentiable front step and its approximation."""
    if bpda is not None and preprocess is None:
        raise RBError("--bpda approximates a --preprocess step; give the step too")
    step = None if preprocess is None else load_factory(preprocess, "--preprocess")
    approximation = None if bpda is None else load_factory(bpda, "--bpda")
    if spec.startswith(ROBUSTBENCH):
        fn: Callable[[], Any] = functools.partial(robustbench_model, spec, dataset)
    else:
        fn = load_factory(spec)
    with guarded(f"--model {spec}: calling it"):
        model = fn()
    if not isinstance(model, nn.Module):
        raise RBError(f"--model {spec} returned {type(model).__name__}, not a torch nn.Module")
    if weights is not None:
        load_weights(model, weights)
    model.eval()  # a freshly built module is in train mode by default: that is no mistake here
    return UserModel(
        model,
        name=name,
        randomized=randomized,
        factory=spec if spec.startswith(ROBUSTBENCH) else _factory_label(spec),
        make=fn,
        normalize=normalize,
        preprocess=step,
        bpda=approximation,
        front_names=(
            None if preprocess is None else _factory_label(preprocess),
            None if bpda is None else _factory_label(bpda),
        ),
    )


ROBUSTBENCH = "robustbench:"
#: Our datasets -> RobustBench's (its zoo is per dataset).
ROBUSTBENCH_DATASETS = {
    "cifar10": "cifar10",
    "cifar10-samples": "cifar10",
    "cifar100": "cifar100",
    "imagenet-samples": "imagenet",
}


def robustbench_model(spec: str, dataset: str) -> nn.Module:
    """A model of RobustBench's zoo (Croce et al. 2021), through its own loader, from weights
    already in $RB_HOME/robustbench (this suite never downloads a model)."""
    model, _, threat = spec.removeprefix(ROBUSTBENCH).partition("@")
    threat = threat or "Linf"
    try:
        from robustbench.utils import load_model
    except ImportError:
        raise RBError(
            f"--model {spec}: the robustbench package is not installed (pip install "
            "git+https://github.com/RobustBench/robustbench; it needs torchvision)"
        ) from None
    if dataset not in ROBUSTBENCH_DATASETS:
        known = ", ".join(ROBUSTBENCH_DATASETS)
        raise RBError(f"--model {spec}: RobustBench has no zoo for {dataset} (only {known})")
    rb_dataset = ROBUSTBENCH_DATASETS[dataset]
    folder = rb_home() / "robustbench"
    checkpoint = folder / rb_dataset / threat / f"{model}.pt"
    if not checkpoint.is_file():
        raise RBError(
            f"--model {spec}: its weights are not at {checkpoint}; fetch them once with "
            "robustbench's load_model(model_dir=...) (rb never downloads models)"
        )
    with guarded(f"--model {spec}: RobustBench's load_model"):
        return load_model(
            model_name=model, model_dir=str(folder), dataset=rb_dataset, threat_model=threat
        )
