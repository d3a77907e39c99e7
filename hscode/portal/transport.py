"""Polite HTTP to the portal's origin: robots.txt, rate, retries, every answer kept.

``PoliteTransport`` is what ``PortalClient`` builds on. Per request it:

* checks robots.txt (Protego), fetched once from the origin; its Crawl-delay lowers the
  shared rate of ``RateLimiter`` (``hscode.portal.politeness``) further;
* waits for the shared request clock and sends with a descriptive User-Agent, following
  no redirects and reading at most a capped body;
* writes the answer to the raw zone before it is parsed, then marks the parse verdict;
* retries with exponential backoff and jitter on 5xx, 429, timeouts, connection errors,
  redirects, session losses and answers the parser rejects; ``Retry-After`` is honoured
  and pauses the shared clock, not only this request; a retry that says so re-opens the
  session through the caller's ``reopen``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from protego import Protego

from hscode.portal.errors import (
    PortalHTTPError,
    ResponseTooLarge,
    RetriesExhausted,
    RobotsDisallowed,
)
from hscode.portal.parse import PortalErrorPage, PortalFormatError
from hscode.portal.politeness import RateLimiter
from hscode.rawzone import RawEntry, RawZone
from hscode.settings import Settings

log = logging.getLogger("hscode.portal.client")  # the name it logged under before the split

# Longest Retry-After we wait out; beyond it the request is given up (and retried next crawl).
MAX_RETRY_AFTER_S = 600.0

# Statuses that mean "your session is gone": re-open it and try again.
_SESSION_LOST = {401, 403, 419, 440}


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


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, reopen: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.reopen = reopen


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


class PoliteTransport:
    """Requests to ``origin_url`` with politeness and retries; bodies over
    ``max_body_bytes`` (images: settings.max_image_bytes) are refused."""

    def __init__(
        self,
        settings: Settings,
        raw: RawZone,
        *,
        origin_url: str,
        max_body_bytes: int,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.origin_url = origin_url
        self.raw = raw
        self.stats = ClientStats()
        self.max_body_bytes = max_body_bytes
        self.limiter = RateLimiter(settings.state_dir, origin_url, settings.request_rate)
        self._rng = rng or random.Random()
        self._robots: Protego | None = None

    # ---- the one session factory -------------------------------------------------
    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = self.settings.user_agent
        session.headers["Accept-Language"] = "ko-KR,ko;q=0.9,en;q=0.5"
        return session

    # ---- robots.txt ---------------------------------------------------------------
    def robots(self) -> Protego:
        if self._robots is None:
            url = self.origin_url + "/robots.txt"
            session = self._new_session()
            try:
                text = self._call(
                    lambda: session,
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

    # ---- the retry loop ------------------------------------------------------------
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
        session: Callable[[], requests.Session],
        method: str,
        url: str,
        *,
        kind: str,
        series: str | None,
        parse: Callable[[bytes, str], Any],
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        rrdc_no: str | None = None,
        reopen: Callable[[], None] | None,
        allow_4xx: bool = False,
        with_entry: bool = False,
    ) -> Any:
        """Send with politeness and retries; store every answer; parse; mark the verdict.

        ``session`` gives the session for each attempt; ``reopen`` (if any) drops it when a
        retry says the session is lost, so the next attempt's ``session()`` opens a new one.
        """
        if kind != "robots" and not self.allowed(url):
            raise RobotsDisallowed(url, f"robots.txt disallows it for {self.settings.user_agent!r}")
        s = self.settings
        last_reason = "no attempt made"
        for attempt in range(s.max_retries + 1):
            if attempt:
                self.stats.retries += 1
            try:
                result = self._attempt(
                    session(),
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
                    reopen()
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
