"""A user's own data as a dataset: a `.safetensors` or `.npz` file holding `x` (N, C, H, W; uint8,
or floats in [0, 1]) and `y` (N labels 0..K-1), optionally `x_train` and `y_train`; an image
folder `PATH/<class>/*.png`; or, from Python, tensors or a torch `Dataset`. Everything is checked
before any work (one line, exit 2 on a bad file, shape, range or label); files load without
running code (no pickles: `.npz` is read with allow_pickle=False)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustbench_lite.data import Dataset, Shape, check_split, checked
from robustbench_lite.errors import RBError
from robustbench_lite.protocol import TM, DataSource
from robustbench_lite.protocol.registry import data_source, dataset_names

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def default_eps(shape: Shape) -> dict[TM, float]:
    """Budgets for data of this shape: MNIST's for grayscale, CIFAR's for colour."""
    if shape[0] == 1:
        return {TM.LINF: 0.3, TM.L2: 1.5, TM.SPATIAL: 1.0}
    return {TM.LINF: 8 / 255, TM.L2: 0.5, TM.SPATIAL: 1.0}


class TensorSource(DataSource):
    """A dataset held in tensors: a test split, and a training split where given."""

    def __init__(
        self,
        name: str,
        test: tuple[torch.Tensor, torch.Tensor],
        train: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        num_classes: int | None = None,
        eps: Mapping[TM, float] | None = None,
        origin: str = "tensors handed in from Python",
    ) -> None:
        x, y = checked(*test, what=name, num_classes=num_classes)
        classes = num_classes or int(y.max()) + 1
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {"test": (x, y)}
        if train is not None:
            tx, ty = checked(*train, what=f"{name} (train)", num_classes=classes)
            if tuple(tx.shape[1:]) != tuple(x.shape[1:]):
                raise RBError(
                    f"{name}: train images {tuple(tx.shape[1:])} vs test {tuple(x.shape[1:])}"
                )
            self._splits["train"] = (tx, ty)
        self.name = name  # type: ignore[misc]
        self.shape = tuple(int(s) for s in x.shape[1:])  # type: ignore[misc,assignment]
        self.num_classes = classes  # type: ignore[misc]
        self.splits = tuple(self._splits)  # type: ignore[misc]
        self.eps = dict(eps or default_eps(self.shape))  # type: ignore[misc]
        self.origin = origin  # type: ignore[misc]

    def load(self, split: str) -> Dataset:
        check_split(self, split)
        x, y = self._splits[split]
        return Dataset(self.name, split, x, y, self.num_classes)


def from_tensors(x: Any, y: Any | None = None, *, name: str = "my-data") -> TensorSource:
    """`evaluate(model, dataset=(x, y))` or a torch Dataset of (image, label) pairs."""
    if y is None:
        if not (hasattr(x, "__len__") and hasattr(x, "__getitem__")):
            raise RBError("dataset= takes (x, y) tensors or a torch Dataset of (image, label)")
        pairs = [x[i] for i in range(len(x))]
        if not pairs:
            raise RBError("dataset= is an empty Dataset")
        x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        y = torch.as_tensor([int(p[1]) for p in pairs])
    return TensorSource(name, (torch.as_tensor(x), torch.as_tensor(y)))


def from_path(path: Path) -> TensorSource:
    """`--dataset PATH`: a .safetensors or .npz file, or an image folder PATH/<class>/*.png."""
    path = Path(path)
    if not path.exists():
        raise RBError(f"--dataset {path}: no such file or folder")
    if path.is_dir():
        arrays = _folder(path)
    elif path.suffix == ".safetensors":
        arrays = _safetensors(path)
    elif path.suffix == ".npz":
        arrays = _npz(path)
    else:
        raise RBError(
            f"--dataset {path}: expected a .safetensors or .npz file (x, y) or an image folder "
            "PATH/<class>/*.png (pickles are not read: they run code)"
        )
    if "x" not in arrays or "y" not in arrays:
        raise RBError(f"--dataset {path}: it must hold `x` and `y` (it has {sorted(arrays)})")
    train = None
    if "x_train" in arrays or "y_train" in arrays:
        if "x_train" not in arrays or "y_train" not in arrays:
            raise RBError(f"--dataset {path}: `x_train` and `y_train` go together")
        train = (arrays["x_train"], arrays["y_train"])
    return TensorSource(
        file_name(path), (arrays["x"], arrays["y"]), train, origin=f"{path} (--dataset PATH)"
    )


def file_name(path: Path) -> str:
    """A dataset name for a file or folder: its stem and the first 8 hex digits of a SHA-256 of
    its content, so other data never shares results with it."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        digest.update(f.read_bytes())
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem if path.is_file() else path.name)
    return f"{stem.strip('.-_')[:40] or 'data'}-{digest.hexdigest()[:8]}"


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RBError(f"--dataset {path} cannot be read ({exc})") from None


def _npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise RBError(f"--dataset {path} cannot be read as .npz without pickles ({exc})") from None


def _folder(path: Path) -> dict[str, torch.Tensor]:
    """PATH/<class>/*.png: classes sorted by folder name, labels 0..K-1."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d for d in path.iterdir() if d.is_dir())
    if not classes:
        raise RBError(f"--dataset {path}: no class folders (PATH/<class>/*.png)")
    images, labels, size = [], [], None
    for label, folder in enumerate(classes):
        for f in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                with Image.open(f) as image:
                    pixels = np.asarray(
                        image.convert("RGB" if image.mode not in ("L", "1") else "L")
                    )
            except (UnidentifiedImageError, OSError) as exc:
                raise RBError(f"--dataset {path}: {f} is not an image ({exc})") from None
            pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
            if size is not None and pixels.shape != size:
                raise RBError(f"--dataset {path}: {f} is {pixels.shape}, the others {size}")
            size = pixels.shape
            images.append(pixels.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise RBError(f"--dataset {path}: no images in its class folders")
    return {"x": torch.from_numpy(np.stack(images)), "y": torch.tensor(labels)}


def resolve_source(dataset: str | DataSource) -> DataSource:
    """The data a run evaluates on: a DataSource as given, a registered dataset by name, or a
    user's file or folder (`--dataset PATH`)."""
    if isinstance(dataset, DataSource):
        return dataset
    name = str(dataset)
    if name in dataset_names():
        return data_source(name)
    path = Path(name).expanduser()
    if path.exists() or "/" in name or path.suffix in (".npz", ".safetensors"):
        return from_path(path)
    raise RBError(
        f"unknown dataset {name!r}; known: {', '.join(dataset_names())} (or a PATH to a "
        ".safetensors or .npz file, or an image folder)"
    )
