"""Hostile plugins against the protocol: each is refused or harmless, and an honest cell run
beside them is unchanged. Plugins are registered through entry points, as a third party's are."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_model

from robustbench_lite.cli.main import main
from robustbench_lite.errors import RBError
from robustbench_lite.protocol import registry
from robustbench_lite.protocol.evaluate import predict
from robustbench_lite.report import leaderboard, tables
from robustbench_lite.running.runner import Runner
from robustbench_lite.store.files import seal
from robustbench_lite.store.models import ModelCache
from tests import doubles, hostile, hostile_models

HOSTILE = [
    hostile.ReachModel,
    hostile.GradThroughScores,
    hostile.LabelsPeek,
    hostile.Overspend,
    hostile.RoundRobin,
    hostile.ZeroLastLayer,
    hostile.TrainMode,
    hostile.InPlaceX,
    hostile.InPlaceY,
    hostile.Malformed,
]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.entry_points
    extra = [
        importlib.metadata.EntryPoint(c.name, f"tests.hostile:{c.__name__}", registry.ATTACK_GROUP)
        for c in HOSTILE
    ]

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), *(extra if group == registry.ATTACK_GROUP else [])]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _runner(root: Path, rb_home: Path, **kwargs: Any) -> Runner:
    settings = {"profile": "quick", "n": 40, "quiet": True, "budget": 50, **kwargs}
    return Runner(results_dir=root, cache=ModelCache(rb_home), **settings)


def _cell(root: Path, name: str) -> dict[str, Any]:
    return json.loads((root / "mnist-5k" / "quick" / "none" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory, rb_home: Path) -> dict[str, Any]:
    """The honest pgd cell on the same samples, made before any hostile plugin ran."""
    root = tmp_path_factory.mktemp("honest")
    _runner(root, rb_home).run(["pgd"], ["none"])
    return _cell(root, "pgd")


def _honest_again(root: Path, rb_home: Path, honest: dict[str, Any]) -> None:
    """After a hostile plugin, an honest cell in the same folder gives the same per-sample arrays."""
    _runner(root, rb_home).run(["pgd"], ["none"])
    assert _cell(root, "pgd")["samples"] == honest["samples"]


def test_the_oracle_offers_no_model_and_no_counts(
    registered: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any]
) -> None:
    hostile.ReachModel.seen.clear()
    _runner(tmp_path, rb_home).run(["hostile-reach"], ["none"])
    assert hostile.ReachModel.seen and all(h == [] for h in hostile.ReachModel.seen)
    record = _cell(tmp_path, "hostile-reach@budget=50")
    assert record["robust_acc"] == record["clean_acc"]  # nothing to run white-box steps through
    assert set(record["samples"]["queries"]) <= {0, 1}
    _honest_again(tmp_path, rb_home, honest)


def test_a_scores_attack_cannot_take_gradients(
    registered: None, tmp_path: Path, rb_home: Path
) -> None:
    with pytest.raises(RBError, match="hostile-grad declares scores access but asked for grad"):
        _runner(tmp_path, rb_home).run(["hostile-grad"], ["none"])


def test_a_labels_attack_sees_labels_only(
    registered: None, tmp_path: Path, rb_home: Path, baseline: torch.nn.Module, mnist_test
) -> None:
    hostile.LabelsPeek.seen.clear()
    _runner(tmp_path, rb_home).run(["hostile-labels"], ["none"])
    (answer,) = hostile.LabelsPeek.seen
    assert not answer.requires_grad
    assert set(answer.unique().tolist()) <= {0.0, 1.0} and bool((answer.sum(dim=1) == 1).all())
    record = _cell(tmp_path, "hostile-labels@budget=50")
    keep = torch.tensor(record["samples"]["clean_correct"])
    expected = predict(baseline, mnist_test.x[:40][keep])
    assert answer.argmax(dim=1).tolist() == expected.tolist()


@pytest.mark.parametrize("name", ["hostile-overspend", "hostile-roundrobin"])
def test_queries_over_budget_are_refused_at_the_call(
    registered: None, tmp_path: Path, rb_home: Path, name: str
) -> None:
    with pytest.raises(RBError, match=f"attack {name} queried sample .* over its budget of 50"):
        _runner(tmp_path, rb_home).run([name], ["none"])
    assert not (tmp_path / "mnist-5k" / "quick" / "none" / f"{name}.json").exists()


@pytest.mark.parametrize("name", ["hostile-zero", "hostile-train"])
def test_tampering_with_the_attacked_model_refuses_the_cell(
    registered: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any], name: str
) -> None:
    with pytest.raises(RBError, match=f"attack {name} changed the model it attacked"):
        _runner(tmp_path, rb_home).run([name, "pgd"], ["none"])
    assert not (tmp_path / "mnist-5k" / "quick" / "none" / f"{name}.json").exists()
    _honest_again(tmp_path, rb_home, honest)


def test_overwriting_x_in_place_is_graded_against_the_runners_own_x(
    registered: None, tmp_path: Path, rb_home: Path, baseline: torch.nn.Module, mnist_test
) -> None:
    _runner(tmp_path, rb_home, save_adv=True).run(["hostile-inplace-x"], ["none"])
    record = _cell(tmp_path, "hostile-inplace-x")
    path = tmp_path / "mnist-5k" / "quick" / "none" / "hostile-inplace-x.adv.safetensors"
    x_adv = load_file(str(path))["x_adv"]
    x, y = mnist_test.x[:40], mnist_test.y[:40]
    assert float((x_adv - x).abs().amax()) <= 0.3 + 1e-6  # projected around the real digits
    robust = (predict(baseline, x_adv) == y) & torch.tensor(record["samples"]["clean_correct"])
    assert record["samples"]["robust"] == robust.tolist()
    distance = [d for d in record["samples"]["distance"] if d is not None]
    assert distance and min(distance) > 0.0


def test_changing_y_in_place_changes_nothing(
    registered: None, tmp_path: Path, rb_home: Path
) -> None:
    _runner(tmp_path, rb_home).run(["hostile-inplace-y"], ["none"])
    record = _cell(tmp_path, "hostile-inplace-y")
    assert record["samples"]["robust"] == record["samples"]["clean_correct"]


@pytest.mark.parametrize(
    "shape",
    ["3-tuple", "meta", "sparse", "list", "0-d extra", "list extra", "nan extra", "short extra"],
)
def test_a_malformed_return_is_a_clear_error(
    registered: None, tmp_path: Path, rb_home: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    monkeypatch.setattr(hostile.Malformed, "shape", shape)
    with pytest.raises(RBError, match="attack hostile-malformed"):
        _runner(tmp_path, rb_home).run(["hostile-malformed"], ["none"])


# -- the protocol's second line (issue 21) ----------------------------------------------------

MORE = [
    hostile.KeepOracle,
    hostile.StaleOracle,
    hostile.Threads,
    hostile.Lingering,
    hostile.Cheat,
]
MODELS = Path(__file__).parents[1] / "hostile_models.py"


@pytest.fixture
def more(monkeypatch: pytest.MonkeyPatch) -> None:
    doubles.register(monkeypatch, **{c.name: f"tests.hostile:{c.__name__}" for c in MORE})


def test_an_oracle_dies_with_its_cell(
    more: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any]
) -> None:
    hostile.KeepOracle.kept.clear()
    with pytest.raises(RBError, match="none x hostile-stale@budget=50: attack hostile-keep "
                       r"queried the oracle of none x hostile-keep \(batch 0\) after that cell"):  # fmt: skip
        _runner(tmp_path, rb_home).run(["hostile-keep", "hostile-stale"], ["none"])
    folder = tmp_path / "mnist-5k" / "quick" / "none"
    assert (folder / "hostile-keep.json").is_file()  # its own cell was honest
    assert not (folder / "hostile-stale@budget=50.json").exists()
    stale = hostile.KeepOracle.kept["oracle"]
    with pytest.raises(RBError, match="after that cell's run returned"):
        stale(torch.zeros(1, 1, 28, 28))
    assert not any(isinstance(v, torch.nn.Module) for v in _reachable(stale))
    _honest_again(tmp_path, rb_home, honest)


def _reachable(oracle: Any) -> list[Any]:
    """Everything a plugin could dig out of a closed oracle's closure."""
    try:
        return [hostile.dig_module(oracle)]
    except LookupError:
        return []


def test_threads_cannot_race_the_counter(
    more: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any]
) -> None:
    hostile.Threads.answers.clear()
    with pytest.raises(RBError, match=r"hostile-threads queried sample 0 .* over its budget of 50"):
        _runner(tmp_path, rb_home).run(["hostile-threads"], ["none"])
    assert hostile.Threads.answers == [50]  # 8 threads, 50 answers in all, then refusals
    assert not (
        tmp_path / "mnist-5k" / "quick" / "none" / "hostile-threads@budget=50.json"
    ).exists()
    _honest_again(tmp_path, rb_home, honest)


def test_a_thread_left_querying_after_run_is_refused_and_every_answer_counted(
    more: None, tmp_path: Path, rb_home: Path, honest: dict[str, Any]
) -> None:
    hostile.Lingering.answers_before.clear()
    hostile.Lingering.answers_after.clear()
    hostile.Lingering.errors.clear()
    runner = _runner(tmp_path, rb_home, budget=100_000)
    with pytest.raises(RBError, match=r"hostile-linger queried the oracle of .* after that cell's"):
        runner.run(["hostile-linger", "pgd"], ["none"])
    hostile.Lingering.thread.join(10)
    assert (
        hostile.Lingering.errors and "after that cell's run returned" in hostile.Lingering.errors[0]
    )
    record = _cell(tmp_path, "hostile-linger@budget=100000")
    first = record["samples"]["clean_correct"].index(True)
    answered = len(hostile.Lingering.answers_before) + len(hostile.Lingering.answers_after)
    assert record["samples"]["queries"][first] == answered  # no answer went uncounted
    _honest_again(tmp_path, rb_home, honest)


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


@pytest.mark.parametrize("name", ["../../../../escaped-attack", "\x1b[2Jevil", "a/b"])
def test_a_plugin_name_must_be_an_identifier(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys, name: str
) -> None:
    doubles.register(monkeypatch, **{name: "tests.hostile:ReachModel"})
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert (
        "\x1b" not in err and err.count("\n") == 1 and "registers robustbench_lite.attacks" in err
    )
    assert main(["-q", "run", "-a", "pgd", "-d", "none", "--profile", "quick", "--n", "10",
                 "--results", str(tmp_path / "r")]) == 2  # fmt: skip
    assert not list(tmp_path.parent.glob("escaped*")) and not (tmp_path / "r").exists()


def test_control_characters_never_reach_the_terminal(capsys) -> None:
    assert main(["run", "-a", "spatial", "-d", "none", "--set", "spatial.mode=\x1b[2J\x07x"]) == 2
    err = capsys.readouterr().err
    assert "mode must be one of" in err and "\x1b" not in err and "\x07" not in err


def test_rb_site_never_writes_over_or_removes_results(tmp_path: Path, rb_home: Path) -> None:
    _runner(tmp_path / "results", rb_home, n=10).run(["pgd"], ["none"])
    before = sorted(p for p in (tmp_path / "results").rglob("*") if p.is_file())
    for out in (tmp_path / "results", tmp_path / "results" / "mnist-5k", tmp_path):
        assert main(["site", "--results", str(tmp_path / "results"), "--out", str(out)]) == 2
    assert sorted(p for p in (tmp_path / "results").rglob("*") if p.is_file()) == before
    site = tmp_path / "site"
    (site / "mnist-5k" / "quick").mkdir(parents=True)
    mine = site / "mnist-5k" / "quick" / "my-notes.png"
    mine.write_bytes(b"not the site's")
    for _ in range(2):  # a rebuild removes what the last build wrote, and nothing else
        assert main(["-q", "site", "--results", str(tmp_path / "results"), "--out", str(site)]) == 0
    assert mine.read_bytes() == b"not the site's"
    assert (site / "mnist-5k" / "quick" / "none.html").is_file()


def _edit(path: Path, change: Any) -> None:
    """Change a sealed record and re-seal it: the content hash passes, the content does not."""
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(seal(record)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(robust_acc=0.9), "its robust_acc 0.9 contradicts its per-sample"),
        (lambda r: r.update(clean_acc="0.95"), "its clean_acc '0.95' contradicts"),
        (lambda r: r["samples"]["robust"].pop(), "its per-sample 'robust' is not a list of 40"),
        (
            lambda r: r["samples"]["queries"].__setitem__(0, "3"),
            "its per-sample 'queries' holds entries of",
        ),
    ],
)
def test_a_cell_that_contradicts_itself_is_refused(
    tmp_path: Path, rb_home: Path, capsys, change: Any, message: str
) -> None:
    _runner(tmp_path, rb_home).run(["pgd"], ["none"])
    folder = tmp_path / "mnist-5k" / "quick"
    _edit(folder / "none" / "pgd.json", change)
    with pytest.raises(RBError, match=f"refusing result file .*pgd.json: {message}"):
        leaderboard.build(folder)
    assert main(["-q", "check", "--baseline", str(folder / "leaderboard.csv")]) == 2
    err = capsys.readouterr().err
    assert message.split(" ")[1] in err and err.count("\n") == 1


def test_missing_or_edited_diagnostics_are_a_flag_and_stray_files_a_warning(
    tmp_path: Path, rb_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _runner(tmp_path, rb_home).run(["pgd"], ["none"])
    folder = tmp_path / "mnist-5k" / "quick"
    diagnostics = folder / "none" / "diagnostics.json"
    assert "no-diagnostics" not in leaderboard.build(folder).loc[0, "flags"]
    (folder / "none" / "notes.json").write_text('{"my": "notes"}')
    _edit(diagnostics, lambda r: r.update(unbounded_success=0.5))  # numbers without their flag
    assert "no-diagnostics" in leaderboard.build(folder).loc[0, "flags"]
    assert "notes.json is not a result file rb wrote: ignored" in caplog.text
    diagnostics.unlink()
    assert "no-diagnostics" in leaderboard.build(folder).loc[0, "flags"]


def test_overrides_are_visible_in_the_cell_name_and_footnoted(
    tmp_path: Path, rb_home: Path
) -> None:
    board = _runner(tmp_path, rb_home, n=20, budget=1, settings={"pgd": {"steps": 1}}).run(
        ["square", "pgd"], ["none"]
    )
    assert {"square@budget=1", "pgd@steps=1"} <= set(board.columns)
    assert "square" not in board.columns and "pgd" not in board.columns
    assert tables.OVERRIDE_NOTE in tables.to_markdown(board)
    plain = _runner(tmp_path, rb_home, n=20, budget=None).run(["square"], ["none"])
    assert plain.loc[0, "square"] < plain.loc[0, "square@budget=1"]


def test_a_success_without_queries_is_flagged(
    more: None, tmp_path: Path, rb_home: Path, baseline: torch.nn.Module, mnist_test
) -> None:
    honest_board = _runner(tmp_path, rb_home, save_adv=True).run(["pgd"], ["none"])
    assert "zero-query-success" not in honest_board.loc[0, "flags"]
    folder = tmp_path / "mnist-5k" / "quick"
    x_adv = load_file(str(folder / "none" / "pgd.adv.safetensors"))["x_adv"]
    correct = torch.tensor(_cell(tmp_path, "pgd")["samples"]["clean_correct"])
    hostile.Cheat.sheet = x_adv[correct]
    board = _runner(tmp_path, rb_home).run(["hostile-cheat"], ["none"])
    record = _cell(tmp_path, "hostile-cheat@budget=50")
    assert record["robust_acc"] < 0.1 and set(record["samples"]["queries"]) == {0}
    assert "zero-query-success" in board.loc[0, "flags"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--eps", "spatial:1e308", "-a", "spatial"], "spatial eps must be at most 1"),
        (["--eps", "l2:1e308", "-a", "pgd-l2"], "l2 eps must be at most 28, the diameter"),
        (["-a", "pgd", "--set", "steps=1e30"], "out of an integer's range"),
        (["-a", "pgd", "--set", "steps=1.5"], "expected an integer, got '1.5'"),
    ],
)
def test_budgets_beyond_the_threat_model_are_refused_up_front(
    tmp_path: Path, capsys, argv: list[str], message: str
) -> None:
    assert main(["run", "-d", "none", "--results", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "mnist-5k").exists()
