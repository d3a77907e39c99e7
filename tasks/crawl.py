"""Crawl task: portal (or emulator) -> raw zone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from hscode.settings import Settings
from hscode.summaries import jsonable
from tasks._progress import ArtifactProgress
from tasks._util import markdown_table, scalar_rows
from tasks.tags import CRAWL_SLOT_TAG

if TYPE_CHECKING:
    from hscode.crawl import CrawlSummary


# The crawl resumes from the raw-zone manifest, so a retry re-fetches only what is missing.
@task(
    name="crawl-portal",
    retries=2,
    retry_delay_seconds=[30, 120],
    tags=["crawl", "portal", CRAWL_SLOT_TAG],
    cache_policy=NO_CACHE,
)
def crawl_portal(
    settings: Settings,
    since: dt.date | None,
    until: dt.date | None,
    series: Sequence[str] | None = None,
) -> CrawlSummary:
    from hscode.crawl import crawl
    from hscode.series import SERIES

    summary = crawl(
        settings,
        since,
        until,
        series=tuple(series) if series else SERIES,
        progress=ArtifactProgress("crawl-progress", "detail pages fetched"),
    )
    create_markdown_artifact(
        key="crawl-summary",
        markdown=(
            f"# Crawl summary\n\nPortal: `{settings.portal_url}`\n\n"
            f"Window: {summary.window or 'none'}\n\n"
            + markdown_table(scalar_rows(jsonable(summary)))
        ),
        description="What the crawl fetched, skipped and failed",
    )
    return summary
