"""Crawl flow: the CLIP portal (or the emulator) -> raw zone."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows._common import resolve_settings
from hscode.summaries import jsonable
from tasks.crawl import crawl_portal


@flow(name="crawl", log_prints=True)
def crawl_flow(
    since: dt.date | None = None,
    until: dt.date | None = None,
    series: list[str] | None = None,
    portal_url: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fetch the cases decided in ``since..until`` (default: the crawl's own resume window).

    Args:
        since: first decision date; default: the recrawl window before the last crawl.
        until: last decision date; default: today.
        series: any of ordinary, council, committee; default: all.
        portal_url: base URL of the portal or of an emulator; default from settings.
        settings_overrides: other ``Settings`` fields, e.g. ``{"request_rate": 0.5}``.
    """
    settings = resolve_settings(settings_overrides, portal_url=portal_url)
    return jsonable(crawl_portal(settings, since, until, series))
