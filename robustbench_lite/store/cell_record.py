"""The cell record as a typed value: identity and config, the summary, the per-sample arrays and
the provenance of one cell file, with `from_json` (reading is the store's self-check:
hashes, then the aggregates against the arrays) and `to_json` (its inverse, byte for byte).

Frozen dataclasses rather than pydantic: the record is plain data the suite writes itself, its
checks are the store's own (`cell_problem`), and the package keeps no validation framework
between a file and its numbers. A field that older files lack is `ABSENT` (not written), which
is not JSON null (written as null): so every committed file reads and writes back unchanged.
Adding a field to the record is one line in `CellRecord` (its place there is its place in the
file); the store returns these records everywhere (`read`, `load`) and the report reads their
attributes, so nothing else changes. `source`, where a record was read from, is not in the file."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from robustbench_lite.errors import RBError
from robustbench_lite.protocol.contracts import Knowledge
from robustbench_lite.protocol.evaluate import CellArrays
from robustbench_lite.store.files import seal, tampering, write_json
from robustbench_lite.store.layout import NO_EOT, GridLayout, is_cell
from robustbench_lite.store.records import REQUIRED, cell_problem, cell_record, identity, owned

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Absent:
    """A field this record's file does not have (older schema): never written."""

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _Absent:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Absent:
        return self


ABSENT: Final = _Absent()


def given(value: T | _Absent) -> T | None:
    """A field's value, None where the file does not have it."""
    return None if isinstance(value, _Absent) else value


@dataclass(frozen=True, kw_only=True)
class QueryStats:
    """Queries over the attacked samples, and over the successful ones."""

    total: int
    mean: float | None
    median: float | None
    max: float | None
    mean_success: float | None
    median_success: float | None


@dataclass(frozen=True, kw_only=True)
class Samples:
    """Per-sample arrays, in sample order (index 0..n-1)."""

    index: list[int]
    clean_correct: list[bool]
    robust: list[bool]
    adv_pred: list[int]
    queries: list[int]
    distance: list[float | None]
    extras: dict[str, list[Any]]
    indicators: dict[str, list[bool | None]] | _Absent = ABSENT
    outside: list[int] | _Absent = ABSENT

    def by_index(self, flags: list[bool]) -> dict[int, bool]:
        """Per-sample flags (`robust`, `clean_correct`) by sample index."""
        return dict(zip(self.index, flags, strict=True))


@dataclass(frozen=True, kw_only=True)
class CellRecord:
    """One cell: who was attacked by what and how (identity, config), what came out (summary,
    samples) and where and on what it ran (provenance)."""

    # identity and config
    schema: int
    dataset: str
    seed: int
    threat_model: str
    eps: float
    budget: int | None
    defense: str
    attack: str
    cell: str
    knowledge: str
    minimal: bool
    config_hash: str
    config: dict[str, Any]
    # summary, all derived from the samples (checked on read)
    n: int
    clean_acc: float
    robust_acc: float
    attacked: int
    success_rate: float
    queries: QueryStats
    median_distance: float | None
    indicators: dict[str, float | None] | _Absent = ABSENT
    out_of_ball: float | _Absent | None = ABSENT
    samples: Samples
    # provenance
    no_eot: bool
    transfer: bool | _Absent = ABSENT
    bpda: str | _Absent = ABSENT  # a white-box cell on a declared front step: its approximation
    eot_draws: int
    versions: dict[str, Any]
    weights_sha256: str | _Absent | None = ABSENT
    zoo_sha256: str | _Absent = ABSENT
    device: str | _Absent = ABSENT
    executor: str | _Absent = ABSENT
    wall_time_s: float
    profile: str
    max_eval_samples: int | None
    data_sha256: str | _Absent = ABSENT
    content_hash: str | _Absent = ABSENT
    # where it was read from (None for a new record): not part of the file
    source: Path | None = field(default=None, compare=False, metadata={"json": False})

    @property
    def suffix(self) -> str:
        """The cell name after the attack's name ('@eps=0.1', '@budget=100'; '' by default)."""
        return self.cell[len(self.attack) :]

    @property
    def worst_suffix(self) -> str:
        """The suffix of the worst-case column the cell counts in: its eps (and `@no-eot`) only.
        A budget or hyper-parameter override and a plain `@no-bpda` cell attack the same ball,
        and their examples are verified like any other, so they count in the threat model's
        worst case at that eps; their own columns still name the override."""
        parts = self.suffix.split("@")[1:]
        return "".join(f"@{p}" for p in parts if p.startswith("eps=") or f"@{p}" == NO_EOT)

    @property
    def model_identity(self) -> str:
        """`<model key>:<weights SHA-256>`: the model the cell was computed on (records.identity)."""
        return identity(self.config, given(self.weights_sha256))

    @property
    def robust_by_index(self) -> dict[int, bool]:
        """The per-sample robust flags by sample index."""
        return self.samples.by_index(self.samples.robust)

    @property
    def clean_by_index(self) -> dict[int, bool]:
        """The per-sample clean-correct flags by sample index."""
        return self.samples.by_index(self.samples.clean_correct)

    @property
    def white_box(self) -> bool:
        """Whether the attack took gradients (else it queried scores or labels)."""
        return self.knowledge == Knowledge.GRADIENT

    @property
    def is_transfer(self) -> bool:
        """Whether the attack crafted its examples on a surrogate (files before it: no)."""
        return bool(given(self.transfer))

    @property
    def indicator_shares(self) -> dict[str, float | None]:
        """Indicator of failure -> share of samples ({} in files older than indicators)."""
        return given(self.indicators) or {}

    @property
    def indicator_flags(self) -> dict[str, list[bool | None]]:
        """Indicator of failure -> per-sample flags ({} in files older than indicators)."""
        return given(self.samples.indicators) or {}

    @classmethod
    def from_json(
        cls, raw: Mapping[str, Any], where: str | Path = "a cell record", source: Path | None = None
    ) -> CellRecord:
        """A record from the JSON the store wrote, verified (hashes, arrays, aggregates); a file
        (`source`) must be sealed, a record being built need not be yet."""
        record = dict(raw)
        sealed = source is not None or "content_hash" in record
        problem = tampering(record, REQUIRED) if sealed else None
        problem = problem or cell_problem(record)
        unknown = sorted(set(record) - set(ORDER))
        if problem or unknown:
            why = problem or f"it has fields no cell record has: {', '.join(unknown)}"
            raise RBError(f"refusing result file {where}: {why}; delete it and rerun")
        values = dict(record)
        values["queries"] = QueryStats(**record["queries"])
        values["samples"] = Samples(**record["samples"])
        try:
            return cls(**values, source=source)
        except TypeError as exc:  # a required field missing
            raise RBError(f"refusing result file {where}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object, in the order the store writes it; ABSENT fields left out."""
        out: dict[str, Any] = {}
        for name in ORDER:
            value = getattr(self, name)
            if value is ABSENT:
                continue
            if isinstance(value, QueryStats | Samples):
                value = {k: v for k, v in dataclasses.asdict(value).items() if v is not ABSENT}
            out[name] = value
        return out


def _in_file(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("json", True))


#: The order of a cell file's fields (the dataclass's, less those not in the file).
ORDER: Final = tuple(f.name for f in dataclasses.fields(CellRecord) if _in_file(f))


def build(
    config: dict[str, Any],
    *,
    cell: str,
    knowledge: str,
    minimal: bool,
    arrays: CellArrays,
    provenance: Mapping[str, Any],
) -> CellRecord:
    """The record of a finished cell: the one place one is made (the runner writes it)."""
    raw = cell_record(config, cell=cell, knowledge=knowledge, minimal=minimal, arrays=arrays)
    return CellRecord.from_json({**raw, **provenance}, f"the new cell {cell}")


def write(path: Path, record: CellRecord) -> None:
    """Seal and write a record (atomically)."""
    body = {k: v for k, v in record.to_json().items() if k != "content_hash"}
    write_json(path, seal(body))


def read(path: Path) -> CellRecord:
    """One cell file, verified, as a typed record."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RBError(f"corrupt result file {path} ({exc}); delete it and rerun") from None
    if not isinstance(raw, dict):
        raise RBError(f"refusing result file {path}: not a JSON object; delete it and rerun")
    return CellRecord.from_json(raw, path, source=Path(path))


def load(cell_dir: Path) -> list[CellRecord]:
    """Every cell file `<defense>/<cell>.json` under `cell_dir`, verified and typed: the one
    loader of a grid. Certificates (certificates.py) are read apart; files the store did not
    write are skipped with a warning."""
    cells = []
    for path in GridLayout(Path(cell_dir)).records():
        if not is_cell(path):
            continue
        if not owned(path):
            log.warning("%s is not a result file rb wrote: ignored", path)
            continue
        cells.append(read(path))
    return cells
