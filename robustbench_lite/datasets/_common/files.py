"""Where a dataset's files come from: the first of its folders that holds the file, else a
download into the data folder ($RB_DATA_DIR, default $RB_HOME/data) kept only once its checksum
matches. `RB_OFFLINE=1` forbids downloads (one line says where to put the file);
`RB_DATA_MIRROR=URL` fetches from another server instead of the publisher's (tests serve one
on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from robustbench_lite.errors import RBError
from robustbench_lite.home import data_dir

log = logging.getLogger(__name__)

#: Checks a candidate file: None when it is the right one, else what is wrong with it
#: ("checksum mismatch", "cannot decompress it (...)").
Check = Callable[[Path], "str | None"]


def offline() -> bool:
    return os.environ.get("RB_OFFLINE", "") not in ("", "0")


def digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (`md5` for checksums published as MD5)."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(
    dataset: str,
    filenames: Sequence[str],
    *,
    url: str,
    dirs: Sequence[Path],
    check: Check,
    how_to_get: str,
) -> Path:
    """The first of `filenames` found in the data folder, then in `dirs`, checked; else the first
    one downloaded from `url` (a folder URL) into the data folder. A file that fails its check
    is an RBError naming it, never used."""
    folders = [data_dir() / dataset, *dirs]
    for folder in folders:
        for name in filenames:
            path = folder / name
            if path.is_file():
                problem = check(path)
                if problem:
                    raise RBError(f"{problem} for {path}: the file is corrupt; delete it")
                return path
    where = ", ".join(str(f) for f in folders)
    if offline():
        raise RBError(f"{dataset}: {filenames[0]} not found in {where} (offline); {how_to_get}")
    return _download(dataset, filenames[0], url, where, check, how_to_get)


def _download(dataset: str, name: str, url: str, where: str, check: Check, how_to_get: str) -> Path:
    mirror = os.environ.get("RB_DATA_MIRROR")
    source = (mirror.rstrip("/") + "/" if mirror else url) + name
    target = data_dir() / dataset
    log.info("downloading %s", source)
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target, suffix=".part")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source, timeout=30) as response:
            shutil.copyfileobj(response, out)
    except (OSError, ValueError) as exc:
        raise RBError(
            f"{dataset}: {name} not found in {where} and the download from {source} failed "
            f"({exc}); {how_to_get}"
        ) from None
    tmp = Path(tmp_name)
    problem = check(tmp)
    if problem:
        tmp.unlink(missing_ok=True)
        raise RBError(f"{dataset}: downloaded {source}, {problem}: not kept")
    path = target / name
    os.replace(tmp, path)
    return path
