"""Crawl the portal's classification cases into the raw zone: incremental and resumable.

For each series: decision-date windows of at most a calendar year, every list page of a
window, then the detail of every listed case not already stored in good shape, then its
images. Every answer is in the raw zone before it is parsed, so a crawl killed at any
point re-runs without re-downloading what is stored; the watermark (per series, in
``state_dir/watermarks.json``) only advances over windows that completed fully, so a
re-run leaves no gaps. Normalizing into the cases dataset is ``hscode.normalize``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hscode.portal.client import PortalClient
from hscode.portal.errors import ImageRefused, PortalError, PortalHTTPError
from hscode.portal.parse import DetailRecord, ListItem, PortalFormatError, parse_detail, parse_list
from hscode.portal.politeness import crawl_slot
from hscode.rawzone import RawZone, list_page_key
from hscode.series import SERIES
from hscode.settings import Settings
from hscode.storage import atomic_write
from hscode.text import clean_text

log = logging.getLogger(__name__)

EARLIEST = date(1988, 1, 1)  # the portal's oldest decisions

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Failure:
    series: str
    kind: str  # list | detail | image
    key: str  # window+page, RRDC_NO, or image URL
    reason: str
    blocking: bool = True  # keeps the window's watermark from advancing


@dataclass
class CrawlSummary:
    requests: int = 0
    retries: int = 0
    faults_seen: int = 0
    list_pages: int = 0  # fetched from the portal
    list_pages_reused: int = 0  # closed windows' pages already in the raw zone
    cases_listed: int = 0
    details_fetched: int = 0
    details_skipped_stored: int = 0
    details_refetched_changed: int = 0  # stored detail no longer matches the list: fetched again
    images_fetched: int = 0
    images_skipped_stored: int = 0
    images_refused: int = 0
    windows_total: int = 0
    windows_completed: int = 0
    failures: list[Failure] = field(default_factory=list)
    refusals: list[str] = field(
        default_factory=list
    )  # image URLs off the portal's origin, with why
    watermark: dict[str, str | None] = field(default_factory=dict)
    # what was crawled, in words: the decision dates and why those (the whole crawl, and
    # per series; e.g. "2024-05-03 .. 2024-06-10 (since the last crawl: ...)")
    window: str = ""
    series_windows: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    rate_wait_s: float = 0.0
    backoff_wait_s: float = 0.0
    http_s: float = 0.0
    parse_s: float = 0.0
    store_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(f.blocking for f in self.failures)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["ok"] = self.ok
        return d


@dataclass(frozen=True, slots=True)
class Window:
    start: date
    end: date


def year_windows(start: date, end: date) -> list[Window]:
    """[start, end] cut at calendar-year boundaries: stable keys, never wider than a year."""
    if start > end:
        raise ValueError(f"since {start} is after until {end}")
    windows = []
    cur = start
    while cur <= end:
        stop = min(date(cur.year, 12, 31), end)
        windows.append(Window(cur, stop))
        cur = stop + timedelta(days=1)
    return windows


# ---------------------------------------------------------------------------------------
# Watermarks
# ---------------------------------------------------------------------------------------
def _watermark_path(settings: Settings):
    return settings.state_dir / "watermarks.json"


def read_watermarks(settings: Settings) -> dict[str, date]:
    path = _watermark_path(settings)
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: date.fromisoformat(v) for k, v in data.items() if v}


@contextlib.contextmanager
def _watermark_lock(settings: Settings) -> Iterator[None]:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "watermarks.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def advance_watermark(settings: Settings, series: str, new: date) -> date:
    """Move a series' watermark forward (never back); atomic file replace under a lock."""
    with _watermark_lock(settings):
        marks = read_watermarks(settings)
        old = marks.get(series)
        if old is None or new > old:
            marks[series] = new
            payload = {k: v.isoformat() for k, v in sorted(marks.items())}
            atomic_write(_watermark_path(settings), json.dumps(payload, indent=1).encode())
            return new
        return old


# ---------------------------------------------------------------------------------------
# The crawl
# ---------------------------------------------------------------------------------------
class _Crawler:
    def __init__(
        self,
        settings: Settings,
        client: PortalClient,
        summary: CrawlSummary,
        progress: Progress | None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.raw = client.raw
        self.summary = summary
        self.progress = progress
        self.today = datetime.now(UTC).date()

    def _report(self, **event: Any) -> None:
        if self.progress is not None:
            try:
                self.progress(event)
            except Exception:  # a broken progress hook must not stop a crawl
                log.exception("progress callback failed on %s", event)

    def _fail(self, series: str, kind: str, key: str, reason: str, blocking: bool = True) -> None:
        log.warning("crawl %s %s %s failed: %s", series, kind, key, reason)
        self.summary.failures.append(Failure(series, kind, key, reason, blocking))

    def _timed_parse(self, fn: Callable[[bytes, str], Any], body: bytes, url: str) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(body, url)
        finally:
            self.client.stats.parse_s += time.perf_counter() - t0

    # ---- list ----------------------------------------------------------------------
    def list_window(self, series: str, window: Window) -> tuple[dict[str, ListItem], bool]:
        """All items of a window (RRDC_NO -> item) and whether every page was read."""
        # Pages of windows closed before the re-crawl period are final: reuse stored ones.
        reuse = window.end < self.today - timedelta(days=self.settings.recrawl_days)
        stored_pages = self.raw.good_list_pages() if reuse else {}
        items: dict[str, ListItem] = {}
        page, last, total = 1, 1, 0
        while page <= last:
            form = self.client.list_form(series, window.start, window.end, page)
            stored = stored_pages.get(list_page_key(series, form))
            listing = None
            if stored is not None:
                try:
                    listing = self._timed_parse(parse_list, self.raw.body(stored), stored.url)
                    self.summary.list_pages_reused += 1
                except (PortalFormatError, OSError):
                    listing = None
            if listing is None:
                try:
                    listing, _ = self.client.list_page(series, window.start, window.end, page)
                except (PortalError, PortalFormatError) as exc:
                    self._fail(series, "list", f"{window.start}..{window.end} p{page}", str(exc))
                    return items, False
                self.summary.list_pages += 1
            last, total = listing.last_page, listing.total
            for item in listing.items:
                items.setdefault(item.rrdc_no, item)
            self._report(
                series=series,
                phase="list",
                window=f"{window.start}..{window.end}",
                page=page,
                last_page=last,
                total=total,
            )
            page += 1
        if len(items) < total:
            self._fail(
                series,
                "list",
                f"{window.start}..{window.end}",
                f"listed {len(items)} distinct cases of the {total} announced",
            )
            return items, False
        return items, True

    # ---- details and images -----------------------------------------------------------
    def stored_detail(self, rrdc_no: str) -> DetailRecord | None:
        """The case's detail from the raw zone when a good one is stored."""
        for entry in self.raw.details(rrdc_no):
            verdict = self.raw.verdict(entry.sha256)
            if verdict is not None and not verdict[0]:
                continue
            try:
                record = self._timed_parse(parse_detail, self.raw.body(entry), entry.url)
            except (PortalFormatError, OSError):
                continue
            if verdict is None:  # stored, then killed before its verdict was written
                self.raw.mark(entry.sha256, True)
            return record
        return None

    def case(self, series: str, rrdc_no: str, item: ListItem | None = None) -> bool:
        """Detail then images of one case; False when something blocking failed.

        A stored detail is reused unless the list now shows another code or product name
        for the case (a correction published after we fetched it).
        """
        record = self.stored_detail(rrdc_no)
        if record is not None and item is not None and _changed(item, record):
            log.info("crawl %s case %s changed since it was fetched: re-fetching", series, rrdc_no)
            self.summary.details_refetched_changed += 1
            record = None
        elif record is not None:
            self.summary.details_skipped_stored += 1
        if record is None:
            try:
                record, _ = self.client.detail(series, rrdc_no)
            except (PortalError, PortalFormatError) as exc:
                self._fail(series, "detail", rrdc_no, str(exc))
                return False
            self.summary.details_fetched += 1
        complete = True
        for url in record.image_urls:
            entry = self.raw.image(url)
            if entry is not None and (self.raw.verdict(entry.sha256) or (True,))[0]:
                self.summary.images_skipped_stored += 1
                continue
            try:
                self.client.image(series, url, rrdc_no)
            except ImageRefused as exc:
                self.summary.images_refused += 1
                self.summary.refusals.append(f"{rrdc_no}: {exc}")
                log.warning("crawl %s case %s: image refused: %s", series, rrdc_no, exc.reason)
                continue
            except PortalHTTPError as exc:  # 4xx: retrying tomorrow will not help
                self._fail(series, "image", url, str(exc), blocking=False)
                continue
            except (PortalError, PortalFormatError) as exc:
                self._fail(series, "image", url, str(exc))
                complete = False
                continue
            self.summary.images_fetched += 1
        return complete

    def window(self, series: str, window: Window) -> bool:
        items, complete = self.list_window(series, window)
        self.summary.cases_listed += len(items)
        for n, (rrdc_no, item) in enumerate(items.items(), start=1):
            if not self.case(series, rrdc_no, item):
                complete = False
            if n % 25 == 0 or n == len(items):
                self._report(
                    series=series,
                    phase="detail",
                    window=f"{window.start}..{window.end}",
                    done=n,
                    total=len(items),
                )
        return complete


def _code_digits(value: str | None) -> str:
    return re.sub(r"\D", "", clean_text(value))


def _changed(item: ListItem, record: DetailRecord) -> bool:
    """Does the list item name another code or product than the stored detail?

    Codes are compared by their digits only (the list highlights them with ``<em>`` and
    the detail cell carries button captions); an absent list value compares as equal.
    """
    if item.hs_raw is not None and _code_digits(item.hs_raw) != _code_digits(record.hs_raw):
        return True
    return item.title is not None and clean_text(item.title) != clean_text(record.title)


def describe_window(
    start: date,
    until: date,
    *,
    since: date | None,
    until_given: bool,
    watermark: date | None,
    recrawl_days: int,
) -> str:
    """One series' crawl window in words: its decision dates and why they were chosen."""
    end = f"{until}" if until_given else f"{until} (today, UTC)"
    if since is not None:
        why = "as asked"
    elif watermark is None:
        why = "everything: no earlier crawl, so from the portal's oldest decisions"
    else:
        why = (
            f"since the last crawl: its watermark {watermark} less the {recrawl_days} "
            "re-crawl days for late publications"
        )
    if start > until:
        return f"nothing to crawl: {start} is after {end}, {why}"
    return f"{start} .. {end}, {why}"


def crawl(
    settings: Settings,
    since: date | None = None,
    until: date | None = None,
    series: tuple[str, ...] | list[str] = SERIES,
    progress: Progress | None = None,
) -> CrawlSummary:
    """Crawl the given series between ``since`` and ``until`` (decision dates, inclusive).

    ``since=None``: from each series' watermark minus ``settings.recrawl_days`` (from 1988
    when there is none) to ``until`` (default: today, UTC). Failures are collected in the
    summary with their reasons; the crawl goes on past them.
    """
    unknown = [s for s in series if s not in SERIES]
    if unknown:
        raise ValueError(f"unknown series {unknown}; expected some of {SERIES}")
    today = datetime.now(UTC).date()
    until_given = until is not None
    until = until or today
    if since is not None and since < EARLIEST:
        raise ValueError(f"since {since} is before {EARLIEST}, the portal's oldest decisions")
    if since is not None and since > until:
        raise ValueError(f"since {since} is after until {until}")

    summary = CrawlSummary()
    t0 = time.perf_counter()
    with crawl_slot(settings), PortalClient(settings, RawZone(settings.raw_dir)) as client:
        crawler = _Crawler(settings, client, summary, progress)
        for name in series:
            marks = read_watermarks(settings)
            old = marks.get(name)
            if since is not None:
                start = since
            elif old is not None:
                start = max(EARLIEST, old - timedelta(days=settings.recrawl_days))
            else:
                start = EARLIEST
            summary.series_windows[name] = describe_window(
                start,
                until,
                since=since,
                until_given=until_given,
                watermark=old,
                recrawl_days=settings.recrawl_days,
            )
            log.info("crawl %s: %s", name, summary.series_windows[name])
            if start > until:
                summary.watermark[name] = old.isoformat() if old else None
                continue
            windows = year_windows(start, until)
            summary.windows_total += len(windows)
            # The watermark says "nothing decided on or before it is missing": it may only
            # move when this crawl's range joins up with what the watermark already covers.
            contiguous = old is None or start <= old + timedelta(days=1)
            reached: date | None = None
            for window in windows:
                log.info("crawl %s window %s..%s", name, window.start, window.end)
                done = crawler.window(name, window)
                if done:
                    summary.windows_completed += 1
                    if contiguous:
                        reached = window.end
                else:
                    contiguous = False
            mark = advance_watermark(settings, name, reached) if reached else old
            summary.watermark[name] = mark.isoformat() if mark else None
        described = set(summary.series_windows.values())
        summary.window = (
            described.pop()
            if len(described) == 1
            else "; ".join(f"{name}: {text}" for name, text in summary.series_windows.items())
        )
        st = client.stats
        summary.requests = st.requests
        summary.retries = st.retries
        summary.faults_seen = st.faults_seen
        summary.rate_wait_s = st.rate_wait_s
        summary.backoff_wait_s = st.backoff_wait_s
        summary.http_s = st.http_s
        summary.parse_s = st.parse_s
        summary.store_s = st.store_s
    summary.elapsed_s = time.perf_counter() - t0
    log.info(
        "crawl done: %d requests, %d listed, %d details fetched, %d stored already, %d failures",
        summary.requests,
        summary.cases_listed,
        summary.details_fetched,
        summary.details_skipped_stored,
        len(summary.failures),
    )
    return summary
