"""How the store writes and seals files: atomically (a temporary file, then a rename), in the
user's umask, JSON without NaN, and sealed with a content hash that detects corruption and
careless edits (not forgery: anyone can recompute it)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from robustbench_lite.errors import RBError


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


def publish(tmp: str, path: Path) -> None:
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
        publish(tmp, path)
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
