"""The model cache under $RB_HOME: safetensors weights plus a JSON config, keyed by a hash."""

from __future__ import annotations

import hashlib
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

log = logging.getLogger(__name__)


def rb_home() -> Path:
    """$RB_HOME, default ~/.cache/robustbench_lite."""
    return Path(os.environ.get("RB_HOME") or Path.home() / ".cache" / "robustbench_lite")


def writable_dir(path: Path, what: str) -> Path:
    """`path` as a directory this process can write into (created if missing), else an RBError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RBError(f"{what} {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RBError(f"{what} {path} cannot be created ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RBError(f"{what} {path} is not writable")
    return path


def config_hash(config: Any) -> str:
    """SHA-256 of the canonical JSON of `config` (sorted keys, no whitespace)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: Path) -> None:
    """Give a finished temporary file the mode the user's umask asks for, then rename it into
    place (mkstemp makes files 0600)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Atomically write `obj` as JSON; NaN and infinities are refused (use null)."""
    atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """Add the content hash: an unkeyed SHA-256 that detects a corrupted or carelessly edited
    result file. Anyone can recompute it, so it detects corruption, not forgery."""
    body = {k: v for k, v in record.items() if k != "content_hash"}
    return {**body, "content_hash": config_hash(body)}


def tampering(record: dict[str, Any], required: tuple[str, ...] = ()) -> str | None:
    """Why a result record cannot be trusted as the runner wrote it, or None."""
    needed = (*required, "config", "config_hash", "content_hash")
    missing = [key for key in needed if key not in record]
    if missing:
        return f"it lacks {', '.join(missing)}"
    if config_hash(record["config"]) != record["config_hash"]:
        return "its config does not match its config hash"
    if seal(record)["content_hash"] != record["content_hash"]:
        return "its content does not match its content hash (corrupted or edited?)"
    return None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            _publish(tmp, weights)
        finally:
            Path(tmp).unlink(missing_ok=True)
        write_json(meta, {"key": key, "config": config, "weights_sha256": digest})
        return weights
