"""Data keys are full hashes: every record holds the full SHA-256 of the data it was computed on
(`data_sha256`), and a result is reused only on data with the same hash, for in-memory tensors,
files and folders alike; records older than the field still count on a registered dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import robustbench_lite
from robustbench_lite.data import Dataset
from robustbench_lite.protocol.registry import data_source
from robustbench_lite.running.grid.runner import Runner
from robustbench_lite.running.own import data as own_data
from robustbench_lite.running.own.data import TensorSource, data_key, from_path, from_tensors
from robustbench_lite.running.own.model import UserModel
from robustbench_lite.store.files import seal
from robustbench_lite.store.reuse import DataKey, is_current

HEX64 = re.compile(r"[0-9a-f]{64}")


def _digits(mnist_test: Dataset, n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    return mnist_test.x[:n].clone(), mnist_test.y[:n].clone()


def _records(root: Path, dataset: str, defense: str) -> dict[str, dict[str, Any]]:
    folder = root / dataset / "quick" / defense
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def _strip_data_sha256(path: Path) -> None:
    """Make `path` look like a committed record, written before the field existed."""
    record = json.loads(path.read_text())
    del record["data_sha256"]
    path.write_text(json.dumps(seal(record)))


def test_the_hash_is_of_the_decoded_content_and_computed_once(mnist_test: Dataset) -> None:
    x, y = _digits(mnist_test)
    source = from_tensors(x, y)
    digest = source.content_sha256()
    assert HEX64.fullmatch(digest)
    assert from_tensors(x.clone(), y.clone()).content_sha256() == digest  # content, not object
    relabelled = y.clone()
    relabelled[0] = (relabelled[0] + 1) % 10
    assert from_tensors(x, relabelled).content_sha256() != digest
    pixel = x.clone()
    pixel[3, 0, 5, 5] = 1.0 - pixel[3, 0, 5, 5]
    assert from_tensors(pixel, y).content_sha256() != digest
    source._splits["test"] = (pixel, relabelled)  # cached: the data are hashed once per source
    assert source.content_sha256() == digest


def test_a_registered_dataset_is_pinned_and_a_users_data_never(mnist_test: Dataset) -> None:
    mnist = data_source("mnist-5k")
    key = data_key(mnist)
    assert key.pinned and key.sha256 == mnist_test.sha256()
    own = TensorSource("mnist-5k", (mnist_test.x, mnist_test.y))  # a registered name, user data
    assert not data_key(own).pinned and data_key(own).sha256 == key.sha256
    old = None  # the data_sha256 of a record older than the field
    assert key.matches(old) and not data_key(own).matches(old)
    assert key.matches(key.sha256)
    assert not key.matches("0" * 64)


def test_in_memory_tensors_with_changed_labels_are_recomputed(
    baseline: nn.Module, mnist_test: Dataset, tmp_path: Path
) -> None:
    x, y = _digits(mnist_test)

    def evaluate(labels: torch.Tensor) -> dict[str, dict[str, Any]]:
        robustbench_lite.evaluate(
            baseline, name="mine", attacks=["pgd"], dataset=(x, labels), profile="quick",
            results=tmp_path,
        )  # fmt: skip
        return _records(tmp_path, "my-data", "mine")

    first = evaluate(y)
    changed = y.clone()
    changed[:6] = (changed[:6] + 1) % 10  # six digits now carry a wrong label
    second = evaluate(changed)
    for records, labels in ((first, y), (second, changed)):
        assert records["pgd"]["data_sha256"] == from_tensors(x, labels).content_sha256()
        assert records["diagnostics"]["data_sha256"] == records["pgd"]["data_sha256"]
        assert HEX64.fullmatch(records["pgd"]["data_sha256"])
    assert first["pgd"]["data_sha256"] != second["pgd"]["data_sha256"]
    # a user's data keys its models by content too (a model trained on it must not be reused)
    assert first["pgd"]["config"]["model_key"] != second["pgd"]["config"]["model_key"]
    with torch.no_grad():
        correct = (baseline.eval()(x).argmax(1) == changed).double().mean().item()
    assert second["pgd"]["clean_acc"] == pytest.approx(correct)
    assert second["pgd"]["clean_acc"] <= first["pgd"]["clean_acc"] - 5 / len(y)


def test_a_file_with_other_content_under_the_same_name_is_not_reused(
    baseline: nn.Module, mnist_test: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _digits(mnist_test, 20)
    # Two files whose names collide (as 32 bits of a hash can): the same results folder.
    monkeypatch.setattr(own_data, "file_name", lambda path: "digits-00000000")
    np.savez(tmp_path / "a.npz", x=x.numpy(), y=y.numpy())
    flipped = y.clone()
    flipped[:5] = (flipped[:5] + 3) % 10
    np.savez(tmp_path / "b.npz", x=x.numpy(), y=flipped.numpy())

    def run(name: str) -> Runner:
        runner = Runner(
            dataset=str(tmp_path / name), profile="quick", results_dir=tmp_path / "r", quiet=True
        )
        runner.run(["pgd"], [UserModel(baseline, name="mine")])
        return runner

    assert len(run("a.npz").computed) == 1
    again = run("a.npz")
    assert (len(again.reused), len(again.computed)) == (1, 0)  # the same data: reused
    other = run("b.npz")
    assert (len(other.reused), len(other.computed)) == (0, 1)
    cell = _records(tmp_path / "r", "digits-00000000", "mine")["pgd"]
    assert cell["data_sha256"] == from_path(tmp_path / "b.npz").content_sha256()
    # A record without the field (as if committed before it) is never reused on a user's file.
    _strip_data_sha256(tmp_path / "r" / "digits-00000000" / "quick" / "mine" / "pgd.json")
    after = run("b.npz")
    assert (len(after.reused), len(after.computed)) == (0, 1)


def test_a_committed_record_without_the_field_is_still_reused_on_mnist5k(tmp_path: Path) -> None:
    def run() -> Runner:
        runner = Runner(profile="quick", n=20, results_dir=tmp_path, quiet=True)
        runner.run(["pgd"], ["none", "ibp"])
        return runner

    assert len(run().computed) == 2
    digest = data_source("mnist-5k").content_sha256()
    for defense in ("none", "ibp"):
        records = _records(tmp_path, "mnist-5k", defense)
        assert {r["data_sha256"] for r in records.values()} == {digest}
    assert {"pgd", "diagnostics", "certified"} <= set(records)  # cells, diagnostics, certificates
    folder = tmp_path / "mnist-5k" / "quick"
    old = [folder / "none" / "pgd.json", folder / "ibp" / "certified.json"]
    for path in old:
        _strip_data_sha256(path)
    before = [path.read_text() for path in old]
    again = run()
    assert (len(again.reused), len(again.computed)) == (2, 0)
    assert [path.read_text() for path in old] == before  # the certificate was not rewritten
    diagnostics = folder / "none" / "diagnostics.json"
    digest_of = json.loads(diagnostics.read_text())["config_hash"]
    assert is_current(diagnostics, digest_of, data=DataKey(digest, pinned=False))
    assert not is_current(diagnostics, digest_of, data=DataKey("0" * 64, pinned=True))
    _strip_data_sha256(diagnostics)
    assert is_current(diagnostics, digest_of, data=DataKey(digest, pinned=True))
    assert not is_current(diagnostics, digest_of, data=DataKey(digest, pinned=False))


def test_a_model_trained_on_a_users_data_is_keyed_by_its_content(mnist_test: Dataset) -> None:
    from robustbench_lite.protocol.registry import defense_class, instantiate
    from robustbench_lite.protocol.spec import profile_named
    from robustbench_lite.running.grid.plan import RunPlan

    x, y = _digits(mnist_test)
    changed = y.clone()
    changed[0] = (changed[0] + 1) % 10
    defense = instantiate(defense_class("none"), "quick")

    def key(train_labels: torch.Tensor, source_name: str = "my-data") -> str:
        source = TensorSource(source_name, (x, y), (x, train_labels))
        return RunPlan(source=source, profile=profile_named("quick")).model_key(defense)[0]

    assert key(y) == key(y.clone())
    assert key(y) != key(changed)  # one training label changed: another model, trained anew
    registered = RunPlan(source=data_source("mnist-5k"), profile=profile_named("quick"))
    assert "data_sha256" not in registered.model_key(defense)[1]  # the zoo's keys stay
