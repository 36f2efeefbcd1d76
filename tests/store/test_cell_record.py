"""The typed cell record (issue 38): every committed cell file reads through `CellRecord` and
writes back byte for byte, the committed leaderboards and attack tables rebuild byte for byte
from their cells, and a record that is not the store's is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustbench_lite.errors import RBError
from robustbench_lite.report import leaderboard, ranking, tables
from robustbench_lite.store import cell_record, cell_schema
from robustbench_lite.store.cell_record import ABSENT, CellRecord
from robustbench_lite.store.layout import is_cell

RESULTS = Path(__file__).resolve().parents[2] / "results"
GRIDS = sorted(p.parent for p in RESULTS.glob("**/leaderboard.csv"))
CELLS = sorted(p for grid in GRIDS for p in grid.glob("*/*.json") if is_cell(p))
OLD_CELL = Path(__file__).parent / "fixtures" / "schema1-abs-binary-pgd.json"


def test_every_committed_cell_reads_and_writes_back_byte_for_byte(tmp_path: Path) -> None:
    assert len(CELLS) > 250
    for path in CELLS:
        assert _writes_back_byte_for_byte(path, tmp_path), path


def _writes_back_byte_for_byte(path: Path, tmp_path: Path) -> bool:
    again = tmp_path / "again.json"
    cell_record.write(again, cell_record.read(path))
    return again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: str(p.relative_to(RESULTS)))
def test_the_committed_tables_rebuild_byte_for_byte(grid: Path) -> None:
    assert tables.to_csv(leaderboard.build(grid)) == (grid / "leaderboard.csv").read_text()
    frame = ranking.table(grid)
    text = frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    assert text == (grid / "attacks.csv").read_text()


def test_typed_fields_and_older_files(tmp_path: Path) -> None:
    new = cell_record.read(RESULTS / "mnist-5k" / "quick" / "pgd-at" / "nes.json")
    assert new.samples.outside is not ABSENT and new.out_of_ball is not ABSENT
    assert new.queries.median_success is not None and new.knowledge == "scores"
    # A schema-1 cell as the store wrote it (abs-binary pgd on the lost weights, committed until
    # 2026-12-07): no committed result is that old any more, so the file is kept here.
    old = cell_record.read(OLD_CELL)
    assert old.schema == 1 and old.zoo_sha256 is ABSENT and old.samples.indicators is ABSENT
    assert "zoo_sha256" not in old.to_json()
    assert _writes_back_byte_for_byte(OLD_CELL, tmp_path)


def test_a_record_that_is_not_the_stores_is_refused() -> None:
    raw = json.loads((RESULTS / "mnist-5k" / "quick" / "none" / "pgd.json").read_text())
    with pytest.raises(RBError, match="content hash"):  # an edited file, sealed or not
        CellRecord.from_json({**raw, "smuggled": 1})
    raw.pop("content_hash")
    with pytest.raises(RBError, match="fields no cell record has: smuggled"):
        CellRecord.from_json({**raw, "smuggled": 1})
    with pytest.raises(RBError, match=r"robust_acc .* contradicts its per-sample arrays"):
        CellRecord.from_json({**raw, "robust_acc": 0.99})


def test_the_documented_schema_is_the_records() -> None:
    page = (RESULTS.parent / "docs" / "cell-file.md").read_text()
    block = page.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == cell_schema.json_schema()
    schema = cell_schema.json_schema()
    for path in CELLS[:20]:  # every field of a committed file is a property of the schema
        raw = json.loads(path.read_text())
        assert set(raw) <= set(schema["properties"])
        assert set(schema["required"]) <= set(raw)
