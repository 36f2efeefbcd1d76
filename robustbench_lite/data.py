"""Data as tensors: one split of a dataset is images float32 in [0, 1], NCHW, and labels int64
0..K-1. Where the data come from is a dataset plugin's business (robustbench_lite.datasets, or a
user's own files); this module only holds the container and checks what goes into it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from robustbench_lite.errors import RBError

Shape = tuple[int, int, int]  # (C, H, W)
SPLITS = ("train", "test")
#: The most classes a dataset may have: labels lie in 0..K-1 for K at most this (a stray label
#: of 2**40 must not be taken for 2**40 classes, and a model with that many outputs built).
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class Dataset:
    """One split of a dataset: images (N, C, H, W) float32 in [0, 1] and labels (N,) int64."""

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int = 10

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> Shape:
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    def sha256(self) -> str:
        """The full SHA-256 of the decoded content (images and labels: shape, dtype and bytes,
        and the number of classes): what a result records of the data it was computed on."""
        digest = hashlib.sha256(f"classes={self.num_classes};".encode())
        for tensor in (self.x, self.y):
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{tuple(array.shape)}:{array.dtype.str};".encode())
            digest.update(array.data.cast("B"))
        return digest.hexdigest()


def check_split(source: Any, split: str) -> None:
    """An RBError unless `source` (a dataset plugin) has the split."""
    if split not in SPLITS:
        raise RBError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if split not in source.splits:
        raise RBError(
            f"dataset {source.name} has no {split} split (it has {', '.join(source.splits)}): "
            + ("evaluate a trained model on it (--model)" if split == "train" else "")
        )


def checked(
    x: Any, y: Any, *, what: str, num_classes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels as the suite takes them, or one RBError naming what is wrong: x of shape
    (N, C, H, W) with 1 or 3 channels, uint8 (scaled by 1/255) or floats in [0, 1] and finite;
    y N integer labels in 0..K-1."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() != 4 or x.shape[1] not in (1, 3) or min(x.shape) < 1:
        raise RBError(f"{what}: x must be (N, C, H, W) with C 1 or 3, got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.to(torch.float32) / 255.0
    elif x.is_floating_point():
        x = x.to(torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise RBError(f"{what}: x holds NaN or infinite values")
        if float(x.min()) < 0.0 or float(x.max()) > 1.0:
            raise RBError(
                f"{what}: x must lie in [0, 1] (it spans [{float(x.min()):.3g}, "
                f"{float(x.max()):.3g}]); give uint8 pixels or floats divided by 255"
            )
    else:
        raise RBError(f"{what}: x must be uint8 or floating point, got {x.dtype}")
    if y.dim() != 1 or len(y) != len(x):
        raise RBError(f"{what}: y must be {len(x)} labels, got shape {tuple(y.shape)}")
    if y.is_floating_point():
        if not bool((y == y.round()).all()):
            raise RBError(f"{what}: y must be integer labels")
    elif y.dtype == torch.bool:
        raise RBError(f"{what}: y must be integer labels, got bool")
    y = y.to(torch.int64)
    if num_classes is not None and num_classes > MAX_CLASSES:
        raise RBError(f"{what}: at most {MAX_CLASSES} classes are taken, got {num_classes}")
    if num_classes is None and int(y.max()) >= MAX_CLASSES:
        raise RBError(
            f"{what}: labels must lie in 0..K-1 for at most K = {MAX_CLASSES} classes, got a "
            f"label {int(y.max())}"
        )
    top = num_classes if num_classes is not None else int(y.max()) + 1
    if int(y.min()) < 0 or int(y.max()) >= top:
        raise RBError(
            f"{what}: labels must lie in 0..{top - 1}, got {int(y.min())}..{int(y.max())}"
        )
    if top < 2:
        raise RBError(f"{what}: at least two classes are needed, got {top}")
    return x.contiguous(), y
