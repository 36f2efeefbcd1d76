"""A user's own model as a leaderboard row: the same numbers as the same weights registered as a
plugin, from Python and from `rb run --model`; weights key the cells; `rb check --model` guards
it; the README's example runs as written."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from safetensors.torch import load_model, save_model
from torch import nn

import robustbench_lite
from robustbench_lite.cli.main import main
from robustbench_lite.defenses._common.models import mnist_cnn
from robustbench_lite.defenses.standard import Standard
from robustbench_lite.errors import RBError
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.running.own.model import UserModel
from robustbench_lite.running.own.model_files import from_factory, load_factory
from tests._helpers.doubles import register

ROOT = Path(__file__).resolve().parents[2]
N = "40"
FACTORY = "robustbench_lite.defenses:mnist_cnn"  # the baseline's architecture, as a user names it


class Twin(Standard):
    """The same architecture and weights as a user's model, registered as a plugin."""

    name = "twin"
    pretrained = True
    weights: ClassVar[Path]

    def build(self, num_classes: int, shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
        model = mnist_cnn(num_classes, width=self.width)
        load_model(model, str(Twin.weights))
        return model


@pytest.fixture(scope="module")
def weights(baseline: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    save_model(baseline, str(path))
    return path


def _model(weights: Path) -> nn.Module:
    model = mnist_cnn()
    load_model(model, str(weights))
    return model.eval()


def _cells(root: Path, name: str) -> dict[str, dict[str, Any]]:
    folder = root / "mnist-5k" / "quick" / name
    return {
        p.stem: json.loads(p.read_text()) for p in folder.glob("*.json") if p.stem != "diagnostics"
    }


def test_python_cli_and_plugin_give_the_same_numbers(weights: Path, tmp_path: Path) -> None:
    attacks = ["pgd", "square"]
    with pytest.MonkeyPatch.context() as mp:  # registered only for this run: the name is free after
        register(mp, twin="tests.running.test_own_model:Twin")
        Twin.weights = weights
        robustbench_lite.run(
            attacks, ["twin"], profile="quick", n=int(N), budget=100, results=tmp_path / "p"
        )
    Runner(profile="quick", n=int(N), budget=100, results_dir=tmp_path / "py", quiet=True).run(
        attacks, [UserModel(_model(weights), name="twin")]
    )
    result = robustbench_lite.evaluate(
        _model(weights), name="twin", attacks="pgd", profile="quick", n=int(N),
        results=tmp_path / "ev",
    )  # fmt: skip
    code = main(
        ["-q", "run", "--model", FACTORY, "--weights", str(weights), "--name", "twin",
         "-a", ",".join(attacks), "--profile", "quick", "--n", N, "--budget", "100",
         "--results", str(tmp_path / "cli")]
    )  # fmt: skip
    assert code == 0
    plugin = _cells(tmp_path / "p", "twin")
    assert set(plugin) == {"pgd", "square@budget=100"}
    for other in ("py", "cli"):
        cells = _cells(tmp_path / other, "twin")
        for name, cell in plugin.items():
            assert cells[name]["samples"]["robust"] == cell["samples"]["robust"], (other, name)
            assert cells[name]["samples"]["adv_pred"] == cell["samples"]["adv_pred"]
            assert cells[name]["clean_acc"] == cell["clean_acc"] > 0.8
    assert result.name == "twin" and result.cells == {"pgd": plugin["pgd"]["robust_acc"]}
    row = result.leaderboard.set_index("defense").loc["twin"]  # the whole board, one step away
    assert row["pgd"] == plugin["pgd"]["robust_acc"] and result.clean.value == row["clean_acc"]


def test_weights_key_the_cells(weights: Path, tmp_path: Path) -> None:
    model = _model(weights)

    def run(m: nn.Module) -> Runner:
        runner = Runner(profile="quick", n=20, results_dir=tmp_path, quiet=True)
        runner.run(["pgd"], [UserModel(m, name="mine")])
        return runner

    first = run(model)
    key = UserModel(model, name="mine").config()["weights_sha256"]
    assert len(first.computed) == 1
    again = run(copy.deepcopy(model).train())  # same weights, another mode: the same cells
    assert (len(again.reused), len(again.computed)) == (1, 0)
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed[0].weight[0, 0, 0, 0] += 1e-3  # one weight
    assert UserModel(changed, name="mine").config()["weights_sha256"] != key
    after = run(changed)
    assert (len(after.reused), len(after.computed)) == (0, 1)


def test_factories_and_weights_are_loaded_safely(weights: Path, tmp_path: Path) -> None:
    assert load_factory(FACTORY) is mnist_cnn
    assert (
        load_factory(str(ROOT / "examples" / "my_model.py") + ":build")().__class__ is nn.Sequential
    )
    user = from_factory(FACTORY, name="mine", weights=weights)
    assert user.config()["factory"] == FACTORY and user.pretrained
    with pytest.raises(RBError, match="does not train it"):
        user.fit(user.build(10), torch.zeros(1), torch.zeros(1))
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"not loaded")
    for spec, kwargs, message in [
        ("nope", {}, "expected PACKAGE.MODULE:FACTORY"),
        ("no_such_module_xyz:build", {}, "importing no_such_module_xyz failed"),
        (f"{FACTORY}x", {}, "has no callable"),
        (FACTORY, {"weights": pickle}, "only .safetensors"),
        ("robustbench_lite.defenses:ibp_cnn", {"weights": weights}, "do not fit the model"),
        (FACTORY, {"name": "a/b"}, "--name 'a/b'"),
    ]:
        with pytest.raises(RBError, match=message):
            from_factory(spec, **{"name": "mine", **kwargs})
    with pytest.raises(RBError, match="taken by another defense"):
        Runner(profile="quick", results_dir=tmp_path).prepare(
            ["pgd"], [UserModel(mnist_cnn(), name="none")]
        )


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for args, message in [
        (["run", "-a", "pgd"], "give --defense (-d) or --model"),
        (["run", "-a", "pgd", "-d", "none", "--name", "x"], "--name given without --model"),
        (["run", "-a", "pgd", "--model", FACTORY], "--model needs --name"),
        (["run", "-a", "pgd", "--model", FACTORY, "--name", "x", "--results", str(tmp_path)],
         "near chance"),  # an untrained model: no --weights
    ]:  # fmt: skip
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def _damaged(weights: Path, target: Path) -> Path:
    model = _model(weights)
    with torch.no_grad():
        model[-1].bias[:3] = -100.0  # never predicts 0, 1 or 2: clean accuracy falls by ~0.3
    save_model(model, str(target))
    return target


def test_rb_check_guards_the_model(weights: Path, tmp_path: Path, capsys) -> None:
    model = ["--model", FACTORY, "--name", "mine"]
    assert main(["-q", "run", *model, "--weights", str(weights), "-a", "pgd", "--eps", "0.05",
                 "--profile", "quick", "--n", N, "--results", str(tmp_path)]) == 0  # fmt: skip
    baseline = str(tmp_path / "mnist-5k" / "quick" / "leaderboard.csv")
    capsys.readouterr()
    assert main(["-q", "check", *model, "--weights", str(weights), "--baseline", baseline]) == 0
    assert "rb check passed" in capsys.readouterr().out
    damaged = str(_damaged(weights, tmp_path / "damaged.safetensors"))
    assert main(["-q", "check", *model, "--weights", damaged, "--baseline", baseline]) == 1
    out = capsys.readouterr().out
    assert "FAIL: mine/pgd@eps=0.05" in out and "weights or declaration changed" in out
    assert main(["-q", "check", "--baseline", baseline]) == 2  # its cells need its model
    assert "pass that model with --model" in capsys.readouterr().err


def _block(path: Path, heading: str, language: str) -> str:
    """The first `language` code block under `heading` in `path`."""
    text = path.read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    block = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert block is not None, (path, heading, language)
    return block.group(1)


def _commands(text: str) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line]


def _readme_commands() -> list[str]:
    return _commands(_block(ROOT / "README.md", "## Evaluate your own model", "sh"))


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_documented_examples_write_to_a_folder_of_their_own() -> None:
    """Every documented own-model command and call names its own results folder, never the
    committed results/ (which `rb check` guards), and docs/own-model.md runs what README does."""
    commands = _readme_commands()
    assert commands == _commands(_block(ROOT / "docs/own-model.md", "# Your own model", "sh"))
    for command in commands[1:]:
        argv = command.split()
        assert argv[argv.index("--results") + 1] == "examples/results", command
    for path, heading in ((ROOT / "README.md", "## Evaluate your own model"),
                          (ROOT / "docs/own-model.md", "## From Python")):  # fmt: skip
        call = _block(path, heading, "python")
        assert "evaluate(" in call and 'results="examples/results"' in call, path
    assert "/examples/results/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.bench
def test_the_readme_example_runs_end_to_end_and_leaves_results_unchanged(tmp_path: Path) -> None:
    """The README's commands as written, in a copy of the repository's examples/ and results/:
    the example's row lands in examples/results/, and results/ (here and in the repository
    itself) is byte for byte what it was."""
    shutil.copytree(
        ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("*.safetensors")
    )
    shutil.copytree(ROOT / "results", tmp_path / "results")
    committed, before = _tree(ROOT / "results"), _tree(tmp_path / "results")
    assert committed == before and len(before) > 100
    commands = _readme_commands()
    assert commands[0] == "python examples/train_my_model.py"
    assert commands[1].startswith("rb run --model examples/my_model.py:build")
    rb = [sys.executable, "-m", "robustbench_lite.cli"]
    for command in commands:
        argv = command.split()
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else [*rb, "-q", *argv[1:]]
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    grid = tmp_path / "examples" / "results" / "mnist-5k" / "quick"
    board = (grid / "leaderboard.csv").read_text()
    assert board.splitlines()[1].startswith("my-model,200,")
    assert {p.name for p in (grid / "my-model").glob("*.json")} >= {"pgd.json", "square.json"}
    assert _tree(tmp_path / "results") == before  # not a byte of the committed grids moved
    assert _tree(ROOT / "results") == committed
