"""The model zoo: the weights of every model behind a committed leaderboard, shipped with the
package (`robustbench_lite/zoo/`) as safetensors and listed in one manifest, each pinned by its
SHA-256. Training is reproducible only on the machine that trained (float kernels differ between
CPUs), so these files are what lets anyone rerun a committed cell on the model it was computed
on. A model whose config hash is in the zoo is loaded from it instead of trained; a file that
fails its hash is refused. Buffers a model can recompute from its weights (ABS's decoded
candidates, 250 MB in the standard profile) are left out and rebuilt on load (`derived_buffers`,
`rebuild()` on the model)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from robustbench_lite.errors import RBError
from robustbench_lite.store.files import atomic_write_text, file_sha256, publish

ZOO = Path(__file__).resolve().parents[1] / "zoo"
MANIFEST = "manifest.json"
#: A zoo file is a bare name (a model name, '-', 16 hex digits of its key), never a path: a
#: received manifest cannot point the loader or `rb zoo` at a file outside its folder.
FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}-[0-9a-f]{16}\.safetensors")


def zoo_folder() -> Path:
    """The zoo the suite ships ($RB_ZOO points elsewhere: a copy, an empty folder for none)."""
    return Path(os.environ.get("RB_ZOO") or ZOO)


@dataclass(frozen=True)
class ZooEntry:
    """One shipped model: what it is, how it was trained, and the hash that pins its file."""

    defense: str
    dataset: str
    profile: str
    key: str  # the model key: the config hash of (dataset, defense config, seed)
    file: str
    sha256: str  # of the zoo file; the weights identity its cells record
    parameters: int
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)  # the defense's hyper-parameters
    train_time_s: float | None = None
    threads: int | None = None
    torch: str = ""
    cpu: str = ""
    size_bytes: int = 0
    derived: list[str] = field(default_factory=list)  # buffers rebuilt on load, not stored
    clean_acc: float | None = None  # on the profile's test samples of its dataset
    clean_n: int | None = None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


#: What each manifest field must be (a received manifest is checked on read).
_KINDS: dict[str, tuple[str, Any]] = {
    **{k: ("a string", lambda v: isinstance(v, str)) for k in ("torch", "cpu")},
    **{k: ("an integer", _is_int) for k in ("parameters", "size_bytes")},
    **{
        k: ("an integer or null", lambda v: v is None or _is_int(v)) for k in ("threads", "clean_n")
    },
    **{
        k: ("a number or null", lambda v: v is None or _is_int(v) or isinstance(v, float))
        for k in ("train_time_s", "clean_acc")
    },
    "config": ("an object", lambda v: isinstance(v, dict)),
    "derived": (
        "a list of strings",
        lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    ),
}


def _entry(i: int, raw: Any, manifest: Path) -> ZooEntry:
    """Entry i of a manifest as a ZooEntry, each field's type checked first: a bad one is one
    clear line naming it, not an error deep in loading."""
    where = f"zoo manifest entry {i} ({manifest})"
    if not isinstance(raw, dict):
        raise RBError(f"{where}: not a JSON object")
    known = {f.name: f for f in fields(ZooEntry)}
    unknown = sorted(set(raw) - set(known))
    missing = [
        n
        for n, f in known.items()
        if f.default is MISSING and f.default_factory is MISSING and n not in raw
    ]
    if unknown or missing:
        raise RBError(
            f"{where}: " + (f"unknown field {unknown[0]!a}" if unknown else f"no {missing[0]}")
        )
    for name, value in raw.items():
        what, valid = _KINDS.get(name, ("a string", lambda v: isinstance(v, str)))
        if not valid(value):
            raise RBError(f"{where}: {name} must be {what}, got {value!a:.80}")
    return ZooEntry(**raw)


def cpu_model() -> str:
    """The CPU's model name (where training ran: other CPUs train other weights)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Zoo:
    """The zoo folder: its manifest and files."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = Path(folder) if folder is not None else None
        self._entries: dict[str, ZooEntry] | None = None
        self._read_from: Path | None = None

    @property
    def folder(self) -> Path:
        """The given folder, else $RB_ZOO's or the shipped one (read when asked, not at init)."""
        return self._folder if self._folder is not None else zoo_folder()

    def entries(self) -> dict[str, ZooEntry]:
        """Model key -> entry (empty when the zoo has no manifest)."""
        if self._entries is None or self._read_from != self.folder:
            self._read_from = self.folder
            path = self.folder / MANIFEST
            try:
                raw = json.loads(path.read_text()) if path.is_file() else {"models": []}
                listed = [_entry(i, e, path) for i, e in enumerate(raw["models"])]
                self._entries = {e.key: e for e in listed}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise RBError(f"the zoo manifest {path} cannot be read ({exc})") from None
        return self._entries

    def get(self, key: str) -> ZooEntry | None:
        return self.entries().get(key)

    def path(self, entry: ZooEntry) -> Path:
        """The file of `entry`, which must be a bare file name inside the zoo folder."""
        folder = self.folder.resolve()
        path = folder / entry.file
        if not FILE.fullmatch(entry.file) or path.resolve().parent != folder:
            raise RBError(
                f"the zoo manifest in {self.folder} lists file {entry.file!a} for "
                f"{entry.defense}: a zoo file is a bare name <model>-<16 hex>.safetensors inside "
                "its folder, never a path"
            )
        return path

    def manifest_sha256(self) -> str:
        """The SHA-256 of this zoo's manifest ('none' without one): which zoo a cell's weights
        came from."""
        path = self.folder / MANIFEST
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "none"

    def load(self, model: nn.Module, entry: ZooEntry) -> None:
        """Fill `model` from its zoo file, refused unless the file has its pinned SHA-256."""
        path = self.path(entry)
        if not path.is_file():
            raise RBError(f"zoo file {path} of {entry.defense} is missing; reinstall the package")
        if file_sha256(path) != entry.sha256:
            raise RBError(
                f"zoo file {path} fails its pinned SHA-256 ({entry.sha256[:12]}...): it is not "
                f"the {entry.defense} model the committed results were computed on"
            )
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise RBError(f"zoo file {path} cannot be read ({exc})") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        if sorted(missing) != sorted(entry.derived) or unexpected:
            raise RBError(f"zoo file {path} does not fit {entry.defense}'s model")
        if entry.derived:
            model.rebuild()  # type: ignore[operator]

    def add(
        self,
        model: nn.Module,
        *,
        defense: str,
        dataset: str,
        profile: str,
        key: str,
        config: dict[str, Any],
        train_time_s: float | None,
        threads: int | None,
        clean_acc: float | None = None,
        clean_n: int | None = None,
    ) -> ZooEntry:
        """Write `model` into the zoo (derived buffers left out) and list it in the manifest."""
        derived = list(getattr(model, "derived_buffers", ()))
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in model.state_dict().items()
            if k not in derived
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{defense}-{key[:16]}.safetensors"
        tmp = self.folder / f".{name}.tmp"
        save_file(state, str(tmp))
        publish(str(tmp), self.folder / name)
        path = self.folder / name
        entry = ZooEntry(
            defense=defense,
            dataset=dataset,
            profile=profile,
            key=key,
            file=name,
            sha256=file_sha256(path),
            parameters=sum(p.numel() for p in model.parameters()),
            architecture=type(model).__name__ + _layers(model),
            config=config,
            train_time_s=train_time_s,
            threads=threads,
            torch=torch.__version__,
            cpu=cpu_model(),
            size_bytes=path.stat().st_size,
            derived=derived,
            clean_acc=clean_acc,
            clean_n=clean_n,
        )
        self._entries = {**self.entries(), key: entry}
        self._write()
        return entry

    def replace(self, keep: set[str]) -> list[Path]:
        """Drop the entries whose keys are not in `keep`, and their files: only a file the zoo
        wrote (a bare name in its folder, still with the SHA-256 the entry recorded); anything
        else, in the folder or outside it, is left alone."""
        entries = self.entries()
        paths = {key: self.path(e) for key, e in entries.items()}  # every name checked first
        gone = []
        for key in sorted(set(entries) - keep):
            path = paths[key]
            if (
                path.is_file()
                and not any(e.file == path.name for k, e in entries.items() if k in keep)
                and file_sha256(path) == entries[key].sha256
            ):
                path.unlink()
                gone.append(path)
        self._entries = {k: e for k, e in entries.items() if k in keep}
        self._write()
        return gone

    def _write(self) -> None:
        listed = sorted(self.entries().values(), key=lambda e: (e.dataset, e.profile, e.defense))
        text = json.dumps({"models": [asdict(e) for e in listed]}, indent=1) + "\n"
        atomic_write_text(self.folder / MANIFEST, text)


def _layers(model: nn.Module) -> str:
    """A one-line architecture summary: the kinds of its leaf layers, with counts."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if not list(module.children()):
            counts[type(module).__name__] = counts.get(type(module).__name__, 0) + 1
    return "(" + ", ".join(f"{n} x{k}" if k > 1 else n for n, k in counts.items()) + ")"


def model_cards(zoo: Zoo | None = None) -> str:
    """`rb list --models`: one card per shipped model."""
    entries = sorted(
        (zoo or Zoo()).entries().values(), key=lambda e: (e.dataset, e.profile, e.defense)
    )
    if not entries:
        return "the zoo is empty (make zoo builds it)\n"
    total = sum(e.size_bytes for e in entries)
    lines = [f"{len(entries)} models, {total / 2**20:.1f} MiB of float32 weights"]
    for e in entries:
        clean = f"clean {e.clean_acc:.3f} on {e.clean_n}" if e.clean_acc is not None else ""
        trained = f"{e.train_time_s:.0f} s" if e.train_time_s is not None else "?"
        lines += [
            f"{e.defense} ({e.dataset}, {e.profile}): {e.parameters:,} parameters, {clean}",
            f"  architecture {e.architecture}",
            f"  recipe {json.dumps(e.config, sort_keys=True)}",
            f"  trained in {trained} on {e.threads} thread(s), torch {e.torch}, {e.cpu}",
            f"  sha256 {e.sha256}  ({e.file}, {e.size_bytes / 2**20:.1f} MiB)",
        ]
    return "\n".join(lines) + "\n"
