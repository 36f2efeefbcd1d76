"""Red flags: what an evaluation can tell about its own failures (Athalye et al. 2018; Carlini et
al. 2019, "On evaluating adversarial robustness"; Pintor et al. 2022, "Indicators of attack
failure"), computed from a row's cells and its model's diagnostics on every leaderboard build."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable

from robustbench_lite.protocol.contracts import Knowledge
from robustbench_lite.report import shattered as shattered_gradients
from robustbench_lite.report.shattered import is_plain, shattered
from robustbench_lite.report.weights import unshipped
from robustbench_lite.stats import sign_test
from robustbench_lite.store import certificates
from robustbench_lite.store.cell_record import CellRecord, given
from robustbench_lite.store.diagnostics import DiagnosticsRecord
from robustbench_lite.store.retracted import retracted

#: Code -> what it means; the leaderboard's `flags` column holds codes joined by ';'.
FLAGS: dict[str, str] = {
    "masking": "a gradient-free attack beats every white-box attack of the same threat model by "
    "more than the sampling error (sign test on the samples only it broke, p < 0.05): "
    "the gradients mislead, so white-box numbers overstate robustness",
    "white-box-only": "the worst case of a threat model comes from gradient attacks alone: "
    "gradient masking is not excluded (add square, nes or boundary)",
    "transfer-only": "the worst case of a threat model comes from transfer attacks alone: "
    "nothing attacked the model itself, so the number is an upper bound at best (add pgd, "
    "apgd-t or square)",
    "eps-not-monotone": "robust accuracy rises with eps in a sweep of one attack by more than the "
    "sampling error: the attack fails somewhere",
    "unbounded-fails": "PGD with an eps that covers the whole input box does not reach 100% "
    "success: the attack, not the defense, is failing",
    "zero-grad": "input gradients are zero or non-finite on a share of clean samples: gradient "
    "attacks see nothing there",
    "undeclared-randomness": "outputs change between identical calls of a model not declared "
    "randomized: its numbers need EOT",
    "no-diagnostics": "the model's diagnostics (zero gradients, hidden randomness, unbounded "
    "attack) are missing, unreadable or of other weights: those failures are not ruled out",
    "zero-query-success": "an attack broke samples without querying them once: it found them "
    "without asking the model (another cell's oracle, files on disk), not through the protocol",
    "transfer-beats-white-box": "examples crafted on a surrogate model break significantly more "
    "samples than every white-box attack on the model itself (sign test, p < 0.05): its "
    "gradients mislead, so its white-box numbers overstate robustness",
    "silent-success": "an attack queried a misclassified point inside the threat model and then "
    "returned one that is not adversarial, on more than 1% of its samples: the attack, not the "
    "defense, failed there (it is not counted in the worst case: only returned points are)",
    "incomplete-optimization": "an attack's best margin was still improving over the last 10% "
    "of its queries on more than half of the samples that held: more iterations or queries "
    "would have broken more",
    "weights-not-shipped": "the row was computed on other weights than the ones the model zoo "
    "ships for this defense, dataset and profile (lost, or retrained): nobody can rerun it on "
    "the same model, and `rb check` on the zoo compares other weights",
    "implausible-efficiency": "an attack flag, not the defense's: a score- or label-based attack "
    "whose successes took a median of at most 2 queries beat every white-box attack of its threat "
    "model (sign test, p < 0.05); no honest query attack learns that much from one or two "
    "answers, so it likely knew the model another way (its weights on disk), or the gradients "
    "are so masked that one or two queries break what they cannot (its verified examples still "
    "count in the worst case)",
    "undecided": "a statistical flag could not be decided: its test points one way but the row has "
    "too few samples to tell (masking or transfer below 30 samples, an indicator below 3 hits "
    "on fewer than 30 samples), so the row is not cleared of it",
    "other-zoo": "the row's weights came from a model zoo other than the one installed with the "
    "package ($RB_ZOO, a received folder) and are none of its files: the row is not the "
    "shipped model's, whatever its name says",
    "non-converging": "an attack never improved on the clean margin of more than 10% of the "
    "samples that held: it did not move there (a broken step, or no signal)",
    shattered_gradients.CODE: shattered_gradients.MEANING,
    "retracted-cell": "a cell of the row was made by code fixed since under an unchanged config "
    "(store/retracted.py): its verified examples still count, but the fixed attack may break "
    "samples it missed; `rb run` recomputes it",
    "unverified-certificate": "the runner could not recompute the row's certificate (its model "
    "is not made of the layers interval bound propagation covers), so its certified accuracy is "
    "the defense's word, shown as claimed_certified_acc and never as certified_acc",
}
#: Indicator -> (flag, the share of a cell's applicable samples above which it is raised).
#: A flag also needs at least INDICATOR_MIN samples, so one odd sample raises none.
INDICATOR_FLAGS = {
    "silent_success": ("silent-success", 0.01),
    "incomplete": ("incomplete-optimization", 0.5),
    "non_converging": ("non-converging", 0.1),
}
INDICATOR_MIN = 3
LEVEL = 0.05
#: Below this many samples a sign test that points one way cannot clear a row: `undecided`.
STAT_MIN = 30


def row_flags(cells: list[CellRecord], diagnostics: DiagnosticsRecord | None) -> list[str]:
    """The flag codes of one leaderboard row (one model's cells), with the evidence behind each."""
    return sorted({code for code, _ in evidence(cells, diagnostics)})


def evidence(
    cells: list[CellRecord], diagnostics: DiagnosticsRecord | None
) -> list[tuple[str, str]]:
    """(flag code, the numbers behind it) for every flag a row raises."""
    found: list[tuple[str, str]] = []
    by_tm: dict[tuple[str, float], list[CellRecord]] = defaultdict(list)
    for cell in cells:
        if not cell.no_eot:
            by_tm[cell.threat_model, float(cell.eps)].append(cell)
    for (tm, eps), group in sorted(by_tm.items()):
        white = [c for c in group if c.white_box]
        free = [c for c in group if not c.white_box]
        if white and not free:
            names = ", ".join(c.cell for c in white)
            found.append(("white-box-only", f"{tm} eps {eps:g}: only {names}"))
        if white and free:
            honest = [c for c in free if not _implausible(c, white)]
            found.extend(_masking(tm, eps, white, honest))
        found.extend(shattered(tm, eps, white, LEVEL, STAT_MIN))
        if all(c.is_transfer for c in group):
            names = ", ".join(c.cell for c in group)
            found.append(("transfer-only", f"{tm} eps {eps:g}: only {names}"))
    found.extend(_sweeps(cells))
    found.extend(_zero_query(cells))
    found.extend(_indicators(cells))
    found.extend(unshipped(cells))
    found.extend(_retracted(cells))
    if diagnostics is None:
        found.append(("no-diagnostics", "no verified diagnostics of this model beside its cells"))
    else:
        found.extend(diagnostics.flags.items())
    return found


#: A query attack whose successes need at most this many queries (median) is implausibly
#: efficient when it also beats every white-box attack; transfer attacks are exempt: they craft
#: on the suite's own surrogate, trained on public data, and query the target once by design.
IMPLAUSIBLE_QUERIES = 2


def _implausible(cell: CellRecord, white: list[CellRecord]) -> str | None:
    """Why a score- or label-based cell is implausibly efficient (see FLAGS), or None."""
    median = cell.queries.median_success
    if (
        cell.is_transfer
        or cell.knowledge not in (Knowledge.SCORES, Knowledge.LABELS)
        or median is None
        or median > IMPLAUSIBLE_QUERIES
    ):
        return None
    beats = _masking(cell.threat_model, float(cell.eps), white, [cell])
    if not beats:
        return None
    return f"a median of {median:g} queries per success; {beats[0][1]}"


def attack_flags(cells: list[CellRecord]) -> dict[str, list[tuple[str, str]]]:
    """Cell name -> the flags on the attack itself (not the defense) in one row's cells."""
    out: dict[str, list[tuple[str, str]]] = {}
    for cell in cells:
        if cell.no_eot:
            continue
        same = [
            c
            for c in cells
            if not c.no_eot
            and c.threat_model == cell.threat_model
            and float(c.eps) == float(cell.eps)
            and c.white_box
        ]
        why = _implausible(cell, same) if same else None
        if why:
            out[cell.cell] = [("implausible-efficiency", why)]
    return out


def _zero_query(cells: list[CellRecord]) -> list[tuple[str, str]]:
    """Cells that broke samples charged no query at all: every honest attack asks the model."""
    out = []
    for cell in cells:
        s = cell.samples
        rows = zip(s.clean_correct, s.robust, s.queries, strict=True)
        free = sum(bool(c) and not r and q == 0 for c, r, q in rows)
        if free:
            out.append(("zero-query-success", f"{cell.cell} broke {free} samples with 0 queries"))
    return out


def _retracted(cells: list[CellRecord]) -> list[tuple[str, str]]:
    """Cells whose content hash a retraction names (store/retracted.py), with its reason."""
    out = []
    for cell in cells:
        why = retracted(given(cell.content_hash))
        if why:
            out.append(("retracted-cell", f"{cell.cell}: {why}"))
    return out


def _masking(
    tm: str, eps: float, white: list[CellRecord], free: list[CellRecord]
) -> list[tuple[str, str]]:
    """Samples a gradient-free attack broke that no white-box attack did, against the reverse."""
    white_robust = [c.robust_by_index for c in white]
    out = []
    for cell in free:
        robust = cell.robust_by_index
        common = set(robust).intersection(*white_robust)
        only_free = sum(not robust[i] and all(w[i] for w in white_robust) for i in common)
        only_white = sum(robust[i] and not all(w[i] for w in white_robust) for i in common)
        p = sign_test(only_free, only_free + only_white)
        code = "transfer-beats-white-box" if cell.is_transfer else "masking"
        said = (
            f"{tm} eps {eps:g}: {cell.cell} broke {only_free} samples no white-box "
            f"attack broke (they broke {only_white} it did not; p = {p:.2g})"
        )
        if only_free > only_white and p < LEVEL:
            out.append((code, said))
        elif only_free > only_white and len(common) < STAT_MIN:
            out.append(("undecided", f"too few samples to test {code} (n={len(common)}): {said}"))
    return out


def _sweeps(cells: list[CellRecord]) -> list[tuple[str, str]]:
    """An attack's robust accuracy should not rise with eps beyond the paired sampling error."""
    by_attack: dict[str, list[CellRecord]] = defaultdict(list)
    for cell in cells:
        if not cell.no_eot and not is_plain(cell):  # @no-bpda: another gradient, not a sweep
            by_attack[cell.attack].append(cell)
    out = []
    for attack, group in by_attack.items():
        group = sorted(group, key=lambda c: float(c.eps))
        for small, large in itertools.pairwise(group):
            a, b = small.robust_by_index, large.robust_by_index
            common = set(a) & set(b)
            rose = sum(not a[i] and b[i] for i in common)
            fell = sum(a[i] and not b[i] for i in common)
            p = sign_test(rose, rose + fell)
            if rose > fell and p < LEVEL:
                out.append(
                    (
                        "eps-not-monotone",
                        f"{attack}: robust at eps {large.eps:g} on {rose} samples it broke "
                        f"at eps {small.eps:g} (p = {p:.2g})",
                    )
                )
    return out


def _indicators(cells: list[CellRecord]) -> list[tuple[str, str]]:
    """Cells whose indicators of attack failure (protocol/indicators.py) pass their thresholds."""
    out = []
    for cell in cells:
        values = cell.indicator_flags
        for kind, (code, threshold) in INDICATOR_FLAGS.items():
            known = [v for v in values.get(kind, []) if v is not None]
            hits = sum(known)
            small = 0 < hits < INDICATOR_MIN and len(known) < STAT_MIN
            if small and hits / len(known) > threshold:
                out.append(
                    (
                        "undecided",
                        f"too few samples to test {code}: {cell.cell}: {hits} of {len(known)}",
                    )
                )
            if known and hits >= INDICATOR_MIN and hits / len(known) > threshold:
                out.append(
                    (
                        code,
                        f"{cell.cell}: {hits} of {len(known)} samples ({hits / len(known):.0%})",
                    )
                )
    return out


def certificate_evidence(columns: Iterable[str]) -> list[tuple[str, str]]:
    """`unverified-certificate` for a row whose certificates include claimed ones (Gowal et al.
    2018's bounds could not be recomputed on its model), with those columns as evidence."""
    claimed = sorted(c for c in columns if c.startswith(certificates.CLAIMED))
    if not claimed:
        return []
    return [("unverified-certificate", f"{', '.join(claimed)}: the defense's own certificate")]
