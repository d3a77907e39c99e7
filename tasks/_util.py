"""Artifact tables from JSON-able summaries (``hscode.summaries.jsonable`` makes those)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def scalar_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{"field": k, "value": v}]`` for the scalar fields of a summary (for table artifacts)."""
    return [
        {"field": k, "value": v}
        for k, v in summary.items()
        if v is None or isinstance(v, (str, int, float, bool))
    ]


def markdown_table(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    """Artifact tables: ``hscode.reports.markdown_table`` with 4 significant digits."""
    from hscode.reports import markdown_table as _table

    return _table(rows, columns, float_format=".4g")
