"""The protocol's second line (issue 21), tried with hostile plugins and user models: oracles that
die with their cell, counts no thread can race, a verdict no model copy can fool, names that never
become paths, and no command that destroys results."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_model

from robustbench_lite.cli.main import main
from robustbench_lite.errors import RBError
from tests._helpers import hostile, hostile_models
from tests.protocol.hostile_cells import cell, honest_again, small_runner


def test_an_oracle_dies_with_its_cell(
    more: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any]
) -> None:
    hostile.KeepOracle.kept.clear()
    with pytest.raises(RBError, match="none x hostile-stale@budget=50: attack hostile-keep "
                       r"queried the oracle of none x hostile-keep \(batch 0\) after that cell"):  # fmt: skip
        small_runner(tmp_path, rb_home).run(["hostile-keep", "hostile-stale"], ["none"])
    folder = tmp_path / "mnist-5k" / "quick" / "none"
    assert (folder / "hostile-keep.json").is_file()  # its own cell was honest
    assert not (folder / "hostile-stale@budget=50.json").exists()
    stale = hostile.KeepOracle.kept["oracle"]
    with pytest.raises(RBError, match="after that cell's run returned"):
        stale(torch.zeros(1, 1, 28, 28))
    assert not any(isinstance(v, torch.nn.Module) for v in _reachable(stale))
    honest_again(tmp_path, rb_home, honest)


def _reachable(oracle: Any) -> list[Any]:
    """Everything a plugin could dig out of a closed oracle's closure."""
    try:
        return [hostile.dig_module(oracle)]
    except LookupError:
        return []


MODELS = Path(__file__).parents[1] / "_helpers" / "hostile_models.py"


def test_threads_cannot_race_the_counter(
    more: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any]
) -> None:
    hostile.Threads.answers.clear()
    with pytest.raises(RBError, match=r"hostile-threads queried sample 0 .* over its budget of 50"):
        small_runner(tmp_path, rb_home).run(["hostile-threads"], ["none"])
    assert hostile.Threads.answers == [50]  # 8 threads, 50 answers in all, then refusals
    assert not (
        tmp_path / "mnist-5k" / "quick" / "none" / "hostile-threads@budget=50.json"
    ).exists()
    honest_again(tmp_path, rb_home, honest)


def test_a_thread_left_querying_after_run_is_refused_and_every_answer_counted(
    more: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any]
) -> None:
    hostile.Lingering.answers_before.clear()
    hostile.Lingering.answers_after.clear()
    hostile.Lingering.errors.clear()
    runner = small_runner(tmp_path, rb_home, budget=100_000)
    with pytest.raises(RBError, match=r"hostile-linger queried the oracle of .* after that cell's"):
        runner.run(["hostile-linger", "pgd"], ["none"])
    hostile.Lingering.thread.join(10)
    assert (
        hostile.Lingering.errors and "after that cell's run returned" in hostile.Lingering.errors[0]
    )
    record = cell(tmp_path, "hostile-linger@budget=100000")
    first = record["samples"]["clean_correct"].index(True)
    answered = len(hostile.Lingering.answers_before) + len(hostile.Lingering.answers_after)
    assert record["samples"]["queries"][first] == answered  # no answer went uncounted
    honest_again(tmp_path, rb_home, honest)


def test_an_attack_that_exits_fails_its_cell_with_one_line(
    registered: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(hostile.ReachModel, "trick", lambda *a: sys.exit(0))
    code = main(["-q", "run", "-a", "hostile-reach", "-d", "none", "--profile", "quick",
                 "--n", "20", "--results", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "none x hostile-reach: SystemExit(0) (raised by attack hostile-reach" in err


def _user_weights(baseline: torch.nn.Module, folder: Path) -> Path:
    """The quick baseline's weights in the hostile models' layout (the CNN as `net`)."""
    model = hostile_models.CopyCounter()
    model.net.load_state_dict(baseline.state_dict())
    path = folder / "hostile.safetensors"
    save_model(model, str(path))
    return path


def test_a_model_cannot_tell_the_attacked_copy_from_the_grader(
    tmp_path: Path, baseline: torch.nn.Module, capsys
) -> None:
    weights = str(_user_weights(baseline, tmp_path))
    common = ["-q", "run", "-a", "pgd", "--profile", "quick", "--n", "40", "--weights", weights,
              "--results", str(tmp_path)]  # fmt: skip
    assert main([*common, "--model", f"{MODELS}:copy_counter", "--name", "copycat"]) == 0
    honest_weights = tmp_path / "honest.safetensors"
    save_model(baseline, str(honest_weights))
    honest = [*common[:-4], "--weights", str(honest_weights), "--results", str(tmp_path)]
    assert main([*honest, "--model", "robustbench_lite.defenses:mnist_cnn", "--name", "cnn"]) == 0
    folder = tmp_path / "mnist-5k" / "quick"
    cheat = json.loads((folder / "copycat" / "pgd.json").read_text())
    plain = json.loads((folder / "cnn" / "pgd.json").read_text())
    assert cheat["samples"]["robust"] == plain["samples"]["robust"]  # no copy answers otherwise
    assert cheat["robust_acc"] <= 0.05


def test_copies_that_answer_differently_are_refused() -> None:
    """Whatever lets a model tell its instances apart: the verdict is re-predicted on the
    attacked instance, and any disagreement refuses the cell."""
    from robustbench_lite.protocol import evaluate as cell_module
    from robustbench_lite.protocol.recipe import ModelRecipe
    from robustbench_lite.protocol.registry import attack_class, instantiate
    from robustbench_lite.protocol.spec import CellSpec
    from robustbench_lite.protocol.threat_models import threat_model

    built: list[int] = []

    def alternating() -> torch.nn.Module:  # the grader honest, the attacked instance a liar
        built.append(1)
        model = hostile_models.CopyCounter()
        model.lies = len(built) % 2 == 0
        return model

    source = hostile_models.CopyCounter()
    recipe = ModelRecipe("liar", alternating, source.state_dict())
    x = torch.rand(8, 1, 28, 28)
    clean = source(x).argmax(dim=1)
    spec = CellSpec("liar", "pgd", threat_model("linf"), 0.3, None, 1, 1, False, 0, 8)
    attack = instantiate(attack_class("pgd"), "quick")
    with pytest.raises(RBError, match="answers the attacked instance and the grading instance"):
        cell_module.evaluate(spec, attack, recipe, x, clean, clean)


@pytest.mark.parametrize(
    ("factory", "command", "message"),
    [
        ("exits", "check", "model mine failed: SystemExit(0)"),
        ("grad_fails", "run", "model mine failed: RuntimeError: no gradients here"),
    ],
)
def test_model_code_that_exits_or_raises_is_one_line_and_exit_2(
    tmp_path: Path, baseline: torch.nn.Module, capsys, factory: str, command: str, message: str
) -> None:
    weights = str(_user_weights(baseline, tmp_path))
    model = ["--model", f"{MODELS}:copy_counter", "--name", "mine", "--weights", weights]
    assert main(["-q", "run", *model, "-a", "pgd", "--profile", "quick", "--n", "20",
                 "--results", str(tmp_path)]) == 0  # fmt: skip
    capsys.readouterr()
    model[1] = f"{MODELS}:{factory}"
    if command == "check":
        argv = [
            "-q",
            "check",
            *model,
            "--baseline",
            str(tmp_path / "mnist-5k/quick/leaderboard.csv"),
        ]
    else:
        argv = ["-q", "run", *model, "-a", "pgd", "--profile", "quick", "--n", "20",
                "--results", str(tmp_path / "other")]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
