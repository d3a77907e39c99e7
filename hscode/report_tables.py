"""Tables of the reports: Markdown (``markdown_table``, ``metric_rows`` flattening nested
metrics) and HTML (``render_table``: escaped cells, numbers right-aligned, printed by their
``METRICS`` kind, long tables cut to ``max_rows`` rows with "... and M more"; ``metric_table``:
columns that are figures of ``METRICS``, headed by their names, with a legend of what each
means; ``html_table`` for callers' own sections).

Every text from data is escaped here, except a ``Cell``'s markup, which whoever built it
escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hscode.metrics_catalog import describe, format_value


def metric_rows(metrics: Mapping[str, Any] | None, prefix: str = "") -> list[dict[str, Any]]:
    """Flatten nested numeric metrics into ``[{"metric": "test.top1", "value": 0.83}]``."""
    rows: list[dict[str, Any]] = []
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            rows.append({"metric": name, "value": value})
        elif isinstance(value, Mapping):
            rows.extend(metric_rows(value, prefix=f"{name}."))
    return rows


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    float_format: str = ".4f",
) -> str:
    """A Markdown table (for artifacts and reports); pipes and newlines in cells escaped."""
    if not rows:
        return "_none_\n"
    cols = list(columns or rows[0].keys())
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_cell(r.get(c), float_format) for c in cols) + " |")
    return "\n".join(out) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _cell(value: Any, float_format: str) -> str:
    if isinstance(value, float):
        return format(value, float_format)
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------- HTML


NUMERIC = (int, float, np.integer, np.floating)
DEFAULT_MAX_ROWS = 50


class Cell:
    """A table cell whose HTML is already built (escaped by whoever built it)."""

    def __init__(self, markup: str, numeric: bool = False) -> None:
        self.markup, self.numeric = markup, numeric


def render_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]] | None = None,
    *,
    kinds: Mapping[str, str] | None = None,
    widths: Sequence[str] | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    more: str = "",
) -> str:
    """An HTML table: ``columns`` as (key, header) pairs (default: every key, as headers),
    values printed by ``kinds[key]`` (``format_value``), numbers right-aligned, every text
    escaped; past ``max_rows`` rows the rest is one "... and M more" line."""
    if not rows:
        return "<p><em>none</em></p>"
    if columns is None:
        keys: list[str] = []
        for r in rows:
            keys += [c for c in r if c not in keys]
        columns = [(k, k) for k in keys]
    esc = html.escape
    kinds = kinds or {}
    out = ["<table>"]
    if widths:
        out.append(
            "<colgroup>" + "".join(f"<col style='width:{w}'>" for w in widths) + "</colgroup>"
        )
    numeric_col = {
        key: all(
            isinstance(r.get(key), NUMERIC) or r.get(key) is None
            or (isinstance(r.get(key), Cell) and r.get(key).numeric)
            for r in rows
        )
        and any(r.get(key) is not None for r in rows)
        for key, _ in columns
    }  # fmt: skip
    head = "".join(
        f"<th class='num'>{esc(h)}</th>" if numeric_col[k] else f"<th>{esc(h)}</th>"
        for k, h in columns
    )
    out.append(f"<thead><tr>{head}</tr></thead><tbody>")
    shown = rows if max_rows is None else rows[:max_rows]
    for r in shown:
        cells = []
        for key, _ in columns:
            value = r.get(key)
            if isinstance(value, Cell):
                text, numeric = value.markup, value.numeric
            else:
                numeric = isinstance(value, NUMERIC) and not isinstance(value, bool)
                kind = kinds.get(key)
                if kind is None:
                    text = esc(_fmt(value))
                else:
                    text = esc(format_value(value, kind)) if value is not None else ""
            cells.append(f"<td class='num'>{text}</td>" if numeric else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    left = len(rows) - len(shown)
    if left > 0:
        out.append(
            f"<tr class='more'><td colspan='{len(columns)}'>... and {left:,} more"
            f"{esc(more)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def html_table(rows: Sequence[Mapping[str, Any]], max_rows: int | None = DEFAULT_MAX_ROWS) -> str:
    """An escaped HTML table of ``rows`` (every key a column; numbers right-aligned; past
    ``max_rows`` rows, "... and M more"), for callers building ``extra_sections``."""
    return render_table(rows, max_rows=max_rows)


def metric_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    scope: str,
    level: Any,
    *,
    first: tuple[str, str] | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    more: str = "",
    widths: Sequence[str] | None = None,
) -> str:
    """A table whose columns are figures of ``METRICS`` (keys ``scope.column``), headed by
    their names, with a legend of what each means."""
    infos = {c: describe(f"{scope}.{c}" if scope else c, level) for c in columns}
    cols = ([first] if first else []) + [(c, infos[c].name) for c in columns]
    kinds = {c: info.kind for c, info in infos.items() if info.kind != "text"}
    table = render_table(rows, cols, kinds=kinds, widths=widths, max_rows=max_rows, more=more)
    return table + legend(infos.values())


def legend(infos: Any) -> str:
    """A legend line under a table: each ``MetricInfo``'s name (once) and its meaning."""
    esc = html.escape
    seen: dict[str, str] = {}
    for info in infos:
        seen.setdefault(info.name, info.meaning)
    items = "; ".join(f"<b>{esc(n)}</b>: {esc(m)}" for n, m in seen.items())
    return f"<p class='legend'>{items}.</p>" if items else ""
