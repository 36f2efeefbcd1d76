"""Received files and packages that claim too much or too little: each is one clear line naming
the real cause (image too large, header claims N elements, labels beyond the most classes taken,
an empty class folder, images too small for a model, a bad zoo manifest entry) with exit 2 and no
warning before it, and a bad entry point disables that plugin only, with one warning line."""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_lite.cli.main import main
from robustbench_lite.errors import RBError
from robustbench_lite.protocol import registry
from robustbench_lite.running.own.data import MAX_ELEMENTS, from_path, from_tensors
from robustbench_lite.store.zoo import ZOO, Zoo


def _run_on(
    data: Path, results: Path, capsys: pytest.CaptureFixture[str], *, up_front: bool = True
) -> str:
    """`rb run` on `data`: exit 2 with one line on stderr and no warning, and when the data are
    refused `up_front`, before the results folder is made; that line."""
    argv = ["run", "-a", "pgd", "-d", "none", "--profile", "quick", "--dataset", str(data),
            "--results", str(results)]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rb: error: "), err
    assert [str(w.message) for w in caught] == []
    assert not (up_front and results.exists())
    return err


def _png(path: Path, width: int, height: int) -> None:
    """A grayscale PNG whose header claims width x height pixels (its data hold far fewer)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def _folder(root: Path, classes: dict[str, int]) -> Path:
    """An image folder with `classes[name]` 8x8 grayscale images per class."""
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    return root


def _npy(shape: tuple[int, ...], descr: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


# -- data files --------------------------------------------------------------------------------


def test_a_png_claiming_40000x40000_pixels_is_refused_before_decoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _folder(tmp_path / "images", {"cat": 2, "dog": 2})
    _png(data / "dog" / "huge.png", 40000, 40000)
    err = _run_on(data, tmp_path / "r", capsys)
    assert "image too large" in err and "huge.png" in err and "40000x40000" in err
    assert Image.MAX_IMAGE_PIXELS is not None  # PIL's own limit is back in place


def test_an_npz_header_claiming_1e12_elements_is_refused_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", _npy((10**6, 1, 1000, 1000), "|u1", b"\0" * 64))
        archive.writestr("y.npy", _npy((4,), "<i8", bytes(32)))
    err = _run_on(path, tmp_path / "r", capsys)
    assert "x.npy's header claims 1000000000000 elements" in err
    lying = tmp_path / "lying.npz"  # within the limit, but more than the member holds
    with zipfile.ZipFile(lying, "w") as archive:
        archive.writestr("x.npy", _npy((1000, 1, 28, 28), "|u1", b"\0" * 64))
        archive.writestr("y.npy", _npy((4,), "<i8", bytes(32)))
    with pytest.raises(RBError, match=r"header claims 784000 elements .* but it holds 64 bytes"):
        from_path(lying)


def test_a_safetensors_header_claiming_too_many_elements_is_refused(tmp_path: Path) -> None:
    header = {"x": {"dtype": "U8", "shape": [10**6, 1, 1000, 1000], "data_offsets": [0, 16]}}
    text = json.dumps(header).encode()
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(16))
    with pytest.raises(RBError, match=r"x's header claims 1000000000000 elements"):
        from_path(path)
    assert MAX_ELEMENTS < 10**12


def test_a_label_of_2_to_the_40_is_not_taken_as_that_many_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.zeros((4, 1, 8, 8), np.uint8)
    np.savez(tmp_path / "labels.npz", x=x, y=np.array([0, 1, 2**40, 1]))
    err = _run_on(tmp_path / "labels.npz", tmp_path / "r", capsys)
    assert "labels must lie in 0..K-1 for at most K = 100000 classes" in err
    assert str(2**40) in err
    with pytest.raises(RBError, match="at most K = 100000"):
        from_tensors(torch.from_numpy(x), torch.tensor([0, 1, 2**40, 1]))
    assert from_tensors(torch.from_numpy(x), torch.tensor([0, 1, 99_999, 1])).num_classes == 100_000


@pytest.mark.parametrize("empty", ["zebra", "ant"])
def test_an_empty_class_folder_is_refused_not_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], empty: str
) -> None:
    data = _folder(tmp_path / "images", {"cat": 2, "dog": 2, empty: 0})
    err = _run_on(data, tmp_path / "r", capsys)
    assert f"empty class folder {empty}" in err


@pytest.mark.parametrize(
    ("train", "message"), [(False, "has no train split"), (True, "too small for its architecture")]
)
def test_1x2x2_images_fail_with_one_line_and_no_torch_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], train: bool, message: str
) -> None:
    rng = np.random.default_rng(0)
    arrays = {"x": rng.integers(0, 256, (8, 1, 2, 2), np.uint8), "y": np.arange(8) % 2}
    if train:
        arrays |= {"x_train": rng.integers(0, 256, (40, 1, 2, 2), np.uint8)}
        arrays |= {"y_train": np.arange(40) % 2}
    np.savez(tmp_path / "tiny.npz", **arrays)
    err = _run_on(tmp_path / "tiny.npz", tmp_path / "r", capsys, up_front=False)
    assert message in err and ("1x2x2" in err or not train)


# -- the zoo manifest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"derived": "candidates"}, "derived must be a list of strings, got 'candidates'"),
        ({"derived": [1]}, "derived must be a list of strings"),
        ({"parameters": "many"}, "parameters must be an integer"),
        ({"defense": None}, "defense must be a string, got None"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_a_bad_zoo_manifest_entry_is_one_clear_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    message: str,
) -> None:
    shipped = json.loads((ZOO / "manifest.json").read_text())["models"]
    manifest = {"models": [shipped[0], {**shipped[1], **change}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RBError, match=f"zoo manifest entry 1 .*: {message}"):
        Zoo(tmp_path).entries()
    monkeypatch.setenv("RB_ZOO", str(tmp_path))
    assert main(["list", "--models"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "zoo manifest entry 1" in err and message in err


# -- entry points ------------------------------------------------------------------------------


def _with_entry_points(
    monkeypatch: pytest.MonkeyPatch, *extra: importlib.metadata.EntryPoint
) -> None:
    real = importlib.metadata.entry_points

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), *(e for e in extra if e.group == group)]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_warned", set())  # a fresh process, as far as warnings go


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_bad_entry_point_name_disables_that_plugin_only(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = importlib.metadata.EntryPoint(
        "\x1b[2Jbad name", "tests._helpers.hostile:ReachModel", registry.ATTACK_GROUP
    )
    _with_entry_points(monkeypatch, bad)
    caplog.set_level(logging.WARNING)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "attack   pgd" in out and "defense  none" in out and "bad name" not in out
    assert "bad name" not in " ".join(registry.attack_names())
    warned = _warnings(caplog)
    assert len(warned) == 1, warned  # once per process, however often the names are read
    assert "registers robustbench_lite.attacks entry point" in warned[0]
    assert "disabled" in warned[0] and "\x1b" not in warned[0] and "\n" not in warned[0]
    assert registry.attack_class("pgd").name == "pgd"


def test_a_duplicate_name_disables_the_intruder_or_the_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    group = registry.ATTACK_GROUP
    _with_entry_points(
        monkeypatch,
        importlib.metadata.EntryPoint("pgd", "thirdparty.attack:Other", group),
        importlib.metadata.EntryPoint("dup", "one.attack:A", group),
        importlib.metadata.EntryPoint("dup", "two.attack:B", group),
        importlib.metadata.EntryPoint("pgd-copy", "robustbench_lite.attacks.pgd:PGD", group),
    )
    caplog.set_level(logging.WARNING)
    names = registry.attack_names()
    assert "pgd" in names and "dup" not in names and "pgd-copy" in names and "square" in names
    assert registry.attack_class("pgd").__module__ == "robustbench_lite.attacks.pgd"
    registry.attack_names()
    warned = _warnings(caplog)
    assert len(warned) == 2, warned
    assert any("duplicate plugin name 'pgd'" in w and "built-in" in w for w in warned)
    assert any("duplicate plugin name 'dup'" in w and "disabled" in w for w in warned)
    with pytest.raises(RBError, match="unknown attack 'dup'"):
        registry.attack_class("dup")
