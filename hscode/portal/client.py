"""The CLIP portal client: one session per series, and the list, detail and image calls.

What the portal expects is in docs/clip-portal.md (shared docs). ``PortalClient`` builds
on ``PoliteTransport`` (``hscode.portal.transport``: robots.txt, the shared request rate,
retries, the raw zone); here are the portal's per-series paths and forms, the per-series
sessions (re-opened after the HTML error page or a lost session) and the public calls.
Images come only from the portal's own origin (``hscode.portal.urls``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Self, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from hscode.portal.parse import DetailRecord, ListPage, PortalFormatError, parse_detail, parse_list
from hscode.portal.transport import PoliteTransport
from hscode.portal.urls import _origin, check_image_origin
from hscode.rawzone import RawEntry, RawZone
from hscode.series import Series
from hscode.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Largest list / detail / screen / robots body read; more is not a portal answer.
# Images are bounded by settings.max_image_bytes instead.
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SeriesPaths:
    screen: str
    segment: str
    list_code: str
    detail_code: str | None
    detail: str


SERIES_PATHS: dict[str, SeriesPaths] = {
    Series.ORDINARY: SeriesPaths(
        "prlstclsfsrch/openULS0203002S.do",
        "",
        "01",
        None,
        "prlstclsfsrch/retrieveDmstPrlstClsfCaseDtl.do",
    ),
    Series.COUNCIL: SeriesPaths(
        "prlstclsfsrch/cncidtrm/openULS0203005S.do",
        "cncidtrm/",
        "03",
        "02",
        "prlstclsfsrch/cncidtrm/retrieveDmstPrlstClsfCaseDtl2.do",
    ),
    Series.COMMITTEE: SeriesPaths(
        "prlstclsfsrch/cmitdtrm/openULS0203008S.do",
        "cmitdtrm/",
        "04",
        "01",
        "prlstclsfsrch/cmitdtrm/retrieveDmstPrlstClsfCaseDtl2.do",
    ),
}


class PortalClient(PoliteTransport):
    """Talks to the portal at settings.portal_url. Use as a context manager or call close()."""

    def __init__(
        self, settings: Settings, raw: RawZone | None = None, *, rng: random.Random | None = None
    ) -> None:
        base = (
            settings.portal_url if settings.portal_url.endswith("/") else settings.portal_url + "/"
        )
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"portal_url {settings.portal_url!r} is not an http(s) URL")
        origin_url = f"{parts.scheme}://{parts.netloc}"
        if parts.path == "/":  # a bare origin (``--portal-url http://127.0.0.1:N``)
            base = origin_url + "/clip/"
        origin = _origin(base)
        super().__init__(
            settings,
            raw if raw is not None else RawZone(settings.raw_dir),
            origin_url=origin_url,
            max_body_bytes=MAX_BODY_BYTES,
            rng=rng,
        )
        self.base = base
        self.origin = origin
        self._sessions: dict[str, requests.Session] = {}

    # ---- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the per-series sessions -------------------------------------------------
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
            lambda: session,
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
        check_image_origin(url, self.origin, self.origin_url)

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

    # ---- every series call ---------------------------------------------------------
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
            lambda: self._session(series),
            method,
            url,
            kind=kind,
            series=series,
            parse=parse,
            data=data,
            headers=headers,
            rrdc_no=rrdc_no,
            reopen=lambda: self._reopen(series),
            with_entry=True,
        )
