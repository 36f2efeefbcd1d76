"""A user's own data as a dataset: a `.safetensors` or `.npz` file holding `x` (N, C, H, W; uint8,
or floats in [0, 1]) and `y` (N labels 0..K-1), optionally `x_train` and `y_train`; an image
folder `PATH/<class>/*.png`; or, from Python, tensors or a torch `Dataset`. Everything is checked
before any work (one line, exit 2 on a bad file, shape, range or label); files load without
running code (no pickles: `.npz` is read with allow_pickle=False), and what a file's headers
claim (image size, array shapes) is checked before anything is decoded or allocated."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import struct
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustbench_lite.data import Dataset, Shape, check_split, checked
from robustbench_lite.errors import RBError
from robustbench_lite.protocol.contracts import DataSource
from robustbench_lite.protocol.registry import data_source, dataset_class, dataset_names
from robustbench_lite.protocol.threat_models import TM
from robustbench_lite.store.reuse import DataKey

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: The most pixels an image of an image folder may claim (4096 x 4096), read off its header.
MAX_PIXELS = 4096 * 4096
#: The most elements an array of a .npz or .safetensors file may claim in its header (e.g.
#: CIFAR-10's 50,000 training images are 1.5e8).
MAX_ELEMENTS = 2**31


def default_eps(shape: Shape) -> dict[str, float]:
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
        eps: Mapping[str, float] | None = None,
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


def data_key(source: DataSource) -> DataKey:
    """What a result must have been computed on to be reused on `source`: the full SHA-256 of
    its test split; a record older than that field counts only on a registered dataset (whose
    files its own hashes pin), never on a user's tensors, file or folder."""
    name = source.name
    pinned = name in dataset_names() and type(source) is dataset_class(name)
    return DataKey(source.content_sha256(), pinned)


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

    _check_safetensors_header(path)
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RBError(f"--dataset {path} cannot be read ({exc})") from None


def _claims(path: Path, name: str, shape: Any) -> int:
    """The elements an array's header claims, refused above MAX_ELEMENTS."""
    if not isinstance(shape, list | tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise RBError(f"--dataset {path}: {name}'s header gives no shape ({shape!r})")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise RBError(
            f"--dataset {path}: {name}'s header claims {count} elements "
            f"(shape {tuple(shape)}; at most {MAX_ELEMENTS} are read)"
        )
    return count


def _check_safetensors_header(path: Path) -> None:
    """The shapes in a .safetensors file's JSON header, checked before any tensor is read."""
    with open(path, "rb") as f:
        head = f.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < size <= 100_000_000:  # safetensors' own limit on the header
            raise RBError(f"--dataset {path} cannot be read (no valid safetensors header)")
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise RBError(f"--dataset {path} cannot be read (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise RBError(f"--dataset {path} cannot be read (its header is not a JSON object)")
    for name, info in header.items():
        if name != "__metadata__":
            _claims(path, name, info.get("shape") if isinstance(info, dict) else None)


def _check_npz_headers(path: Path) -> None:
    """The shapes in an .npz file's npy headers, checked before any array is allocated: at most
    MAX_ELEMENTS, and no more bytes than the member holds."""
    if not zipfile.is_zipfile(path):
        raise RBError(f"--dataset {path} is not an .npz archive (a zip of .npy arrays)")
    fmt = np.lib.format
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = fmt.read_magic(member)
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(member)
                count = _claims(path, info.filename, list(shape))
                held = info.file_size - member.tell()
            if not dtype.hasobject and count * dtype.itemsize > held:
                raise RBError(
                    f"--dataset {path}: {info.filename}'s header claims {count} elements of "
                    f"{dtype} ({count * dtype.itemsize} bytes), but it holds {held} bytes"
                )


def _npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        _check_npz_headers(path)
        with np.load(path, allow_pickle=False) as npz:
            return {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RBError(f"--dataset {path} cannot be read as .npz without pickles ({exc})") from None


def _folder(path: Path) -> dict[str, torch.Tensor]:
    """PATH/<class>/*.png: classes sorted by folder name, labels 0..K-1; every class folder
    must hold images (an empty one would silently drop its class)."""
    classes = sorted(d for d in path.iterdir() if d.is_dir())
    if not classes:
        raise RBError(f"--dataset {path}: no class folders (PATH/<class>/*.png)")
    images, labels, size = [], [], None
    for label, folder in enumerate(classes):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise RBError(
                f"--dataset {path}: empty class folder {folder.name} (no "
                f"{'/'.join(IMAGE_SUFFIXES)} images); remove it or add its images"
            )
        for f in files:
            pixels = _image(path, f)
            if size is not None and pixels.shape != size:
                raise RBError(f"--dataset {path}: {f} is {pixels.shape}, the others {size}")
            size = pixels.shape
            images.append(pixels.transpose(2, 0, 1))
            labels.append(label)
    return {"x": torch.from_numpy(np.stack(images)), "y": torch.tensor(labels)}


@contextlib.contextmanager
def _own_size_limit() -> Iterator[None]:
    """PIL's decompression-bomb check off (no warning, no error of its own): `_image` checks
    the claimed size itself, against a lower limit, before decoding."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _image(root: Path, f: Path) -> np.ndarray:
    """One image as (H, W, C) uint8, its size checked on its header before it is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _own_size_limit(), Image.open(f) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise RBError(
                    f"--dataset {root}: image too large: {f} claims {width}x{height} pixels "
                    f"(at most {MAX_PIXELS} per image)"
                )
            pixels = np.asarray(image.convert("RGB" if image.mode not in ("L", "1") else "L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise RBError(f"--dataset {root}: {f} is not an image ({exc})") from None
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


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
