"""Turning domain result objects into JSON-able summaries and artifact tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """A JSON-able copy of a domain result (dataclasses, dates, paths, nested containers)."""
    if callable(getattr(value, "as_dict", None)) and not isinstance(value, type):
        return jsonable(value.as_dict())  # the domain's own view (with derived fields such as ok)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (Path, enum.Enum)):
        return str(value.value if isinstance(value, enum.Enum) else value)
    if isinstance(value, float) and math.isnan(value):  # NaN is not JSON
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


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


def progress_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[int, int | None, str]:
    """``(done, total, what)`` from either progress style the domain uses.

    ``progress(done, total)`` or ``progress({"phase": ..., "done": n, "total": m, ...})``
    (the crawl reports list pages as ``page``/``last_page``).
    """
    if args and isinstance(args[0], Mapping):
        event = args[0]
        done = event.get("done", event.get("page", 0))
        total = (
            event.get("total") if "done" in event else event.get("last_page", event.get("total"))
        )
        what = " ".join(
            str(event[k]) for k in ("series", "phase", "stage", "window") if event.get(k)
        )
        return int(done or 0), (int(total) if total else None), what
    done = args[0] if args else kwargs.get("done", 0)
    total = args[1] if len(args) > 1 else kwargs.get("total")
    return int(done or 0), (int(total) if total else None), str(kwargs.get("what", ""))
