"""The progress callbacks the domain calls, read one way by every display (the CLI's bar,
the Prefect progress artifacts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
