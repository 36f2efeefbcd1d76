"""HTML building blocks of the static site: the page shell with its inline CSS and the few lines
of JavaScript that sort a table, and table helpers. No network, no CDN: every page stands alone.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from robustbench_lite.report.format import format_value, is_missing

CSS = """
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;
  background:#fff;margin:0 auto;max-width:78rem;padding:1rem;overflow-wrap:anywhere}
h1{font-size:1.6rem;margin:.4rem 0}h2{font-size:1.25rem;margin:2rem 0 .4rem}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
a{color:#0b5cad}nav a{margin-right:.8rem}
.scroll{overflow-x:auto;width:fit-content;max-width:100%;margin:.4rem 0 1rem;border:1px solid #dde2e8;
  border-radius:6px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.9rem}
th,td{padding:.3rem .6rem;border-bottom:1px solid #e6eaef;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:#fff}
thead th{background:#f3f5f8;font-weight:600}
thead th:first-child{background:#f3f5f8}
table.sortable thead th{cursor:pointer;user-select:none}
thead th[aria-sort=ascending]::after{content:" \\25B2";font-size:.7em}
thead th[aria-sort=descending]::after{content:" \\25BC";font-size:.7em}
th.worst,td.worst{background:#fbf6e9}td.worst:first-child{background:#fff}
tbody tr:hover td{background:#eef4fb}
.n,.ci{color:#5b6673;font-size:.8em;margin-left:.25em}
.flag{display:inline-block;background:#fde8e8;color:#8a1c1c;border-radius:4px;
  padding:0 .3em;margin-left:.2em;font-size:.8em}
th.left,td.left{text-align:left}
td.text{text-align:left;white-space:normal;min-width:12rem}
code{font-size:.85em;word-break:break-all}
dl.legend{display:grid;grid-template-columns:minmax(6rem,max-content) 1fr;gap:.3rem 1rem}
dl.legend dt{font-weight:600}dl.legend dd{margin:0}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #e6eaef}
figcaption{color:#5b6673;font-size:.85rem}
.muted{color:#5b6673}
table.per-row th,table.ranking th{white-space:normal;min-width:4.5rem;vertical-align:bottom}
table.headline td.flags,table.unranked td.flags{white-space:normal;min-width:9rem}
table.unranked td{color:#7a848f}table.unranked td.why{min-width:16rem;max-width:28rem}
"""

SORT_JS = """
function sortKey(cell) {
  var v = cell.getAttribute("data-value");
  if (v === null) v = cell.textContent.trim();
  if (v === "") return null;
  var x = Number(v);
  return isFinite(x) ? x : v.toLowerCase();
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
        if (x === null || y === null) return (x === null) - (y === null);  // empty cells last
        var c = typeof x === "number" && typeof y === "number" ? x - y
          : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
    });
  });
});
"""


#: Headers of text columns, aligned left like their values.
LEFT = frozenset(
    {
        "value",
        "threat model",
        "knowledge",
        "attack hyper-parameters",
        "versions",
        "config_hash",
        "content_hash",
        "flags",
        "defense",
        "attack",
        "why",
    }
)


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str, *, sortable: bool = True) -> str:
    """A complete HTML page: viewport meta tag, inline CSS, and the sorting script if asked."""
    script = f"<script>{SORT_JS}</script>" if sortable else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        f"{script}\n</body>\n</html>\n"
    )


def data_value(value: Any) -> str:
    """The exact value for sorting and for tests ('' when missing)."""
    if is_missing(value):
        return ""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def value_cell(column: str, value: Any, *, extra: str = "", css: str = "") -> str:
    """A <td> carrying `data-col` and `data-value`, shown formatted, plus `extra` markup."""
    cls = f' class="{css}"' if css else ""
    return (
        f'<td data-col="{esc(column)}" data-value="{esc(data_value(value))}"{cls}>'
        f"{esc(format_value(column, value))}{extra}</td>"
    )


def table(
    headers: Sequence[tuple[str, str]],
    rows: Iterable[str],
    *,
    sortable: bool = True,
    css: Sequence[str] = (),
) -> str:
    """A table in a horizontally scrolling wrapper; `headers` are (label, tooltip), `rows` are
    ready <tr> elements."""
    classes = list(css) + (["sortable"] if sortable else [])
    head = "".join(
        '<th scope="col"'
        + (' class="left"' if label in LEFT else "")
        + (f' title="{esc(tip)}">' if tip else ">")
        + f"{esc(label)}</th>"
        for label, tip in headers
    )
    return (
        f'<div class="scroll"><table class="{" ".join(classes)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{''.join(rows)}</tbody></table></div>"
    )


def key_value_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of settings (hyper-parameters, versions), unsorted."""
    rows = [
        f'<tr><td>{esc(k)}</td><td class="text"><code>{esc(v)}</code></td></tr>' for k, v in pairs
    ]
    if not rows:
        return '<p class="muted">(none)</p>'
    return table([("name", ""), ("value", "")], rows, sortable=False)
