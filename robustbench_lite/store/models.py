"""The model cache under $RB_HOME: safetensors weights plus a JSON config, keyed by a hash of
dataset, defense config and seed; loading runs no code."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from robustbench_lite.errors import RBError
from robustbench_lite.home import rb_home
from robustbench_lite.store.files import file_sha256, publish, write_json

log = logging.getLogger(__name__)


class ModelCache:
    """Trained models stored as `<name>-<hash>.safetensors` + `.json` (loads run no code).

    The JSON records the SHA-256 of the weights file, checked at every load: a well-formed
    checkpoint with other weights (NaN, zeros, another run's) is refused, not evaluated."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or rb_home()) / "models"

    def paths(self, name: str, key: str) -> tuple[Path, Path]:
        stem = f"{name}-{key[:16]}"
        return self.root / f"{stem}.safetensors", self.root / f"{stem}.json"

    def weights_sha256(self, name: str, key: str) -> str | None:
        """The recorded SHA-256 of a cached model's weights file (None if absent or unreadable)."""
        try:
            stored = json.loads(self.paths(name, key)[1].read_text())
        except (OSError, ValueError):
            return None
        value = stored.get("weights_sha256") if isinstance(stored, dict) else None
        return value if isinstance(value, str) else None

    def has(self, name: str, key: str) -> bool:
        """Whether weights and config of this model are in the cache (not yet verified)."""
        return all(p.is_file() for p in self.paths(name, key))

    def load(self, model: nn.Module, name: str, key: str) -> bool:
        """Fill `model` from the cache; False if absent. A corrupt file is an RBError."""
        weights, meta = self.paths(name, key)
        if not (weights.is_file() and meta.is_file()):
            return False
        try:
            stored = json.loads(meta.read_text())
            if stored.get("key") != key:
                raise ValueError("its config does not match its name")
            if "weights_sha256" not in stored:
                log.warning("%s predates weight hashes: retraining %s", meta, name)
                return False
            if file_sha256(weights) != stored["weights_sha256"]:
                raise ValueError("its weights do not match the SHA-256 recorded when it was saved")
            missing, unexpected = load_model(model, str(weights), strict=False)
            if missing or unexpected:
                raise ValueError(f"missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        except (SafetensorError, ValueError, OSError, RuntimeError, AttributeError) as exc:
            raise RBError(f"corrupt checkpoint {weights} ({exc}); delete it to retrain") from None
        log.info("loaded %s from %s", name, weights)
        return True

    def save(self, model: nn.Module, name: str, key: str, config: dict[str, Any]) -> Path:
        """Store weights and config atomically; returns the weights path."""
        weights, meta = self.paths(name, key)
        weights.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=weights.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_model(model, tmp)
            digest = file_sha256(Path(tmp))
            publish(tmp, weights)
        finally:
            Path(tmp).unlink(missing_ok=True)
        write_json(meta, {"key": key, "config": config, "weights_sha256": digest})
        return weights
