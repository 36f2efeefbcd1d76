"""The registry: plugins are found through entry points (groups `robustbench_lite.attacks`,
`robustbench_lite.defenses` and `robustbench_lite.datasets`), so built-ins register exactly as a
third-party package would. A name must be an identifier (names.NAME) and unique: a bad or
duplicate entry point disables that plugin only, with one warning line per process (one broken
package must not stop every `rb` command); a plugin whose import fails is still listed and fails
with a clear message when used."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from robustbench_lite.data import Dataset
from robustbench_lite.errors import RBError, is_stop, one_line
from robustbench_lite.names import DEFAULT_DATASET as DEFAULT_DATASET  # its home: names.py
from robustbench_lite.names import NAME, NAME_RULE
from robustbench_lite.protocol.contracts import Attack, DataSource, Defense, Plugin

ATTACK_GROUP = "robustbench_lite.attacks"
DEFENSE_GROUP = "robustbench_lite.defenses"
DATASET_GROUP = "robustbench_lite.datasets"

P = TypeVar("P", bound=Plugin)

log = logging.getLogger(__name__)
#: The warnings about bad entry points given so far: each once per process.
_warned: set[str] = set()
_scanned: dict[tuple[str, object], dict[str, Entry]] = {}  # (group, scanner): its plugins


@dataclass(frozen=True)
class Entry:
    """A registered plugin name and where it comes from; loaded only when used."""

    name: str
    target: str
    entry_point: importlib.metadata.EntryPoint

    def load(self) -> type[Any]:
        try:
            obj = self.entry_point.load()
        except ImportError as exc:
            raise RBError(
                f"plugin {self.name} ({self.target}) cannot be loaded: {exc}; "
                "install its optional dependencies"
            ) from None
        except BaseException as exc:  # its module failed at import (SystemExit included)
            if is_stop(exc):
                raise
            raise RBError(
                f"plugin {self.name} ({self.target}) failed at import: {one_line(exc)}"
            ) from None
        if not (isinstance(obj, type) and issubclass(obj, Plugin | DataSource)):
            raise RBError(f"plugin {self.name} ({self.target}) is not a plugin class")
        if obj.name != self.name:
            raise RBError(
                f"plugin {self.target} is registered as {self.name!r} but names itself {obj.name!r}"
            )
        return obj


def _disabled(message: str) -> None:
    """Say once per process that a bad entry point is left out (every other plugin works)."""
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


def _built_in(ep: importlib.metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name.replace("-", "_") == "robustbench_lite"


def _entries(group: str) -> dict[str, Entry]:
    """The group's plugins by name, scanned once per process and group (a scan reads every
    installed distribution's metadata: ~30 ms, paid hundreds of times in a grid otherwise); a
    replaced `importlib.metadata.entry_points` (tests) is a scan of its own."""
    key = (group, importlib.metadata.entry_points)
    if key not in _scanned:
        _scanned[key] = _scan(group)
    return dict(_scanned[key])


def _scan(group: str) -> dict[str, Entry]:
    """The group's entry points by name. One whose name is no identifier is left out; a name
    that several targets claim keeps the built-in one, or is left out if none is."""
    claims: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for ep in importlib.metadata.entry_points(group=group):
        if not NAME.fullmatch(ep.name):
            package = ep.dist.name if ep.dist is not None else "an unknown package"
            _disabled(
                f"package {package} registers {group} entry point {ep.name!a} "
                f"({ep.value!a}): {NAME_RULE}; that plugin is disabled"
            )
        elif all(other.value != ep.value for other in claims.setdefault(ep.name, [])):
            claims[ep.name].append(ep)
    found: dict[str, Entry] = {}
    for name, eps in sorted(claims.items()):
        if len(eps) > 1:
            kept = [ep for ep in eps if _built_in(ep)]
            targets = " and ".join(ep.value for ep in eps)
            if len(kept) != 1:
                _disabled(f"duplicate plugin name {name!r} in {group}: {targets}; disabled")
                continue
            _disabled(
                f"duplicate plugin name {name!r} in {group}: {targets}; the built-in "
                f"{kept[0].value} is kept, the others are disabled"
            )
            eps = kept
        found[name] = Entry(name, eps[0].value, eps[0])
    return found


def attack_names() -> list[str]:
    """Names of all registered attacks, sorted."""
    return list(_entries(ATTACK_GROUP))


def defense_names() -> list[str]:
    """Names of all registered defenses, sorted."""
    return list(_entries(DEFENSE_GROUP))


def dataset_names() -> list[str]:
    """Names of all registered datasets, sorted."""
    return list(_entries(DATASET_GROUP))


def dataset_class(name: str) -> type[DataSource]:
    """The dataset class registered under `name` (RBError listing the known names if none)."""
    return _load(DATASET_GROUP, "dataset", name, DataSource)


def data_source(name: str) -> DataSource:
    """The registered dataset `name`, ready to load."""
    return dataset_class(name)()


def load_dataset(name: str, split: str) -> Dataset:
    """One split of the registered dataset `name` (e.g. `load_dataset("mnist-5k", "test")`)."""
    return data_source(name).load(split)


def _load(group: str, kind: str, name: str, base: type[Any]) -> type[Any]:
    entries = _entries(group)
    if name not in entries:
        raise RBError(f"unknown {kind} {name!r}; known: {', '.join(entries) or '(none)'}")
    cls = entries[name].load()
    if not issubclass(cls, base):
        raise RBError(f"plugin {name} is registered as {kind} but is not a {base.__name__}")
    return cls


def attack_class(name: str) -> type[Attack]:
    """The attack class registered under `name` (RBError listing the known names if none)."""
    return _load(ATTACK_GROUP, "attack", name, Attack)


def defense_class(name: str) -> type[Defense]:
    """The defense class registered under `name` (RBError listing the known names if none)."""
    return _load(DEFENSE_GROUP, "defense", name, Defense)


def instantiate(cls: type[P], profile: str, overrides: Mapping[str, Any] | None = None) -> P:
    """Build a plugin with its profile's defaults and the user's overrides (checked by name)."""
    known = cls.hyperparameters()
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise RBError(
            f"{cls.name} has no hyper-parameter {', '.join(unknown)}; "
            f"known: {', '.join(known) or '(none)'}"
        )
    kwargs = {**cls.profiles.get(profile, {}), **overrides}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise RBError(f"{cls.name}: {exc}") from None
    except BaseException as exc:
        if is_stop(exc):
            raise
        raise RBError(f"{cls.name}: its constructor failed: {one_line(exc)}") from None


def resolve_names(requested: Iterable[str], known: Sequence[str], kind: str) -> list[str]:
    """Expand comma lists and `all`, keep order, drop repeats; unknown names are an RBError.

    `all` means every plugin whose class is `in_all` (a generic plugin whose concrete variants
    are registered too, like `low-frequency`, is left to them)."""
    load = attack_class if kind == "attack" else defense_class
    names: list[str] = []
    for item in requested:
        for name in (part.strip() for part in item.split(",")):
            if not name:
                continue
            expanded = [n for n in known if load(n).in_all] if name == "all" else [name]
            for one in expanded:
                if one not in known:
                    raise RBError(f"unknown {kind} {one!r}; known: {', '.join(known)}")
                if one not in names:
                    names.append(one)
    if not names:
        raise RBError(f"no {kind} given; known: {', '.join(known)}")
    return names


def origin(group: str, name: str) -> str:
    """'built-in' for a plugin this package registers, 'third-party' for another package's,
    'unregistered' for a name no installed package registers (a result from elsewhere)."""
    entry = _entries(group).get(name)
    if entry is None:
        return "unregistered"
    return "built-in" if _built_in(entry.entry_point) else "third-party"
