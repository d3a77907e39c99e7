"""HTTP client for the CLIP portal: one session per series, polite, every answer kept.

What the portal expects is in docs/clip-portal.md (shared docs). Politeness:

* a request rate shared by every client and process using the same ``state_dir``
  (a tiny file-locked "next slot" clock), lowered further by a robots.txt Crawl-delay;
* ``Retry-After`` honoured (and it pauses the shared clock, not only this request);
* exponential backoff with jitter on 5xx, 429, timeouts, connection errors and list
  answers that lack ``uls_dmst``; the session is re-opened after the HTML error page;
* robots.txt (Protego) fetched once from the portal origin; a descriptive User-Agent;
* no redirects followed and images only from the portal's own origin.

Every response is written to the raw zone before it is parsed.
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import hashlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from protego import Protego

from hscode.portal.parse import (
    DetailRecord,
    ListPage,
    PortalErrorPage,
    PortalFormatError,
    parse_detail,
    parse_list,
)
from hscode.rawzone import RawEntry, RawZone
from hscode.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Longest Retry-After we wait out; beyond it the request is given up (and retried next crawl).
MAX_RETRY_AFTER_S = 600.0
# Largest list / detail / screen / robots body read; more is not a portal answer.
# Images are bounded by settings.max_image_bytes instead.
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_URL_CHARS = 4096


@dataclass(frozen=True, slots=True)
class SeriesPaths:
    screen: str
    segment: str
    list_code: str
    detail_code: str | None
    detail: str


SERIES_PATHS: dict[str, SeriesPaths] = {
    "ordinary": SeriesPaths(
        "prlstclsfsrch/openULS0203002S.do",
        "",
        "01",
        None,
        "prlstclsfsrch/retrieveDmstPrlstClsfCaseDtl.do",
    ),
    "council": SeriesPaths(
        "prlstclsfsrch/cncidtrm/openULS0203005S.do",
        "cncidtrm/",
        "03",
        "02",
        "prlstclsfsrch/cncidtrm/retrieveDmstPrlstClsfCaseDtl2.do",
    ),
    "committee": SeriesPaths(
        "prlstclsfsrch/cmitdtrm/openULS0203008S.do",
        "cmitdtrm/",
        "04",
        "01",
        "prlstclsfsrch/cmitdtrm/retrieveDmstPrlstClsfCaseDtl2.do",
    ),
}


class PortalError(RuntimeError):
    """A request to the portal that did not succeed; ``reason`` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class PortalHTTPError(PortalError):
    """A status we do not retry (4xx other than 429 and session losses)."""


class RetriesExhausted(PortalError):
    """Still failing after settings.max_retries retries."""


class RobotsDisallowed(PortalError):
    """robots.txt does not allow this URL for our User-Agent."""


class ImageRefused(PortalError):
    """An image URL outside the portal's own origin: never fetched."""


class ResponseTooLarge(PortalHTTPError):
    """A body over the size limit: reading stopped there, nothing stored, not retried."""


class CrawlBusy(RuntimeError):
    """settings.max_concurrent_crawls crawls already hold a slot."""


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    faults_seen: int = 0
    sessions_opened: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rate_wait_s: float = 0.0  # politeness: waiting for the shared request clock
    backoff_wait_s: float = 0.0  # politeness: backoff and Retry-After
    http_s: float = 0.0  # time on the wire (server included)
    parse_s: float = 0.0
    store_s: float = 0.0


# ---------------------------------------------------------------------------------------
# Politeness across threads and processes
# ---------------------------------------------------------------------------------------
_PROCESS_LOCK = threading.Lock()


class RateLimiter:
    """A shared "next free slot" clock in a file, so all processes together keep the rate."""

    def __init__(self, state_dir: Path, origin: str, rate: float) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(origin.encode()).hexdigest()[:16]
        self.path = state_dir / f"ratelimit-{tag}.clock"
        self.interval = 1.0 / rate

    def _update(self, fn: Callable[[float, float], tuple[float, float]]) -> float:
        """Under the file lock: (now, next_free) -> (wait, new_next_free); returns wait."""
        with _PROCESS_LOCK, open(self.path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                fh.seek(0)
                raw = fh.read().strip()
                try:
                    next_free = float(raw) if raw else 0.0
                except ValueError:
                    next_free = 0.0
                wait, new_next = fn(time.time(), next_free)
                fh.seek(0)
                fh.truncate()
                fh.write(repr(new_next).encode())
                fh.flush()
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return wait

    def slow_down(self, interval: float) -> None:
        self.interval = max(self.interval, interval)

    def acquire(self) -> float:
        """Reserve the next slot and sleep until it; returns the seconds waited."""

        def take(now: float, next_free: float) -> tuple[float, float]:
            slot = max(now, next_free)
            return slot - now, slot + self.interval

        wait = self._update(take)
        if wait > 0:
            time.sleep(wait)
        return wait

    def defer(self, seconds: float) -> None:
        """Nobody sends before now + seconds (Retry-After applies to the whole origin)."""
        self._update(lambda now, nxt: (0.0, max(nxt, now + seconds)))


@contextlib.contextmanager
def crawl_slot(settings: Settings) -> Iterator[int]:
    """Hold one of settings.max_concurrent_crawls slots (file locks, released on exit or death)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(settings.max_concurrent_crawls):
        fh = open(settings.state_dir / f"crawl-slot-{slot}.lock", "a+b")  # noqa: SIM115
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        try:
            yield slot
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()
        return
    raise CrawlBusy(
        f"{settings.max_concurrent_crawls} crawl(s) already running against {settings.state_dir}"
    )


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL; ValueError for a port that is not a port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, -1)
    return scheme, (parts.hostname or "").lower(), port


# Characters that parsers disagree about (``http://evil\@portal/`` is the portal for
# urllib.parse but evil for urllib3, which requests uses to connect) or that have no
# business in a URL the portal wrote.
_URL_BAD_CHARS = frozenset("\\@") | frozenset(chr(c) for c in [*range(0x21), 0x7F])


def _connect_origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) as urllib3 parses the URL: where requests would really connect."""
    from urllib3.util import parse_url

    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    port = parsed.port or {"http": 80, "https": 443}.get(scheme, -1)
    return scheme, (parsed.host or "").lower().strip("[]"), port


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, reopen: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.reopen = reopen


# Statuses that mean "your session is gone": re-open it and try again.
_SESSION_LOST = {401, 403, 419, 440}


class PortalClient:
    """Talks to the portal at settings.portal_url. Use as a context manager or call close()."""

    def __init__(
        self, settings: Settings, raw: RawZone | None = None, *, rng: random.Random | None = None
    ) -> None:
        self.settings = settings
        base = (
            settings.portal_url if settings.portal_url.endswith("/") else settings.portal_url + "/"
        )
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"portal_url {settings.portal_url!r} is not an http(s) URL")
        self.origin_url = f"{parts.scheme}://{parts.netloc}"
        if parts.path == "/":  # a bare origin (``--portal-url http://127.0.0.1:N``)
            base = self.origin_url + "/clip/"
        self.base = base
        self.origin = _origin(base)
        self.raw = raw if raw is not None else RawZone(settings.raw_dir)
        self.stats = ClientStats()
        self.max_body_bytes = MAX_BODY_BYTES
        self.limiter = RateLimiter(settings.state_dir, self.origin_url, settings.request_rate)
        self._rng = rng or random.Random()
        self._sessions: dict[str, requests.Session] = {}
        self._robots: Protego | None = None

    # ---- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the one session factory -------------------------------------------------
    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = self.settings.user_agent
        session.headers["Accept-Language"] = "ko-KR,ko;q=0.9,en;q=0.5"
        return session

    def screen_url(self, series: str) -> str:
        return urljoin(self.base, SERIES_PATHS[series].screen)

    def _session(self, series: str) -> requests.Session:
        """The series' own session, opened by GETting its screen (sets JSESSIONID/WMONID)."""
        session = self._sessions.get(series)
        if session is not None:
            return session
        session = self._new_session()
        url = self.screen_url(series)
        self._call(
            session,
            "GET",
            url,
            kind="screen",
            series=series,
            parse=lambda body, u: None,
            reopen=None,
        )
        self.stats.sessions_opened += 1
        if not session.cookies:
            log.info("portal screen %s set no cookies; continuing without", url)
        self._sessions[series] = session
        return session

    def _reopen(self, series: str) -> None:
        old = self._sessions.pop(series, None)
        if old is not None:
            old.close()
        log.info("re-opening the %s session", series)

    # ---- robots.txt ---------------------------------------------------------------
    def robots(self) -> Protego:
        if self._robots is None:
            url = self.origin_url + "/robots.txt"
            session = self._new_session()
            try:
                text = self._call(
                    session,
                    "GET",
                    url,
                    kind="robots",
                    series=None,
                    parse=_robots_text,
                    reopen=None,
                    allow_4xx=True,
                )
            finally:
                session.close()
            self._robots = Protego.parse(text)
            delay = self._robots.crawl_delay(self.settings.user_agent)
            if delay:
                self.limiter.slow_down(float(delay))
        return self._robots

    def allowed(self, url: str) -> bool:
        return bool(self.robots().can_fetch(url, self.settings.user_agent))

    # ---- public API ---------------------------------------------------------------
    def list_form(self, series: str, start: date, end: date, page: int) -> dict[str, str]:
        if start > end:
            raise ValueError(f"empty window {start}..{end}")
        size = str(self.settings.page_size)
        return {
            "prlstClsfCaseTpcd": SERIES_PATHS[series].list_code,
            "srchYn": "Y",
            "scrnTp": "WDTH",
            "stDt": start.isoformat(),
            "edDt": end.isoformat(),
            "pageIndex": str(page),
            "pageUnit": size,
            "initPageIndex": str(page),
            "pagePerRecord": size,
            "orderColumns": "ENFR_DT desc",
            "srwr": "",
            "reffNo": "",
            "dtrmHsSgn": "",
            "cmdtNm": "",
            "cmdtDesc": "",
            "dtrmRsnCn": "",
        }

    def list_url(self, series: str) -> str:
        return urljoin(
            self.base,
            f"prlstclsfsrch/{SERIES_PATHS[series].segment}retrieveDmstPrlstClsfCaseLst2.do",
        )

    def detail_url(self, series: str) -> str:
        return urljoin(self.base, SERIES_PATHS[series].detail)

    def _ajax_headers(self, series: str, accept: str) -> dict[str, str]:
        return {
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "X-Requested-With": "XMLHttpRequest",
            "isAjax": "true",
            "Accept": accept,
            "Referer": self.screen_url(series),
            "Origin": self.origin_url,
        }

    def list_page(
        self, series: str, start: date, end: date, page: int
    ) -> tuple[ListPage, RawEntry]:
        """One page of the case list for a decision-date window of at most a year."""
        if (end - start).days > 366:
            raise ValueError(
                f"window {start}..{end} is wider than a year: the portal stalls on those"
            )
        return self._series_call(
            series,
            "POST",
            self.list_url(series),
            kind="list",
            data=self.list_form(series, start, end, page),
            headers=self._ajax_headers(series, "application/json, text/javascript, */*; q=0.01"),
            parse=parse_list,
        )

    def detail(self, series: str, rrdc_no: str) -> tuple[DetailRecord, RawEntry]:
        """The full case (the list truncates descriptions and reasons at 176 characters)."""
        form = {"rrdcNo": rrdc_no}
        code = SERIES_PATHS[series].detail_code
        if code is not None:
            form["mttrTpcd"] = code
        return self._series_call(
            series,
            "POST",
            self.detail_url(series),
            kind="detail",
            data=form,
            headers=self._ajax_headers(series, "text/html, */*; q=0.01"),
            parse=parse_detail,
            rrdc_no=rrdc_no,
        )

    def check_image_url(self, url: str) -> None:
        """Raise ImageRefused unless the URL is on the portal's own scheme, host and port."""
        if not isinstance(url, str) or not url:
            raise ImageRefused(str(url), "empty image URL")
        if len(url) > MAX_URL_CHARS:
            raise ImageRefused(url[:200] + "...", f"URL longer than {MAX_URL_CHARS} characters")
        try:
            scheme, host, port = _origin(url)
        except ValueError as exc:
            raise ImageRefused(url, f"unparseable URL ({exc})") from None
        if scheme not in ("http", "https"):
            raise ImageRefused(url, f"scheme {scheme!r} is not http(s)")
        netloc = urlsplit(url).netloc
        bad = sorted({c for c in netloc if c in _URL_BAD_CHARS})
        if bad or any(c in url for c in "\\\r\n\t "):
            raise ImageRefused(
                url, f"URL with characters parsers disagree on ({''.join(bad) or 'whitespace'})"
            )
        if (scheme, host, port) != self.origin:
            raise ImageRefused(
                url, f"origin {scheme}://{host}:{port} is not the portal's {self.origin_url}"
            )
        try:
            connect = _connect_origin(url)
        except Exception as exc:  # noqa: BLE001 - urllib3 LocationParseError and friends
            raise ImageRefused(url, f"unparseable URL ({exc})") from None
        if connect != self.origin:
            raise ImageRefused(url, f"the HTTP library would connect to {connect}, not the portal")

    def image(self, series: str, url: str, rrdc_no: str | None = None) -> RawEntry:
        """Fetch one image of a case; only from the portal's own origin."""
        self.check_image_url(url)
        limit = self.settings.max_image_bytes

        def check(body: bytes, u: str) -> None:
            if not body:
                raise PortalFormatError(u, "image bytes (empty body)")
            if len(body) > limit:
                raise PortalFormatError(u, f"an image of at most {limit} bytes (got {len(body)})")

        _, entry = self._series_call(
            series,
            "GET",
            url,
            kind="image",
            data=None,
            headers={"Accept": "image/*", "Referer": self.screen_url(series)},
            parse=check,
            rrdc_no=rrdc_no,
        )
        return entry

    # ---- the retry loop ------------------------------------------------------------
    def _series_call(
        self,
        series: str,
        method: str,
        url: str,
        *,
        kind: str,
        data: dict[str, str] | None,
        headers: dict[str, str],
        parse: Callable[[bytes, str], T],
        rrdc_no: str | None = None,
    ) -> tuple[T, RawEntry]:
        if series not in SERIES_PATHS:
            raise ValueError(f"unknown series {series!r}; expected one of {tuple(SERIES_PATHS)}")
        return self._call(
            None,
            method,
            url,
            kind=kind,
            series=series,
            parse=parse,
            data=data,
            headers=headers,
            rrdc_no=rrdc_no,
            reopen=series,
            with_entry=True,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> None:
        s = self.settings
        delay = min(s.backoff_max_s, s.backoff_base_s * (2**attempt))
        delay *= self._rng.uniform(0.5, 1.0)  # jitter: clients that failed together retry apart
        if retry_after is not None:
            self.limiter.defer(retry_after)
            delay = max(delay, retry_after)
        t0 = time.perf_counter()
        time.sleep(delay)
        self.stats.backoff_wait_s += time.perf_counter() - t0

    def _call(
        self,
        session: requests.Session | None,
        method: str,
        url: str,
        *,
        kind: str,
        series: str | None,
        parse: Callable[[bytes, str], Any],
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        rrdc_no: str | None = None,
        reopen: str | None,
        allow_4xx: bool = False,
        with_entry: bool = False,
    ) -> Any:
        """Send with politeness and retries; store every answer; parse; mark the verdict."""
        if kind != "robots" and not self.allowed(url):
            raise RobotsDisallowed(url, f"robots.txt disallows it for {self.settings.user_agent!r}")
        s = self.settings
        last_reason = "no attempt made"
        for attempt in range(s.max_retries + 1):
            if attempt:
                self.stats.retries += 1
            try:
                sess = session if session is not None else self._session(reopen or "")
                result = self._attempt(
                    sess,
                    method,
                    url,
                    kind=kind,
                    series=series,
                    parse=parse,
                    data=data,
                    headers=headers,
                    rrdc_no=rrdc_no,
                    allow_4xx=allow_4xx,
                )
            except _Retry as why:
                last_reason = why.reason
                self.stats.faults_seen += 1
                self.stats.faults[why.reason.split(":")[0]] += 1
                log.info(
                    "portal %s %s (series=%s rrdc_no=%s) attempt %d/%d: %s",
                    kind,
                    url,
                    series,
                    rrdc_no,
                    attempt + 1,
                    s.max_retries + 1,
                    why.reason,
                )
                if why.retry_after is not None and why.retry_after > MAX_RETRY_AFTER_S:
                    raise RetriesExhausted(
                        url,
                        f"Retry-After {why.retry_after:.0f}s is longer than {MAX_RETRY_AFTER_S:.0f}s",
                    ) from None
                if why.reopen and reopen is not None:
                    self._reopen(reopen)
                if attempt < s.max_retries:
                    self._backoff(attempt, why.retry_after)
                continue
            return result if with_entry else result[0]
        raise RetriesExhausted(
            url, f"gave up after {s.max_retries + 1} attempts; last: {last_reason}"
        )

    def _attempt(
        self,
        session: requests.Session,
        method: str,
        url: str,
        *,
        kind: str,
        series: str | None,
        parse: Callable[[bytes, str], Any],
        data: dict[str, str] | None,
        headers: dict[str, str] | None,
        rrdc_no: str | None,
        allow_4xx: bool,
    ) -> tuple[Any, RawEntry]:
        self.stats.rate_wait_s += self.limiter.acquire()
        self.stats.requests += 1
        self.stats.by_kind[kind] += 1
        t0 = time.perf_counter()
        limit = self.settings.max_image_bytes if kind == "image" else self.max_body_bytes
        try:
            resp = session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=self.settings.request_timeout_s,
                allow_redirects=False,  # a redirect could lead off the portal's host
                stream=True,  # read at most `limit` bytes (a huge or endless body is refused)
            )
            try:
                body = _read_capped(resp, limit)
            finally:
                resp.close()
        except requests.Timeout as exc:
            self.stats.http_s += time.perf_counter() - t0
            raise _Retry(f"timeout: {type(exc).__name__}") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            self.stats.http_s += time.perf_counter() - t0
            raise _Retry(f"connection: {exc}") from None
        except requests.exceptions.ContentDecodingError as exc:
            self.stats.http_s += time.perf_counter() - t0
            raise _Retry(f"connection: undecodable body ({exc})") from None
        self.stats.http_s += time.perf_counter() - t0
        if body is None:
            log.warning("portal %s %s: body over %d bytes refused", kind, url, limit)
            raise ResponseTooLarge(url, f"body larger than {limit} bytes: not read further")

        t1 = time.perf_counter()
        entry = self.raw.put(
            url=url,
            method=method,
            params=data,
            status=resp.status_code,
            body=body,
            content_type=resp.headers.get("Content-Type"),
            series=series,
            kind=kind,
            rrdc_no=rrdc_no,
        )
        self.stats.store_s += time.perf_counter() - t1

        status = resp.status_code
        if status == 429 or status >= 500:
            raise _Retry(
                f"HTTP {status}", retry_after=_retry_after(resp.headers.get("Retry-After"))
            )
        if 300 <= status < 400:
            where = resp.headers.get("Location", "?")
            if kind == "image":
                raise PortalHTTPError(url, f"HTTP {status} redirect to {where} not followed")
            raise _Retry(f"HTTP {status}: redirect to {where} (session lost?)", reopen=True)
        if status in _SESSION_LOST and kind not in ("robots", "screen"):
            raise _Retry(f"HTTP {status}: session lost", reopen=True)
        if status != 200 and not (allow_4xx and 400 <= status < 500):
            raise PortalHTTPError(url, f"HTTP {status}")

        t2 = time.perf_counter()
        try:
            result = parse(body if status == 200 else b"", url)
        except PortalErrorPage as exc:
            self.raw.mark(entry.sha256, False, exc.missing)
            raise _Retry(f"error page: {exc.missing}", reopen=True) from None
        except PortalFormatError as exc:
            self.raw.mark(entry.sha256, False, exc.missing)
            # The portal recovers from these after a pause; a lost session looks similar.
            raise _Retry(f"format: missing {exc.missing}", reopen=kind == "detail") from None
        finally:
            self.stats.parse_s += time.perf_counter() - t2
        if kind in ("list", "detail", "image"):
            self.raw.mark(entry.sha256, True)
        return result, entry


def _read_capped(resp: requests.Response, limit: int) -> bytes | None:
    """The (decoded) body, or None as soon as it exceeds ``limit`` bytes."""
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit():
        digits = declared.strip()
        if len(digits) > 18 or int(digits) > limit:
            return None
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _robots_text(body: bytes, url: str) -> str:
    # 4xx (no robots.txt) reaches here with an empty body: everything is allowed.
    return body.decode("utf-8", errors="replace")
