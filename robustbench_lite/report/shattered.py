"""The `shattered-gradients` flag (Athalye et al. 2018, section 4.1): on a model that declares a
non-differentiable front step, white-box cells through BPDA against the plain `@no-bpda` ones,
digit by digit, with the paired sign test the `masking` flag uses."""

from __future__ import annotations

from robustbench_lite.protocol.bpda import NO_BPDA, PLAIN
from robustbench_lite.stats import sign_test
from robustbench_lite.store.cell_record import CellRecord, given

CODE = "shattered-gradients"
MEANING = (
    "white-box attacks through BPDA (the declared front step's differentiable approximation, "
    "Athalye et al. 2018) break significantly more samples than the same attacks on the step's "
    "own gradient (sign test, p < 0.05): its gradients are shattered, and a plain white-box "
    "evaluation overstates its robustness"
)


def is_plain(cell: CellRecord) -> bool:
    """A white-box cell run on a declared front step's own gradient (`@no-bpda`)."""
    return given(cell.bpda) == PLAIN


def shattered(
    tm: str, eps: float, white: list[CellRecord], level: float, stat_min: int
) -> list[tuple[str, str]]:
    """(code, evidence) when the BPDA cells of one threat model beat its plain cells: samples
    some BPDA cell broke and no plain cell did, against the reverse; `undecided` when the test
    points that way on fewer than `stat_min` samples."""
    # Like with like: only attacks run both ways (same cell name but for @no-bpda), so a side
    # with more attacks (one failed, an override on one side) does not win by construction.
    bpda_cells = {c.cell: c for c in white if given(c.bpda) not in (None, PLAIN)}
    plain_cells = {c.cell.replace(NO_BPDA, ""): c for c in white if is_plain(c)}
    both = sorted(set(bpda_cells) & set(plain_cells))
    through = [bpda_cells[name].robust_by_index for name in both]
    plain = [plain_cells[name].robust_by_index for name in both]
    if not both:
        return []
    common = set(through[0]).intersection(*through[1:], *plain)
    held_bpda = {i: all(r[i] for r in through) for i in common}
    held_plain = {i: all(r[i] for r in plain) for i in common}
    only_bpda = sum(not held_bpda[i] and held_plain[i] for i in common)
    only_plain = sum(held_bpda[i] and not held_plain[i] for i in common)
    p = sign_test(only_bpda, only_bpda + only_plain)
    said = (
        f"{tm} eps {eps:g}: through BPDA, {', '.join(both)} broke {only_bpda} samples their plain "
        f"@no-bpda runs did not (those broke {only_plain} BPDA did not; p = {p:.2g})"
    )
    if only_bpda > only_plain and p < level:
        return [(CODE, said)]
    if only_bpda > only_plain and len(common) < stat_min:
        return [("undecided", f"too few samples to test {CODE} (n={len(common)}): {said}")]
    return []
