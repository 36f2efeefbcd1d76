"""The real test images foolbox's wheel ships (`foolbox/data/<dataset>_<index>_<label>.png|jpg`,
20 per dataset): a test-only dataset that lets a user smoke-test a model of that shape offline,
with no download. Images are read with Pillow (no code runs) and resized where foolbox resizes."""

from __future__ import annotations

import importlib.resources
import re
from typing import ClassVar

import numpy as np
import torch

from robustbench_lite.api import DataSource
from robustbench_lite.data import Dataset, check_split
from robustbench_lite.errors import RBError


class FoolboxSamples(DataSource):
    """foolbox's 20 sample images of one dataset, as a test split."""

    splits = ("test",)
    prefix: ClassVar[str]  # the file-name prefix in foolbox/data

    def load(self, split: str) -> Dataset:
        check_split(self, split)
        from PIL import Image

        try:
            folder = importlib.resources.files("foolbox") / "data"
            files = sorted(
                (
                    f
                    for f in folder.iterdir()
                    if re.fullmatch(rf"{self.prefix}_\d+_\d+\.\w+", f.name)
                ),
                key=lambda f: f.name,
            )
        except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
            raise RBError(f"{self.name}: foolbox's sample images are missing ({exc})") from None
        if not files:
            raise RBError(f"{self.name}: no {self.prefix}_* images in foolbox/data")
        images, labels = [], []
        channels, height, width = self.shape
        for f in files:
            with importlib.resources.as_file(f) as path, Image.open(path) as opened:
                image = opened.convert("RGB" if channels == 3 else "L")
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
            images.append(pixels.reshape(height, width, channels).transpose(2, 0, 1))
            labels.append(int(f.name.rsplit("_", 1)[1].split(".")[0]))
        x = torch.from_numpy(np.stack(images).astype(np.float32) / 255.0)
        return Dataset(self.name, split, x.contiguous(), torch.tensor(labels), self.num_classes)
