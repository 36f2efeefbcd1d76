"""The tables of a defense page: its cells (statistics and indicators of attack failure), its
certificates and every file's provenance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from robustbench_lite.report.columns import Column, Stat
from robustbench_lite.report.format import is_missing
from robustbench_lite.report.site.html import esc, table, value_cell
from robustbench_lite.store.cell_record import CellRecord, given
from robustbench_lite.store.certificates import CertificateRecord

INDICATORS = ("silent_success", "incomplete", "non_converging")


def cells_table(cells: list[CellRecord], row: dict[str, Any]) -> str:
    columns = [
        ("cell", "attack cell"),
        ("threat model", ""),
        ("eps", ""),
        ("knowledge", "gradient, scores or labels"),
        ("n", "test samples"),
        ("clean acc", ""),
        ("robust acc", "verified by the runner"),
        ("success rate", "of the attacked (clean-correct) samples"),
        ("queries median", "of successful samples"),
        ("queries mean", "of all attacked samples"),
        ("queries max", ""),
        ("median distance", ""),
        ("budget", "queries per sample"),
        ("EOT draws", "forward passes averaged per query"),
        ("wall time s", ""),
        ("silent success", "share of its samples: an adversarial point queried, then lost"),
        ("incomplete", "share of the held samples still improving over the last 10% of queries"),
        ("non-converging", "share of the held samples never improving on the clean margin"),
    ]
    rows = []
    for c in cells:
        q = c.queries
        name = c.cell
        interval = ""
        lo, hi = (row.get(Column.parse(name).of(s).name) for s in (Stat.LO, Stat.HI))
        if not is_missing(lo) and not is_missing(hi):
            interval = f'<span class="ci" title="95% Wilson interval">[{lo:.3f}, {hi:.3f}]</span>'
        values = [("n", c.n), ("clean_acc", c.clean_acc)]
        tail = [
            ("success_rate", c.success_rate),
            ("q_median_queries", q.median_success),
            ("q_mean_queries", q.mean),
            ("q_max_queries", q.max),
            ("median_dist", c.median_distance),
            ("budget_queries", c.budget),
            ("eot_n", c.eot_draws),
            ("wall_time", c.wall_time_s),
            *((k, c.indicator_shares.get(k)) for k in INDICATORS),
        ]
        rows.append(
            f'<tr data-cell="{esc(name)}"><td>{esc(name)}</td><td class="left">{esc(c.threat_model)}</td>'
            + value_cell("eps", c.eps)
            + f'<td class="left">{esc(c.knowledge)}</td>'
            + "".join(value_cell(k, v) for k, v in values)
            + value_cell("robust_acc", c.robust_acc, extra=interval)
            + "".join(value_cell(k, v) for k, v in tail)
            + "</tr>\n"
        )
    return table(columns, rows, css=["cells"])


def certificates_table(certs: list[CertificateRecord]) -> str:
    rows = [
        f"<tr><td>{esc(c.column)}</td>"
        + "".join(
            value_cell(k, v)
            for k, v in (
                ("eps", c.eps),
                ("n", c.n),
                ("clean_acc", c.clean_acc),
                ("certified_acc", c.certified_acc),
                ("seed", c.seed),
            )
        )
        + "</tr>\n"
        for c in certs
    ]
    headers = [(h, "") for h in ("column", "eps", "n", "clean acc", "certified acc", "seed")]
    return table(headers, rows, css=["certificates"])


class Provenance(NamedTuple):
    """What a provenance line shows of one file (a cell or a certificate)."""

    name: str
    seed: Any
    attack: Mapping[str, Any]  # the attack's hyper-parameters ({} for a certificate)
    versions: Mapping[str, Any]
    config_hash: str
    content_hash: str

    @classmethod
    def of_cell(cls, c: CellRecord) -> Provenance:
        attack = (c.config.get("attack") or {}).get("config", {})
        return cls(c.cell, c.seed, attack, c.versions, c.config_hash, given(c.content_hash) or "")

    @classmethod
    def of_certificate(cls, r: CertificateRecord) -> Provenance:
        attack = (r.config.get("attack") or {}).get("config", {})
        return cls(r.column or "", r.seed, attack, r.versions, r.config_hash, r.content_hash)


def provenance_table(records: list[Provenance]) -> str:
    rows = []
    for r in records:
        versions = ", ".join(f"{k} {v}" for k, v in r.versions.items())
        attack = ", ".join(f"{k}={v}" for k, v in sorted(r.attack.items()))
        rows.append(
            f"<tr><td>{esc(r.name)}</td><td>{esc(r.seed)}</td>"
            f'<td class="text">{esc(attack)}</td>'
            f'<td class="text">{esc(versions)}</td>'
            f'<td class="text"><code>{esc(r.config_hash)}</code></td>'
            f'<td class="text"><code>{esc(r.content_hash)}</code></td></tr>\n'
        )
    headers = [
        ("cell", ""),
        ("seed", "the run's seed"),
        ("attack hyper-parameters", "record['config']['attack']['config']"),
        ("versions", "package versions that made the file"),
        ("config_hash", "hash of the cell's config: a rerun with the same hash is skipped"),
        ("content_hash", "hash of the file's content: an edited file is refused"),
    ]
    return table(headers, rows, css=["provenance"])
