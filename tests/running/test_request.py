"""One request for the CLI and Python (running/request.py), and the daily loop on a CIFAR-shaped
model: evaluate, retrain, evaluate again under the same name, from Python and from `rb run`:
both rows stay on the board, the old row's files are untouched, the new row is printed and one
line says where the old one is."""

from __future__ import annotations

import copy
import hashlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file, save_model
from torch import nn

import robustbench_lite
from robustbench_lite.cli.main import main
from robustbench_lite.cli.parser import build_parser
from robustbench_lite.errors import RBError
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.running.own.result import ModelResult
from robustbench_lite.running.request import RunRequest
from tests._helpers import cifar_model
from tests._helpers.synthetic import SHAPES, synthetic

MODEL = Path(__file__).resolve().parents[1] / "_helpers" / "cifar_model.py"
QUICK: dict[str, Any] = {"profile": "quick", "n": 24}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic CIFAR-shaped data (3x32x32, 10 classes) as a --dataset file."""
    source = synthetic(*SHAPES[0])
    train, test = source.load("train"), source.load("test")
    path = tmp_path_factory.mktemp("cifar") / "synthetic.safetensors"
    save_file({"x": test.x, "y": test.y, "x_train": train.x, "y_train": train.y}, str(path))
    return path


def _trained(steps: int, start: nn.Module | None = None) -> nn.Module:
    """tests/_helpers/cifar_model.py trained on the synthetic training split (a second call from
    `start`: the model retrained, other weights)."""
    source = synthetic(*SHAPES[0])
    train = source.load("train")
    torch.manual_seed(steps)
    model = copy.deepcopy(start) if start is not None else cifar_model.build()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(train.x), train.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def models() -> tuple[nn.Module, nn.Module]:
    first = _trained(30)
    return first, _trained(5, first)


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _request(data: Path, tmp_path: Path, **given: Any) -> RunRequest:
    kwargs: dict[str, Any] = {"attacks": "pgd", "defenses": "none", "dataset": str(data)}
    return RunRequest.build(**{**kwargs, **QUICK, "results": tmp_path, **given})


def test_attacks_are_names_never_letters(data: Path, tmp_path: Path) -> None:
    assert _request(data, tmp_path).attacks == ("pgd",)
    assert _request(data, tmp_path, attacks="pgd,square").attacks == ("pgd", "square")
    assert _request(data, tmp_path, attacks=["square", "pgd"]).attacks == ("square", "pgd")
    with pytest.raises(RBError, match="attacks= takes a name"):
        _request(data, tmp_path, attacks=[1, 2])
    with pytest.raises(RBError, match="unknown attack 'pgdd'"):
        _request(data, tmp_path, attacks="pgdd")


@pytest.mark.parametrize(
    "eps", ["8/255", 8 / 255, "linf:8/255", ["linf:8/255"], {"linf": "8/255"}, {"Linf": 8 / 255}]
)
def test_every_way_to_write_the_default_eps_is_the_default_cell(
    data: Path, tmp_path: Path, eps: Any
) -> None:
    request = _request(data, tmp_path, eps=eps)
    assert request.plan == ((None, ("pgd",)),)  # the default cell, not pgd@eps=0.0313...
    assert request.source.default_eps("linf") == pytest.approx(8 / 255)


def test_eps_sweeps_and_threat_models_shape_the_plan(data: Path, tmp_path: Path) -> None:
    sweep = _request(data, tmp_path, attacks="pgd,pgd-l2", eps={"linf": ["8/255", 0.1]})
    assert sweep.plan == ((None, ("pgd",)), (0.1, ("pgd",)))
    assert [runner.eps for runner, _ in sweep.runs] == [None, 0.1]  # pgd-l2: no eps given
    unscoped = _request(data, tmp_path, attacks="pgd,pgd-l2", eps="8/255")
    assert unscoped.plan == ((None, ("pgd",)), (8 / 255, ("pgd-l2",)))
    only_l2 = _request(data, tmp_path, attacks="pgd,pgd-l2", threat_models="L2")
    assert only_l2.attacks == ("pgd-l2",) and only_l2.plan == ((None, ("pgd-l2",)),)
    with pytest.raises(RBError, match="no selected attack has threat model spatial"):
        _request(data, tmp_path, threat_models="spatial")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"n": 0}, "--n must be a positive number"),
        ({"budget": 0}, "query budget must be at least 1"),
        ({"profile": "huge"}, "unknown profile 'huge'"),
        ({"eps": "8/0"}, "divides by zero"),
        ({"defenses": ()}, "give --defense (-d) or --model"),
        ({"settings": {"square": {"p_init": 0.1}}}, "--set names square"),
    ],
)
def test_a_bad_request_fails_before_any_work(
    data: Path, tmp_path: Path, given: dict[str, Any], message: str
) -> None:
    with pytest.raises(RBError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _request(data, tmp_path / "r", **given)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.json"))


def test_the_runner_is_built_from_the_request(data: Path, tmp_path: Path) -> None:
    request = _request(data, tmp_path, budget=50, seed=3)
    runner, names = request.runs[0]
    assert names == ("pgd",) and runner.source is request.source  # the data resolved once
    again = Runner(**request.runner_kwargs(None))  # the Runner's own constructor, unchanged
    assert (again.plan, again.results_dir, again.budget) == (runner.plan, tmp_path, 50)
    assert request.cell_dir == tmp_path / request.source.name / "quick"


def test_evaluate_and_run_take_the_cli_names_and_defaults() -> None:
    cli = vars(build_parser().parse_args(["run", "-a", "pgd"]))
    evaluate = inspect.signature(robustbench_lite.evaluate).parameters
    run = inspect.signature(robustbench_lite.run).parameters
    shared = ["dataset", "profile", "eps", "budget", "n", "seed", "results", "device"]
    for name in [*shared, "normalize", "randomized"]:
        assert name in evaluate, name
        given = cli[name]
        default = evaluate[name].default
        same = default == given or str(default) == str(given) or (given == [] and default is None)
        assert same, (name, default, given)
    for name in [*shared, "threat_models", "quiet", "attacks", "defenses"]:
        assert name in run and run[name].default == evaluate[name].default, name
    assert str(cli["results"]) == evaluate["results"].default == "results"
    doc = inspect.getdoc(robustbench_lite.evaluate) or ""
    assert all(
        word in doc for word in ("8/255", "normalize", ".leaderboard", "@<first 8 hex", "eps")
    )


def test_old_argument_names_still_work_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    class Captured:
        def execute(self) -> str:
            return "board"

    def build(**kwargs: Any) -> Captured:
        seen.update(kwargs)
        return Captured()

    monkeypatch.setattr(RunRequest, "build", staticmethod(build))
    with pytest.warns(DeprecationWarning, match="results_dir= is deprecated; use results="):
        assert robustbench_lite.run("pgd", "none", results_dir=tmp_path) == "board"
    assert seen["results"] == tmp_path and seen["attacks"] == "pgd"
    with pytest.raises(RBError, match="give results= only"), pytest.warns(DeprecationWarning):
        robustbench_lite.run("pgd", "none", results=tmp_path / "a", results_dir=tmp_path)
    old = {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.2)}

    def stop(**kwargs: Any) -> None:
        seen.update(kwargs)
        raise RBError("stopped before any work")

    monkeypatch.setattr(RunRequest, "build", staticmethod(stop))
    model = cifar_model.build()
    with pytest.warns(DeprecationWarning, match="preprocessing=") as said, pytest.raises(RBError):
        robustbench_lite.evaluate(model, name="m", attacks="pgd", preprocessing=old)
    assert said[0].filename == __file__  # the warning points at the caller's line
    assert seen["models"][0].normalize == (old["mean"], old["std"])


def test_retrained_under_the_same_name_both_rows_stay(
    data: Path, models: tuple[nn.Module, nn.Module], tmp_path: Path, caplog: Any
) -> None:
    first, retrained = models
    common = {"name": "cnn", "attacks": "pgd", "dataset": str(data), "results": tmp_path, **QUICK}
    old = robustbench_lite.evaluate(first, eps="8/255", **common)
    assert isinstance(old, ModelResult) and old.name == "cnn" and old.note is None
    assert old.clean.value >= 0.5 and set(old.cells) == {"pgd"} and "linf" in old.worst
    assert old.worst["linf"].accuracy.low <= old.worst["linf"].accuracy.value
    assert old.worst["linf"].eps == pytest.approx(8 / 255)
    assert list(old.leaderboard["defense"]) == ["cnn"]
    kept = _tree(old.folder)
    assert {"pgd.json", "diagnostics.json"} <= set(kept)
    new = robustbench_lite.evaluate(retrained, **common)
    assert new.name.startswith("cnn@") and len(new.name) == len("cnn@") + 8
    assert new.folder == old.folder.parent / new.name and new.folder.is_dir()
    assert _tree(old.folder) == kept  # the old model's cells and diagnostics: not a byte moved
    assert new.note is not None and str(old.folder) in new.note and new.name in new.note
    assert new.note in caplog.text  # said, in one line
    assert sorted(new.leaderboard["defense"]) == ["cnn", new.name]
    assert "no-diagnostics" not in new.flags + old.flags
    assert f"cnn  ({old.folder}/)" in repr(old) and ".leaderboard" in repr(new)
    again = robustbench_lite.evaluate(first, **common)  # the first weights again: resumed
    assert (again.name, again.note, again.cells) == ("cnn", None, old.cells)
    assert _tree(old.folder) == kept


def test_retrained_under_the_same_name_from_the_cli(
    data: Path,
    models: tuple[nn.Module, nn.Module],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: Any,
) -> None:
    files = []
    for i, model in enumerate(models):
        files.append(tmp_path / f"w{i}.safetensors")
        save_model(model, str(files[-1]))

    def rb(weights: Path) -> str:
        argv = ["-q", "run", "--model", f"{MODEL}:build", "--weights", str(weights),
                "--name", "cnn", "--dataset", str(data), "-a", "pgd", "--eps", "linf:8/255",
                "--profile", "quick", "--n", "24", "--results", str(tmp_path / "r")]  # fmt: skip
        assert main(argv) == 0
        return capsys.readouterr().out

    out = rb(files[0])
    folder = next((tmp_path / "r").glob("*/quick/cnn"))
    kept = _tree(folder)
    assert "cnn" in out.split() and "already holds" not in caplog.text
    out = rb(files[1])
    [new] = [p.name for p in folder.parent.iterdir() if p.name.startswith("cnn@")]
    assert new in out  # the new row, printed: never an empty table
    [said] = [r.getMessage() for r in caplog.records if "already holds" in r.getMessage()]
    assert str(folder) in said and new in said  # one line (on stderr, in a terminal)
    assert _tree(folder) == kept
    board = (folder.parent / "leaderboard.csv").read_text().splitlines()
    assert sorted(line.split(",")[0] for line in board[1:]) == ["cnn", new]
