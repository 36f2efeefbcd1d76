"""Soundness invariants checked on every run and every `rb check`, as errors, not flags: a sample
robust but misclassified clean, a certified sample broken by an attack, a worst case above one of
its own attacks. Any of them means a bug or a lie somewhere, never a finding about a defense."""

from __future__ import annotations

from pathlib import Path

from robustbench_lite import certified, leaderboard


def violations(cell_dir: Path) -> list[str]:
    """Every broken invariant among the result files of one dataset/profile folder."""
    cells = leaderboard.load_cells(cell_dir)
    found = []
    for cell in cells:
        samples = cell["samples"]
        bad = [
            i
            for i, ok, clean in zip(
                samples["index"], samples["robust"], samples["clean_correct"], strict=True
            )
            if ok and not clean
        ]
        if bad:
            found.append(f"{cell['defense']}/{cell['cell']}: robust but misclassified {bad[:10]}")
    found.extend(f"unsound certificate: {v}" for v in certified.violations(cell_dir, cells))
    board = leaderboard.build(cell_dir).set_index("defense")
    for label, _, group in leaderboard.rows(cells):
        for name, members in leaderboard.worst_groups(group).items():
            worst = float(board.loc[label, name])
            per_cell = [leaderboard.robust_by_index(c) for c in members]
            common = set(per_cell[0]).intersection(*per_cell[1:])
            for member, robust in zip(members, per_cell, strict=True):
                acc = sum(bool(robust[i]) for i in common) / max(1, len(common))
                if worst > acc + 1e-9:
                    found.append(
                        f"{label}: {name} {worst:.3f} above {member['cell']} {acc:.3f} "
                        "on the same samples"
                    )
    return found
