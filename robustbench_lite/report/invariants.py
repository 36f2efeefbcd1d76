"""Soundness invariants checked on every run and every `rb check`, as errors, not flags: a sample
robust but misclassified clean, a certified sample broken by an attack, a worst case above one of
its own attacks. Any of them means a bug or a lie somewhere, never a finding about a defense."""

from __future__ import annotations

import math
from pathlib import Path

from robustbench_lite.report.leaderboard import build, rows, worst_groups
from robustbench_lite.store import cell_record, certificates
from robustbench_lite.store.cell_record import CellRecord


def violations(cell_dir: Path) -> list[str]:
    """Every broken invariant among the result files of one dataset/profile folder."""
    cells = cell_record.load(cell_dir)
    found = []
    for cell in cells:
        samples = cell.samples
        bad = [
            i
            for i, ok, clean in zip(
                samples.index, samples.robust, samples.clean_correct, strict=True
            )
            if ok and not clean
        ]
        if bad:
            found.append(f"{cell.defense}/{cell.cell}: robust but misclassified {bad[:10]}")
    found.extend(f"unsound certificate: {v}" for v in unsound_certificates(cell_dir, cells))
    board = build(cell_dir).set_index("defense")
    for label, _, group in rows(cells):
        for name, members in worst_groups(group).items():
            worst = float(board.loc[label, name])
            per_cell = [c.robust_by_index for c in members]
            common = set(per_cell[0]).intersection(*per_cell[1:])
            for member, robust in zip(members, per_cell, strict=True):
                acc = sum(bool(robust[i]) for i in common) / max(1, len(common))
                if worst > acc + 1e-9:
                    found.append(
                        f"{label}: {name} {worst:.3f} above {member.cell} {acc:.3f} "
                        "on the same samples"
                    )
    return found


def unsound_certificates(cell_dir: Path, cells: list[CellRecord]) -> list[str]:
    """Samples certified at some eps that an attack cell of the same threat model and eps broke."""
    found = []
    for cert in certificates.load(cell_dir):
        flags = cert.samples.certified_by_index
        for cell in cells:
            same = cell.defense == cert.defense and cell.threat_model == certificates.THREAT_MODEL
            same = same and cell.model_identity == cert.model_identity  # the same model's
            if not (same and math.isclose(cell.eps, cert.eps)):
                continue
            robust = cell.robust_by_index
            broken = sorted(i for i, ok in flags.items() if ok and i in robust and not robust[i])
            if broken:
                found.append(f"{cert.defense} x {cell.cell}: certified but broken {broken}")
    return found
