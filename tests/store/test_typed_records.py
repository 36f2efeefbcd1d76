"""Diagnostics and certificates read back as typed records: every committed file reads through
`DiagnosticsRecord` or `CertificateRecord` with the values it holds; a file that does not verify
is refused as before (diagnostics: None; certificates: an RBError), and so is one whose fields
are not of their record's types."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from robustbench_lite.errors import RBError
from robustbench_lite.store import certificates, diagnostics
from robustbench_lite.store.files import seal
from robustbench_lite.store.layout import DIAGNOSTICS, is_certificate
from robustbench_lite.store.records import identity

RESULTS = Path(__file__).resolve().parents[2] / "results"
DIAGNOSED = sorted(RESULTS.glob(f"**/{DIAGNOSTICS}.json"))
CERTIFIED = sorted(p for p in RESULTS.glob("**/*.json") if is_certificate(p))


def _in_file(record: Any) -> dict[str, Any]:
    """The record's fields as the file spells them (less `source`, which is not in it)."""
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    fields.pop("source")
    if isinstance(fields.get("samples"), certificates.CertificateSamples):
        fields["samples"] = dataclasses.asdict(fields["samples"])
    return fields


def test_every_committed_diagnostics_file_reads_as_a_record() -> None:
    assert len(DIAGNOSED) > 20
    for path in DIAGNOSED:
        raw = json.loads(path.read_text())
        record = diagnostics.load(path)
        assert record is not None and record.source == path, path
        assert _in_file(record) == {k: raw.get(k) for k in _in_file(record)}, path
        assert record.model_identity == identity(raw["config"], raw["weights_sha256"])
        assert diagnostics.of_model(path, record.model_identity) == record
        assert diagnostics.of_model(path, "other:model") is None


def test_every_committed_certificate_reads_as_a_record() -> None:
    assert len(CERTIFIED) >= 6
    read = {cert.source: cert for grid in {p.parent.parent for p in CERTIFIED}
            for cert in certificates.load(grid)}  # fmt: skip
    assert sorted(read) == CERTIFIED
    for path, cert in read.items():
        raw = json.loads(path.read_text())
        expected = {k: raw.get(k) for k in _in_file(cert)}
        assert _in_file(cert) == {**expected, "versions": raw.get("versions") or {}}, path
        assert cert.model_identity == identity(raw["config"], raw["weights_sha256"])
        assert cert.shown_column == raw["column"]  # every committed one the runner verified
        flags = cert.samples.certified_by_index
        assert sum(flags.values()) / cert.n == pytest.approx(cert.certified_acc)


def test_a_diagnostics_file_that_does_not_verify_is_none(tmp_path: Path) -> None:
    raw = json.loads(DIAGNOSED[0].read_text())
    bad = {
        "edited": {**raw, "changed_share": 0.5},  # its seal no longer matches
        "flags its numbers do not raise": seal({**raw, "flags": {"zero-grad": "made up"}}),
        "flags not a mapping": seal({**raw, "zero_grad_share": 1.0, "flags": ["zero-grad"]}),
        "a share that is no number": seal({**raw, "zero_grad_share": "none"}),
        "weights that are no hash": seal({**raw, "weights_sha256": 7}),
    }
    for why, record in bad.items():
        path = tmp_path / f"{DIAGNOSTICS}.json"
        path.write_text(json.dumps(record))
        assert diagnostics.load(path) is None, why
    path.write_text(json.dumps(seal(raw)))
    assert diagnostics.load(path) is not None


def test_a_certificate_that_does_not_verify_is_refused(tmp_path: Path) -> None:
    raw = json.loads(CERTIFIED[0].read_text())
    (tmp_path / "x").mkdir()
    path = tmp_path / "x" / CERTIFIED[0].name
    for record, why in [
        ({**raw, "certified_acc": 0.99}, "content hash"),
        (seal({**raw, "certified_acc": 0.99}), "contradicts its per-sample flags"),
        (seal({k: v for k, v in raw.items() if k != "defense"}), "missing or not of its type"),
        (seal({**raw, "eps": "0.3"}), "missing or not of its type"),
        (seal({**raw, "samples": {**raw["samples"], "index": [0]}}), "sample indices"),
    ]:
        path.write_text(json.dumps(record))
        with pytest.raises(RBError, match=why):
            certificates.load(tmp_path)
